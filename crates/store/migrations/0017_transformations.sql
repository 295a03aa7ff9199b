-- Transformations (issue 14): how an element's vendor object maps onto a common
-- resource (or onto a renamed copy of a vendor object), for every instance of the
-- element in an organization (instance_id NULL) or for one instance. `body` is
-- the transformation as the API validated it (JSON: vendorName, fields,
-- configuration); vendor_name is kept beside it for the in-use checks.
CREATE TABLE transformations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    element_key     TEXT NOT NULL,
    instance_id     INTEGER REFERENCES instances(id) ON DELETE CASCADE,
    object_name     TEXT NOT NULL,
    vendor_name     TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- One transformation per object: per element in the organization, once per instance.
CREATE UNIQUE INDEX transformations_org_object ON transformations (organization_id, element_key, object_name) WHERE instance_id IS NULL;
CREATE UNIQUE INDEX transformations_instance_object ON transformations (instance_id, object_name) WHERE instance_id IS NOT NULL;

-- Hub calls keep an organization's transformations in memory (the engine's
-- TransformationCache); other processes on this file hear of changes through the
-- change log (0014) as `transformations:<organization id>`.
CREATE TRIGGER transformations_added AFTER INSERT ON transformations
BEGIN
    INSERT INTO cache_changes (change) VALUES ('transformations:' || NEW.organization_id);
END;
CREATE TRIGGER transformations_changed AFTER UPDATE ON transformations
BEGIN
    INSERT INTO cache_changes (change) VALUES ('transformations:' || NEW.organization_id);
END;
CREATE TRIGGER transformations_deleted AFTER DELETE ON transformations
BEGIN
    INSERT INTO cache_changes (change) VALUES ('transformations:' || OLD.organization_id);
END;
