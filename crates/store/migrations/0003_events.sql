-- Events: the event log, the delivery job of each event (written in the same
-- transaction as the event), callback URLs a receiver retired with 410, and the
-- poller's high-water marks and de-duplication set. Times named *_at that are
-- INTEGER are epoch milliseconds (compared in the claim query); TEXT times are
-- RFC 3339 UTC.

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The public id (eventId in messages and the log).
    event_id        TEXT NOT NULL UNIQUE,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    instance_id     INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    element_key     TEXT NOT NULL,
    -- polling | webhook | instance (health messages)
    source          TEXT NOT NULL,
    -- NEW | RECEIVED | DISPATCHED | CONSUMED | NOTIFIED
    status          TEXT NOT NULL,
    event_date      TEXT NOT NULL,
    -- The vendor payload as received, as text.
    provider_data   TEXT NOT NULL,
    -- JSON array of {eventType, objectType, objectId, date}: message.events.
    notified_data   TEXT NOT NULL,
    -- JSON object: message.raw.
    raw             TEXT NOT NULL
);
CREATE INDEX events_by_org ON events (organization_id, id);
CREATE INDEX events_by_instance ON events (instance_id, id);

CREATE TABLE event_deliveries (
    event_row       INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
    instance_id     INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    -- pending | delivered | failed | stopped
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the next attempt is due (pending only).
    next_attempt_at INTEGER,
    -- A worker that claimed the job holds it until then; never a lock held
    -- during the HTTP call. A worker that dies lets the lease run out.
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    last_attempt_at INTEGER
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX event_deliveries_by_instance ON event_deliveries (instance_id, state);

-- A callback URL that answered 410 Gone: nothing more is sent to it for that
-- instance until the URL changes or a redeliver call clears it.
CREATE TABLE event_stopped_callbacks (
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    stopped_at  TEXT NOT NULL,
    PRIMARY KEY (instance_id, url)
);

-- The poller's position per instance and resource: vendor records updated
-- before high_water (less the overlap window) have been turned into events.
CREATE TABLE event_poll_marks (
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    resource    TEXT NOT NULL,
    high_water  INTEGER NOT NULL,
    polled_at   TEXT NOT NULL,
    PRIMARY KEY (instance_id, resource)
);

-- (object id, updated date) pairs already turned into events inside the
-- overlap window; an insert that finds its pair here emits nothing.
CREATE TABLE event_poll_seen (
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    resource    TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (instance_id, resource, object_id, updated_at)
) WITHOUT ROWID;
