-- Nothing to change on PostgreSQL: nodes hear of each other's writes through the
-- NOTIFY triggers of 0011. SQLite's 0014 adds the change log that processes
-- sharing one file read instead. Kept so both backends carry the same numbers.
SELECT 1;
