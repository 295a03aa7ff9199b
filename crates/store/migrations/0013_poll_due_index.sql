-- The poller claims due polls by due time (`Store::claim_due_polls`: the
-- earliest `next_due` first, up to a batch), so a tick reads only the due rows,
-- not every scheduled instance.
CREATE INDEX event_poll_due_by_next_due ON event_poll_due (next_due);
