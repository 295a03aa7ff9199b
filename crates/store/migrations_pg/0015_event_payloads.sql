-- Smaller event rows. A polled event's message.raw is the vendor record
-- (provider_data) with "objectType" put in: storing both whole kept every record
-- twice. When raw_head and raw_tail are set, `raw` holds only the text put in,
-- and message.raw is the first raw_head bytes of provider_data, then `raw`, then
-- its last raw_tail bytes. When provider_data_z (raw_z) is set it holds the text
-- of provider_data (raw) deflated (RFC 1951), and the text column is ''. NULLs:
-- stored as before (every row written before this migration).
ALTER TABLE events ADD COLUMN raw_head BIGINT;
ALTER TABLE events ADD COLUMN raw_tail BIGINT;
ALTER TABLE events ADD COLUMN provider_data_z BYTEA;
ALTER TABLE events ADD COLUMN raw_z BYTEA;
