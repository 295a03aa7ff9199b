-- A listing cut short by the poller's page limit goes on at the next poll where it
-- stopped: resume holds the poller's position in it (JSON: the hub's next-page
-- token, the window it began with, what was listed, the latest date read so far,
-- when it began), NULL when the
-- last listing was read to its end. The mark (high_water) moves only then, so a
-- backlog longer than one poll's pages is drained instead of re-read from the top.
ALTER TABLE event_poll_marks ADD COLUMN resume TEXT;

-- The latest cut below which the (object id, updated date) pairs were forgotten: a
-- late poll's record dated before it cannot be told apart from one announced, so it
-- is not announced again (see Store::commit_poll).
ALTER TABLE event_poll_marks ADD COLUMN pruned_before INTEGER NOT NULL DEFAULT 0;

-- Counts the commits of the mark: a poll's commit replaces resume only when no other
-- commit came between its read and its write (see Store::commit_poll).
ALTER TABLE event_poll_marks ADD COLUMN resume_version INTEGER NOT NULL DEFAULT 0;
