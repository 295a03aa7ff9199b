-- Switchyard schema, version 1. Times are RFC 3339 UTC strings.

-- Small facts about this database: the vault canary, the paging key.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    -- SHA-256 of the 256-bit secret: high-entropy secrets need no slow hash.
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    email           TEXT NOT NULL,
    first_name      TEXT NOT NULL DEFAULT '',
    last_name       TEXT NOT NULL DEFAULT '',
    secret_hash     BLOB NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    UNIQUE (organization_id, email)
);

CREATE TABLE instances (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    user_id         INTEGER NOT NULL REFERENCES users(id),
    element_key     TEXT NOT NULL,
    name            TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE,
    tags            TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    valid           INTEGER NOT NULL DEFAULT 1,
    disabled        INTEGER NOT NULL DEFAULT 0,
    events_enabled  INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX instances_by_org ON instances (organization_id, id);

-- One row per configuration key. Exactly one of value (plain) and secret
-- (vault blob, key id copied out so rotation can find rows to re-encrypt) is set.
CREATE TABLE instance_configuration (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT,
    secret      BLOB,
    key_id      INTEGER,
    UNIQUE (instance_id, key),
    CHECK ((value IS NULL) <> (secret IS NULL))
);
CREATE INDEX instance_configuration_by_key_id ON instance_configuration (key_id) WHERE secret IS NOT NULL;
