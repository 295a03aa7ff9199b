-- Where a listing cut short by the poller's page limit goes on (PostgreSQL; see
-- migrations/0019_poll_resume.sql).
ALTER TABLE event_poll_marks ADD COLUMN resume TEXT;
ALTER TABLE event_poll_marks ADD COLUMN pruned_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE event_poll_marks ADD COLUMN resume_version BIGINT NOT NULL DEFAULT 0;
