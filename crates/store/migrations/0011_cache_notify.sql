-- Nothing to change on SQLite: one node, whose caches are told of writes in-process
-- (PostgreSQL's 0011 adds the NOTIFY triggers that tell other nodes). Kept so both
-- backends carry the same migration numbers.
SELECT 1;
