-- The outcome of each instance's latest poll, shown on the instance
-- (`GET /instances/{id}` -> events.lastPollAt/lastPollOutcome/lastPollMessage),
-- so a poll that keeps failing is seen by the user, not only in the server's log.
CREATE TABLE event_poll_status (
    instance_id INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    -- When the poll ended, epoch milliseconds.
    polled_at   INTEGER NOT NULL,
    -- ok | failed
    outcome     TEXT NOT NULL,
    -- Why it failed (NULL when ok).
    message     TEXT
);
