-- OAuth 2.0 token refresh (PostgreSQL): one row per instance that ever refreshed.
-- `holder`/`lease_until` is the refresh lease, so two server processes on one
-- database never present the same refresh token. `refused` keeps the vendor's
-- words when a refresh was refused (invalid_grant), shown while the instance is invalid.
CREATE TABLE oauth_refresh (
    instance_id BIGINT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    holder      TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,   -- epoch ms; 0 or past: free
    refused     TEXT
);
