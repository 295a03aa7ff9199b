-- Cache invalidation across nodes. Every write that a node's caches depend on tells
-- the other nodes: NOTIFY on the channel switchyard_cache, delivered when the
-- writing transaction commits (and not at all if it rolls back); one transaction's
-- identical payloads are delivered once. Payloads (see crates/store/src/changes.rs):
--   instance:<id>  the instance's row or configuration changed, or it was deleted
--                  (disable, delete, credentials, refreshed tokens, validity);
--   callers        an organization's or user's secret changed, or one was deleted;
--   keys           the vault canary was sealed again: a new current master key.
-- Triggers rather than calls in the code, so every writer notifies: the API, the
-- CLI (reset-secret, rotate-key) and anything written later.

CREATE FUNCTION switchyard_instance_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('switchyard_cache', 'instance:' || OLD.id);
    ELSE
        PERFORM pg_notify('switchyard_cache', 'instance:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION switchyard_configuration_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('switchyard_cache', 'instance:' || OLD.instance_id);
    ELSE
        PERFORM pg_notify('switchyard_cache', 'instance:' || NEW.instance_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION switchyard_callers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchyard_cache', 'callers');
    RETURN NULL;
END $$;

CREATE FUNCTION switchyard_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchyard_cache', 'keys');
    RETURN NULL;
END $$;

-- A new instance is in no cache, so only updates and deletes of instances count.
CREATE TRIGGER instances_notify AFTER UPDATE OR DELETE ON instances
    FOR EACH ROW EXECUTE FUNCTION switchyard_instance_changed();
CREATE TRIGGER instance_configuration_notify AFTER INSERT OR UPDATE OR DELETE ON instance_configuration
    FOR EACH ROW EXECUTE FUNCTION switchyard_configuration_changed();
CREATE TRIGGER organizations_notify AFTER UPDATE OR DELETE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_callers_changed();
CREATE TRIGGER users_notify AFTER UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_callers_changed();
CREATE TRIGGER meta_notify AFTER INSERT OR UPDATE ON meta
    FOR EACH ROW WHEN (NEW.key = 'vault.canary') EXECUTE FUNCTION switchyard_keys_changed();
