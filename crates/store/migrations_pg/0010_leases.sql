-- Work that must be done once across server processes (PostgreSQL; see
-- migrations/0010_leases.sql).
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

CREATE TABLE event_poll_due (
    instance_id BIGINT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    next_due    BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    holder      TEXT
);
