-- Vendor webhook calls already stored as events, by the digest of the values the
-- element names (events.webhooks.digest). A call whose digest is here, received
-- within the dedupe window, is a repeat the vendor sent again: it is answered with
-- the first event's id and stores nothing. The primary key makes the check hold
-- between two calls committed at once and between servers sharing this database.
-- Rows older than the window are pruned (and replaced by a later call's).
CREATE TABLE event_webhook_digests (
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    -- SHA-256 of the digest values.
    digest      BLOB NOT NULL,
    -- The event the first call became.
    event_id    TEXT NOT NULL,
    -- Epoch ms of the first call.
    received_at INTEGER NOT NULL,
    PRIMARY KEY (instance_id, digest)
) WITHOUT ROWID;
CREATE INDEX event_webhook_digests_by_age ON event_webhook_digests (received_at);
