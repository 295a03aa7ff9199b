-- Vendor webhooks an instance registered (PostgreSQL): where the vendor calls
-- (/events/{element_key}/{instance_key}), the hash of the shared header value
-- the vendor echoes, and the vendor's hook ids (to remove them later).
CREATE TABLE event_webhooks (
    instance_id  BIGINT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    element_key  TEXT NOT NULL,
    -- Random, not the instance id or token: the path segment vendors call.
    instance_key TEXT NOT NULL UNIQUE,
    -- SHA-256 of the shared header's value; the value itself went to the vendor only.
    secret_hash  BYTEA NOT NULL,
    -- JSON array of {"object", "scope", "id"}.
    hooks        TEXT NOT NULL,
    destination  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
