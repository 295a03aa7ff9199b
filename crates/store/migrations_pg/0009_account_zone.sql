-- The vendor account's own time zone (an IANA name such as America/New_York),
-- NULL until read (PostgreSQL; see migrations/0009_account_zone.sql).
ALTER TABLE instances ADD COLUMN account_zone TEXT;
