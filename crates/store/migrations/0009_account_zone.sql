-- The vendor account's own time zone (an IANA name such as America/New_York), for
-- vendors that write dates as the account's local time without an offset (Keap's
-- Application/timezone setting). NULL until read: it is read at the instance's
-- first call that needs it, and cleared on re-authorization so it is read again.
ALTER TABLE instances ADD COLUMN account_zone TEXT;
