-- Console login (PostgreSQL; see migrations/0012_login.sql for what each part is for).
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN secret_sealed BYTEA;
ALTER TABLE users ADD COLUMN secret_key_id BIGINT;
ALTER TABLE organizations ADD COLUMN secret_sealed BYTEA;
ALTER TABLE organizations ADD COLUMN secret_key_id BIGINT;

CREATE UNIQUE INDEX users_password_email ON users (lower(email)) WHERE password_hash IS NOT NULL;

CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_last_use ON sessions (last_used_at);

CREATE TABLE login_failures (
    scope        TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
