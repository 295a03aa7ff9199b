-- Vendor webhook calls already stored as events, by the digest of the values the
-- element names (PostgreSQL). The primary key makes the repeat check hold between
-- two calls committed at once and between servers sharing this database.
CREATE TABLE event_webhook_digests (
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    -- SHA-256 of the digest values.
    digest      BYTEA NOT NULL,
    -- The event the first call became.
    event_id    TEXT NOT NULL,
    -- Epoch ms of the first call.
    received_at BIGINT NOT NULL,
    PRIMARY KEY (instance_id, digest)
);
CREATE INDEX event_webhook_digests_by_age ON event_webhook_digests (received_at);
