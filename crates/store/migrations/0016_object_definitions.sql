-- Common resources (issue 14): an organization's own normalized objects
-- (`myContact`), defined at organization level (instance_id NULL) or for one
-- instance. `fields` is the JSON array of {"path", "type"} as the API validated it.
CREATE TABLE object_definitions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    instance_id     INTEGER REFERENCES instances(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    fields          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- One name per level: once in the organization, once per instance.
CREATE UNIQUE INDEX object_definitions_org_name ON object_definitions (organization_id, name) WHERE instance_id IS NULL;
CREATE UNIQUE INDEX object_definitions_instance_name ON object_definitions (instance_id, name) WHERE instance_id IS NOT NULL;
