-- Cache invalidation across processes sharing one SQLite file (PostgreSQL's 0011
-- NOTIFY triggers do this for nodes on a shared server). Every write that a
-- process's caches depend on appends a row here in the writing transaction, with
-- the same payloads as PostgreSQL's notifications (crates/store/src/changes.rs):
--   instance:<id>  the instance's row or configuration changed, or it was deleted;
--   callers        an organization's or user's row changed, or one was deleted;
--   keys           the vault canary was sealed again: a new current master key.
-- Each serving process reads the rows past the last it saw once a second
-- (`Store::listen_changes`), so it can keep opened instances until they change
-- instead of re-reading them. AUTOINCREMENT: sequence numbers are never reused
-- and a rolled-back write takes none, so a gap before the first row read means
-- rows were pruned unread. Rows are pruned after ten minutes.
CREATE TABLE cache_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    change     TEXT NOT NULL,
    -- Unix seconds, for pruning.
    changed_at INTEGER NOT NULL DEFAULT (unixepoch())
);

-- A new instance is in no cache, so only updates and deletes of instances count.
CREATE TRIGGER instances_changed AFTER UPDATE ON instances
BEGIN
    INSERT INTO cache_changes (change) VALUES ('instance:' || NEW.id);
END;
CREATE TRIGGER instances_deleted AFTER DELETE ON instances
BEGIN
    INSERT INTO cache_changes (change) VALUES ('instance:' || OLD.id);
END;
CREATE TRIGGER instance_configuration_added AFTER INSERT ON instance_configuration
BEGIN
    INSERT INTO cache_changes (change) VALUES ('instance:' || NEW.instance_id);
END;
CREATE TRIGGER instance_configuration_changed AFTER UPDATE ON instance_configuration
BEGIN
    INSERT INTO cache_changes (change) VALUES ('instance:' || NEW.instance_id);
END;
CREATE TRIGGER instance_configuration_deleted AFTER DELETE ON instance_configuration
BEGIN
    INSERT INTO cache_changes (change) VALUES ('instance:' || OLD.instance_id);
END;
CREATE TRIGGER organizations_changed AFTER UPDATE ON organizations
BEGIN
    INSERT INTO cache_changes (change) VALUES ('callers');
END;
CREATE TRIGGER organizations_deleted AFTER DELETE ON organizations
BEGIN
    INSERT INTO cache_changes (change) VALUES ('callers');
END;
CREATE TRIGGER users_changed AFTER UPDATE ON users
BEGIN
    INSERT INTO cache_changes (change) VALUES ('callers');
END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO cache_changes (change) VALUES ('callers');
END;
CREATE TRIGGER vault_canary_added AFTER INSERT ON meta WHEN NEW.key = 'vault.canary'
BEGIN
    INSERT INTO cache_changes (change) VALUES ('keys');
END;
CREATE TRIGGER vault_canary_changed AFTER UPDATE ON meta WHEN NEW.key = 'vault.canary'
BEGIN
    INSERT INTO cache_changes (change) VALUES ('keys');
END;
