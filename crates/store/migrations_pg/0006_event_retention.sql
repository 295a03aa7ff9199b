-- Finished deliveries by the time of their last attempt, for pruning the event log.
CREATE INDEX event_deliveries_finished ON event_deliveries (last_attempt_at) WHERE state <> 'pending';
