-- Switchyard schema, version 2: the vendor call log and hub Idempotency-Keys.

-- One row per vendor call (retries folded in). No bodies, no header values, no query
-- values: query parameter names only, since values can carry secrets.
CREATE TABLE vendor_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    query_names TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
    status      INTEGER,                     -- NULL when the vendor gave no answer
    outcome     TEXT NOT NULL,               -- answered | timeout | unreachable | refused | throttled | too-large | protocol
    duration_ms INTEGER NOT NULL,
    retries     INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX vendor_calls_by_instance ON vendor_calls (instance_id, id);
CREATE INDEX vendor_calls_by_time ON vendor_calls (created_at);

-- The first answer to a hub POST carrying Idempotency-Key, per organization, instance
-- and key. status IS NULL while the first request is in flight. Times are epoch ms.
CREATE TABLE idempotency_keys (
    organization_id INTEGER NOT NULL,
    instance_id     INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,   -- SHA-256 of method, path, query and body
    status          INTEGER,
    body            BLOB,
    is_error        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, instance_id, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_ms);
