-- Console login (issue 13): user passwords, server-side sessions, failed-login
-- counters, and the user and organization secrets kept sealed by the vault beside
-- the hashes that lookups use, so a logged-in user can read them back
-- (GET /elements/api-v1/ui/getSecrets). Secrets made before this migration have
-- only their hash (secret_sealed NULL) until `reset-secret` replaces them.

-- Argon2id PHC string; NULL: the user cannot log in with a password.
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- Vault blob of the user's secret, bound to secret_hash (see store::tenant_secret_aad),
-- and the id of the key that sealed it, for rotate-key.
ALTER TABLE users ADD COLUMN secret_sealed BLOB;
ALTER TABLE users ADD COLUMN secret_key_id INTEGER;
ALTER TABLE organizations ADD COLUMN secret_sealed BLOB;
ALTER TABLE organizations ADD COLUMN secret_key_id INTEGER;

-- Emails are unique per organization only; login names a user by email alone, so
-- at most one user per email may hold a password.
CREATE UNIQUE INDEX users_password_email ON users (lower(email)) WHERE password_hash IS NOT NULL;

-- One row per login. The cookie holds a random token; only its SHA-256 is kept.
-- Times are Unix milliseconds.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_last_use ON sessions (last_used_at);

-- Failed logins per scope ('email:<lowercased email>' or 'ip:<address>') in the
-- current one-minute window (window_start, Unix ms).
CREATE TABLE login_failures (
    scope        TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL
);
