-- The poller claims due polls by due time (PostgreSQL; see
-- migrations/0013_poll_due_index.sql).
CREATE INDEX event_poll_due_by_next_due ON event_poll_due (next_due);
