-- Work that must be done once across server processes on one database.
--
-- `leases`: a named lease (`retention`, `webhooks.check`, `webhooks:{instance}`)
-- held by one process (`holder`, its random node id) until `until_ms` (epoch ms;
-- past: free). A holder that dies blocks the others for at most one lease time.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);

-- When each polled instance is next due (epoch ms). A process polls an instance
-- only after moving `next_due` on in one conditional update, so each interval's
-- poll runs on one process, and a dead process's instances fall due for the others.
CREATE TABLE event_poll_due (
    instance_id INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    next_due    INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    -- The node id of the process that claimed the latest poll.
    holder      TEXT
);
