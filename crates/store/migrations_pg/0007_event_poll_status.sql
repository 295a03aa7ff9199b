-- The outcome of each instance's latest poll (PostgreSQL), shown on the instance.
CREATE TABLE event_poll_status (
    instance_id BIGINT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    -- When the poll ended, epoch milliseconds.
    polled_at   BIGINT NOT NULL,
    -- ok | failed
    outcome     TEXT NOT NULL,
    -- Why it failed (NULL when ok).
    message     TEXT
);
