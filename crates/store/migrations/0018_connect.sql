-- Connect page (issue 15): sessions that let an organization's customer connect
-- one instance without a platform secret, and the single-use OAuth `state`
-- references of the console and the Connect page. Times are Unix milliseconds.

-- One row per Connect session. The URL holds a random token; only its SHA-256 is
-- kept. elements and tags are JSON arrays of strings. The signature key and the
-- preset configuration (a JSON object of strings) are vault blobs bound to
-- token_hash (see server::connect::connect_session_aad); key_id is the id of the
-- key that sealed them, for rotate-key. status: pending -> claimed (a node is
-- creating the instance) -> completed | failed, or claimed -> pending again when
-- the vendor refused. instance_id has no foreign key: the outcome is a record of
-- what happened and outlives the instance.
CREATE TABLE connect_sessions (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash           BLOB NOT NULL UNIQUE,
    organization_id      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id              INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    elements             TEXT NOT NULL,
    name                 TEXT,
    tags                 TEXT NOT NULL,
    redirect_url         TEXT,
    callback_url         TEXT,
    signature_key_sealed BLOB,
    configuration_sealed BLOB,
    key_id               INTEGER,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'completed', 'failed')),
    instance_id          INTEGER,
    error                TEXT,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    finished_at          INTEGER
);
CREATE INDEX connect_sessions_by_expiry ON connect_sessions (expires_at);
CREATE INDEX connect_sessions_by_user ON connect_sessions (user_id);

-- One row per OAuth authorization in flight: `state` sent to the vendor is a
-- random token (only its SHA-256 kept) taken once when the vendor sends the
-- browser back. purpose: 'console-create', 'console-reauthorize' or 'connect'.
-- payload_sealed is a vault blob of what the callback needs to finish the action,
-- sealed under key key_id.
CREATE TABLE oauth_states (
    state_hash         BLOB PRIMARY KEY,
    organization_id    INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose            TEXT NOT NULL CHECK (purpose IN ('console-create', 'console-reauthorize', 'connect')),
    element_key        TEXT NOT NULL,
    instance_id        INTEGER,
    connect_session_id INTEGER REFERENCES connect_sessions(id) ON DELETE CASCADE,
    payload_sealed     BLOB NOT NULL,
    key_id             INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL
);
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);
CREATE INDEX oauth_states_by_user ON oauth_states (user_id);
CREATE INDEX oauth_states_by_connect_session ON oauth_states (connect_session_id);
