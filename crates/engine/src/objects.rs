//! Cloud Elements' data layer (issue 14): object metadata and common resource
//! definitions (transformations are in [`crate::transformations`]). The metadata is computed from the element's data
//! (`switchyard_elements::object_metadata`); definitions are validated here and
//! kept by the store, scoped by organization. The server only routes and frames.
//!
//! Shapes follow Cloud Elements' docs (devportal `docs/guides/common-resources/`
//! `createapi.md`, `mappingapi.md`, `_includes/transformations.md`); the choices made
//! where they are silent are in docs/data-layer.md.

use http::StatusCode;
use serde_json::{json, Map, Value};
use switchyard_elements::{ElementDefinition, ObjectMetadata};
use switchyard_store::{DefinitionField, DefinitionScope, DefinitionWrite, ObjectDefinition};

use crate::{Engine, EngineError, OpenInstance};

/// The types a common resource field may have (`mappingapi.md`).
pub const FIELD_TYPES: [&str; 4] = ["string", "number", "boolean", "date"];
/// Longest definition name, in characters.
pub const MAX_NAME_LEN: usize = 100;
/// Longest field path, in characters, and deepest nesting (dotted segments).
pub const MAX_PATH_LEN: usize = 200;
pub const MAX_PATH_DEPTH: usize = 10;
/// Most fields in one definition.
pub const MAX_FIELDS: usize = 500;
/// Most definitions created by one `POST /organizations/objects/definitions`.
pub const MAX_DEFINITIONS_PER_CALL: usize = 100;

/// The element's object metadata, or a 404 naming the object.
pub fn element_object_metadata(def: &ElementDefinition, name: &str) -> Result<ObjectMetadata, EngineError> {
    switchyard_elements::object_metadata(def, name)
        .ok_or_else(|| EngineError::not_found(format!("Element {} has no object '{name}' (GET /objects lists them)", def.key)))
}

/// A `/hubs/{hub}/...` path names the instance's hub, as hub calls must.
fn check_hub(def: &ElementDefinition, hub: Option<&str>) -> Result<(), EngineError> {
    match hub {
        Some(hub) if hub != def.hub => Err(EngineError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub))),
        _ => Ok(()),
    }
}

impl Engine {
    /// `GET /objects` for an instance: its element's objects, then the objects a
    /// transformation maps for it (common resources, sorted) that are not already
    /// listed. `hub` (from `/hubs/{hub}/objects`) must be the element's.
    pub async fn instance_objects(&self, open: &OpenInstance, hub: Option<&str>) -> Result<Vec<String>, EngineError> {
        let def = self.element_of(&open.row)?;
        check_hub(&def, hub)?;
        let mut names = switchyard_elements::object_names(&def);
        for name in self.org_transformations(open.row.organization_id).await?.names_for(&open.row) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// `GET /objects/{objectName}/metadata` for an instance: a transformed
    /// object's mapped fields (`{"fields": [{"path", "type", "vendorPath",
    /// "vendorType"?, "mask"?, "vendorReadOnly"}]}`), else a vendor object's fields
    /// from the element's data, or a 404 naming the object.
    pub async fn instance_object_metadata(&self, open: &OpenInstance, hub: Option<&str>, name: &str) -> Result<Value, EngineError> {
        let def = self.element_of(&open.row)?;
        check_hub(&def, hub)?;
        if let Some(t) = self.transformation_for(&open.row, name).await? {
            return Ok(transformed_metadata(&t, name));
        }
        serde_json::to_value(element_object_metadata(&def, name)?).map_err(EngineError::internal)
    }

    /// The definitions of one level.
    pub async fn definitions(&self, org_id: i64, scope: DefinitionScope) -> Result<Vec<ObjectDefinition>, EngineError> {
        self.check_scope(org_id, scope).await?;
        Ok(self.store.object_definitions(org_id, scope).await?)
    }

    /// One definition, or a 404 naming it.
    pub async fn definition(&self, org_id: i64, scope: DefinitionScope, name: &str) -> Result<ObjectDefinition, EngineError> {
        self.check_scope(org_id, scope).await?;
        check_name(name)?;
        self.store.object_definition(org_id, scope, name).await?.ok_or_else(|| no_definition(scope, name))
    }

    /// Creates all of `definitions` or none; an existing name is a 409 naming it.
    pub async fn create_definitions(&self, org_id: i64, scope: DefinitionScope, definitions: &[ObjectDefinition]) -> Result<(), EngineError> {
        self.check_scope(org_id, scope).await?;
        match self.store.create_object_definitions(org_id, scope, definitions).await? {
            DefinitionWrite::Done => Ok(()),
            DefinitionWrite::Exists(name) => Err(EngineError::new(
                StatusCode::CONFLICT,
                format!("{} '{name}' already exists; PUT replaces it, nothing was created", what(scope)),
            )),
            // The instance went between the check and the write.
            DefinitionWrite::NoInstance | DefinitionWrite::Missing => Err(no_scope(scope)),
        }
    }

    /// Replaces an existing definition's fields; a missing one is a 404.
    pub async fn replace_definition(&self, org_id: i64, scope: DefinitionScope, definition: &ObjectDefinition) -> Result<(), EngineError> {
        self.check_scope(org_id, scope).await?;
        match self.store.replace_object_definition(org_id, scope, definition).await? {
            DefinitionWrite::Done => Ok(()),
            _ => Err(no_definition(scope, &definition.name)),
        }
    }

    /// Deletes one definition; a missing one is a 404, one that transformations
    /// still map a 409 naming them (nothing is deleted).
    pub async fn delete_definition(&self, org_id: i64, scope: DefinitionScope, name: &str) -> Result<(), EngineError> {
        self.check_scope(org_id, scope).await?;
        check_name(name)?;
        let instance = match scope {
            DefinitionScope::Organization => None,
            DefinitionScope::Instance(id) => Some(id),
        };
        match self.store.delete_definition_unused(org_id, instance, name).await? {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_definition(scope, name)),
            Err(users) => Err(EngineError::new(
                StatusCode::CONFLICT,
                format!(
                    "{} '{name}' is still mapped by the transformations of {}; delete those first",
                    what(scope),
                    users.join(", ")
                ),
            )),
        }
    }

    /// Deletes every definition of one level (`DELETE .../objects/definitions`).
    pub async fn delete_definitions(&self, org_id: i64, scope: DefinitionScope) -> Result<(), EngineError> {
        self.check_scope(org_id, scope).await?;
        self.store.delete_object_definitions(org_id, scope).await?;
        Ok(())
    }

    /// An instance level exists for the caller only when the instance is its organization's.
    async fn check_scope(&self, org_id: i64, scope: DefinitionScope) -> Result<(), EngineError> {
        match scope {
            DefinitionScope::Organization => Ok(()),
            DefinitionScope::Instance(id) => match self.store.instance(org_id, id).await? {
                Some(_) => Ok(()),
                None => Err(no_scope(scope)),
            },
        }
    }
}

/// `{"fields": [...]}` of a transformed object: its mapped fields as stored,
/// each with `vendorReadOnly` (filter and `size()` paths are read only).
fn transformed_metadata(t: &switchyard_transform::Transformation, name: &str) -> Value {
    let mut stored = t.to_json(name, "instance");
    let mut fields = match stored.get_mut("fields").map(Value::take) {
        Some(Value::Array(fields)) => fields,
        _ => Vec::new(),
    };
    for (field, mapped) in fields.iter_mut().zip(t.fields()) {
        if let Value::Object(members) = field {
            members.remove("level");
            members.insert("vendorReadOnly".into(), Value::Bool(!mapped.vendor_path().is_writable()));
        }
    }
    serde_json::json!({ "fields": fields })
}

fn what(scope: DefinitionScope) -> String {
    match scope {
        DefinitionScope::Organization => "Common resource".to_owned(),
        DefinitionScope::Instance(id) => format!("Common resource of instance {id}"),
    }
}

fn no_definition(scope: DefinitionScope, name: &str) -> EngineError {
    EngineError::not_found(format!("{} '{name}' does not exist", what(scope)))
}

fn no_scope(scope: DefinitionScope) -> EngineError {
    match scope {
        DefinitionScope::Instance(id) => EngineError::not_found(format!("No instance {id}")),
        DefinitionScope::Organization => EngineError::internal("the organization level has no instance to miss"),
    }
}

/// The level's name, as bodies and answers carry it (`"level": "organization"`).
pub fn level_name(scope: DefinitionScope) -> &'static str {
    match scope {
        DefinitionScope::Organization => "organization",
        DefinitionScope::Instance(_) => "instance",
    }
}

/// `{"fields": [{"path", "type"}...], "level"}`: one definition as answered.
pub fn definition_json(definition: &ObjectDefinition, scope: DefinitionScope) -> Value {
    json!({"fields": definition.fields, "level": level_name(scope)})
}

/// `{"<name>": {"fields": [...]}, ..., "level"}`: every definition of a level, as
/// Cloud Elements answered `GET /organizations/objects/definitions`.
pub fn definitions_json(definitions: &[ObjectDefinition], scope: DefinitionScope) -> Value {
    let mut out: Map<String, Value> = definitions.iter().map(|d| (d.name.clone(), json!({"fields": d.fields}))).collect();
    // A definition may itself be named `level`: then its object stays and the level goes.
    out.entry("level").or_insert_with(|| Value::String(level_name(scope).to_owned()));
    Value::Object(out)
}

fn bad(message: impl Into<String>) -> EngineError {
    EngineError::bad_request(message)
}

/// A JSON value's kind, in the caller's words.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most 64 characters of what the caller sent, for quoting back.
fn quoted(text: &str) -> String {
    let mut short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// A common resource's name: it becomes a path segment (`/hubs/{hub}/{name}`), so
/// letters, digits, `_` and `-`, starting with a letter or `_`.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    let valid_start = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let valid_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || !valid_start || !valid_rest {
        return Err(bad(format!(
            "'{}' is not a common resource name: 1 to {MAX_NAME_LEN} letters, digits, '_' or '-', starting with a letter or '_'",
            quoted(name)
        )));
    }
    Ok(())
}

/// The level a body names, if any, checked against the path's.
fn check_level(value: &Value, scope: DefinitionScope, at: &str) -> Result<(), EngineError> {
    match value.as_str() {
        Some("account") => Err(bad("accounts are not supported: Switchyard has organizations and instances only")),
        Some(level) if level == level_name(scope) => Ok(()),
        Some(level) => Err(bad(format!(
            "{at}level is '{}' but this path defines at {} level (the path chooses the level)",
            quoted(level),
            level_name(scope)
        ))),
        None => Err(bad(format!("{at}level must be a string, not {}", kind_of(value)))),
    }
}

/// One definition from its body `{"fields": [{"path", "type"}...], "level"?}`;
/// `at` prefixes where the body sits in the request (`myContact.` in a keyed body).
fn parse_body(name: &str, body: &Value, scope: DefinitionScope, at: &str) -> Result<ObjectDefinition, EngineError> {
    let Value::Object(members) = body else {
        return Err(bad(format!("{at}a definition must be an object with 'fields', not {}", kind_of(body))));
    };
    let mut fields = None;
    for (key, value) in members {
        match key.as_str() {
            "fields" => fields = Some(value),
            "level" => check_level(value, scope, at)?,
            other => return Err(bad(format!("{at}{}: unknown member; a definition has 'fields' (and 'level')", quoted(other)))),
        }
    }
    let fields = fields.ok_or_else(|| bad(format!("{at}fields is missing: an array of {{\"path\", \"type\"}}")))?;
    let Value::Array(items) = fields else {
        return Err(bad(format!("{at}fields must be an array of {{\"path\", \"type\"}}, not {}", kind_of(fields))));
    };
    if items.is_empty() {
        return Err(bad(format!("{at}fields is empty: a common resource has at least one field")));
    }
    if items.len() > MAX_FIELDS {
        return Err(bad(format!("{at}fields has {} entries; at most {MAX_FIELDS}", items.len())));
    }
    let mut out: Vec<DefinitionField> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(parse_field(item, &format!("{at}fields[{i}]"))?);
    }
    let paths: Vec<&str> = out.iter().map(|f| f.path.as_str()).collect();
    check_record_shape(&paths, &format!("{at}fields"))?;
    Ok(ObjectDefinition { name: name.to_owned(), fields: out })
}

/// Dotted paths that can be one record's fields: none given twice, none both a
/// value and the parent of others (`address` and `address.city`). `at` names the
/// list in the error (`fields`, `myContact.fields`).
pub(crate) fn check_record_shape(paths: &[&str], at: &str) -> Result<(), EngineError> {
    let parent = |p: &str, c: &str| c.len() > p.len() && c.starts_with(p) && c.as_bytes()[p.len()] == b'.';
    for (i, b) in paths.iter().enumerate() {
        for a in &paths[..i] {
            if a == b {
                return Err(bad(format!("{at}[{i}].path '{}' is given twice", quoted(b))));
            }
            if parent(a, b) || parent(b, a) {
                return Err(bad(format!(
                    "{at}[{i}].path '{}' and '{}' clash: a field cannot also hold nested fields",
                    quoted(b),
                    quoted(a)
                )));
            }
        }
    }
    Ok(())
}

fn parse_field(item: &Value, here: &str) -> Result<DefinitionField, EngineError> {
    let Value::Object(members) = item else {
        return Err(bad(format!("{here} must be an object {{\"path\", \"type\"}}, not {}", kind_of(item))));
    };
    let (mut path, mut kind) = (None, None);
    for (key, value) in members {
        let slot = match key.as_str() {
            "path" => &mut path,
            "type" => &mut kind,
            other => return Err(bad(format!("{here}.{}: unknown member; a field has 'path' and 'type'", quoted(other)))),
        };
        let text = value.as_str().ok_or_else(|| bad(format!("{here}.{key} must be a string, not {}", kind_of(value))))?;
        *slot = Some(text.to_owned());
    }
    let path = path.ok_or_else(|| bad(format!("{here}.path is missing")))?;
    let kind = kind.ok_or_else(|| bad(format!("{here}.type is missing: one of {}", FIELD_TYPES.join(", "))))?;
    check_path(&path, here)?;
    if !FIELD_TYPES.contains(&kind.as_str()) {
        return Err(bad(format!("{here}.type must be one of {}, not '{}'", FIELD_TYPES.join(", "), quoted(&kind))));
    }
    Ok(DefinitionField { path, kind })
}

/// A field path: dotted segments of letters, digits, `_` and `-` (no brackets or
/// spaces: those belong to vendor paths of transformations).
fn check_path(path: &str, here: &str) -> Result<(), EngineError> {
    let segments: Vec<&str> = path.split('.').collect();
    let segment_ok = |s: &&str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if path.chars().count() > MAX_PATH_LEN || segments.len() > MAX_PATH_DEPTH || !segments.iter().all(segment_ok) {
        return Err(bad(format!(
            "{here}.path '{}' is not a field path: up to {MAX_PATH_LEN} characters, up to {MAX_PATH_DEPTH} dotted segments \
             of letters, digits, '_' or '-' (address.city)",
            quoted(path)
        )));
    }
    Ok(())
}

/// The definition `name` from a single body (`POST|PUT .../objects/{name}/definitions`).
pub fn parse_definition(name: &str, body: &Value, scope: DefinitionScope) -> Result<ObjectDefinition, EngineError> {
    check_name(name)?;
    parse_body(name, body, scope, "")
}

/// The definitions of a keyed body (`POST .../objects/definitions`):
/// `{"<name>": {"fields": [...]}, ...}`, with an optional `"level": "<level>"`
/// member beside them (as `GET` answers it).
pub fn parse_definitions(body: &Map<String, Value>, scope: DefinitionScope) -> Result<Vec<ObjectDefinition>, EngineError> {
    let mut out = Vec::new();
    for (name, value) in body {
        if name == "level" && !value.is_object() {
            check_level(value, scope, "")?;
            continue;
        }
        check_name(name)?;
        out.push(parse_body(name, value, scope, &format!("{name}."))?);
    }
    if out.is_empty() {
        return Err(bad("The body names no common resource: {\"<name>\": {\"fields\": [{\"path\", \"type\"}]}}"));
    }
    if out.len() > MAX_DEFINITIONS_PER_CALL {
        return Err(bad(format!("The body defines {} common resources; at most {MAX_DEFINITIONS_PER_CALL} per call", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: DefinitionScope = DefinitionScope::Organization;

    #[test]
    fn names_are_path_segments_of_at_most_100_characters() {
        for good in ["a", "_x", "my-contact_2", &"n".repeat(MAX_NAME_LEN)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "2a", "-a", "a.b", "a/b", "my contact", &"n".repeat(MAX_NAME_LEN + 1)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.message.contains("is not a common resource name"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn paths_and_bodies_are_taken_up_to_their_bounds() {
        let one = |path: &str| json!({"fields": [{"path": path, "type": "string"}]});
        let at_most = |path: String| {
            assert!(parse_definition("a", &one(&path), ORG).is_ok(), "{path}");
            let longer = format!("{path}x");
            let deeper = format!("{path}.y");
            (refused(one(&longer)), refused(one(&deeper)))
        };
        // 200 characters in 10 segments: at both bounds at once.
        let path = format!("{}.{}", vec!["s"; 9].join("."), "l".repeat(MAX_PATH_LEN - 18));
        assert_eq!(path.len(), MAX_PATH_LEN);
        let (longer, deeper) = at_most(path);
        assert!(longer.contains("is not a field path") && deeper.contains("is not a field path"), "{longer} {deeper}");
        assert!(parse_definition("a", &one("a-b.c_d"), ORG).is_ok(), "'-' and '_' in a segment");
        // A field and a field below it cannot both be values; siblings can.
        let shape = |paths: &[&str]| check_record_shape(paths, "fields").is_ok();
        assert!(shape(&["a", "ab", "b.a"]) && !shape(&["a", "a.b"]) && !shape(&["a.b", "a"]) && !shape(&["a", "a"]));
        // 100 definitions in one call, not 101; a "level" beside them is not one.
        let mut body: Map<String, Value> = (0..MAX_DEFINITIONS_PER_CALL).map(|i| (format!("o{i}"), one("a"))).collect();
        body.insert("level".into(), json!("organization"));
        assert_eq!(parse_definitions(&body, ORG).unwrap().len(), MAX_DEFINITIONS_PER_CALL);
        body.insert("one_more".into(), one("a"));
        let e = parse_definitions(&body, ORG).unwrap_err();
        assert!(e.message.contains("defines 101 common resources; at most 100"), "{}", e.message);
        // A "level" that is an object is a common resource of that name.
        let named_level = json!({"level": one("a")});
        assert_eq!(parse_definitions(named_level.as_object().unwrap(), ORG).unwrap()[0].name, "level");
    }

    #[test]
    fn kinds_are_named_in_the_callers_words() {
        let kinds: Vec<&str> = [json!(null), json!(true), json!(1), json!("a"), json!([]), json!({})].iter().map(kind_of).collect();
        assert_eq!(kinds, ["null", "a boolean", "a number", "a string", "an array", "an object"]);
    }

    fn refused(body: Value) -> String {
        let e = parse_definition("myContact", &body, ORG).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        e.message
    }

    #[test]
    fn bodies_become_definitions() {
        let d = parse_definition(
            "myContact",
            &json!({"fields": [{"path": "id", "type": "string"}, {"path": "address.city", "type": "string"}], "level": "organization"}),
            ORG,
        )
        .unwrap();
        assert_eq!(d.fields.len(), 2);
        assert_eq!(definition_json(&d, ORG)["fields"][1], json!({"path": "address.city", "type": "string"}));
        let many = parse_definitions(
            json!({"a": {"fields": [{"path": "x", "type": "date"}]}, "level": "instance"}).as_object().unwrap(),
            DefinitionScope::Instance(3),
        )
        .unwrap();
        assert_eq!(many.len(), 1);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(refused(json!({})).contains("fields is missing"));
        assert!(refused(json!({"fields": {}})).contains("must be an array"));
        assert!(refused(json!({"fields": []})).contains("at least one field"));
        assert!(refused(json!({"fields": [{"path": "a", "type": "text"}]})).contains("fields[0].type must be one of"));
        assert!(refused(json!({"fields": [{"path": "a", "type": 5}]})).contains("fields[0].type must be a string"));
        assert!(refused(json!({"fields": [{"path": "a"}]})).contains("type is missing"));
        assert!(refused(json!({"fields": [{"path": "a..b", "type": "string"}]})).contains("not a field path"));
        assert!(refused(json!({"fields": [{"path": "a[0]", "type": "string"}]})).contains("not a field path"));
        assert!(refused(json!({"fields": [{"path": "a", "type": "string"}, {"path": "a", "type": "date"}]})).contains("twice"));
        assert!(refused(json!({"fields": [{"path": "a", "type": "string"}, {"path": "a.b", "type": "date"}]})).contains("clash"));
        let siblings = json!({"fields": [{"path": "ab", "type": "string"}, {"path": "a.b", "type": "date"}]});
        assert!(parse_definition("myContact", &siblings, ORG).is_ok(), "a prefix that is not a parent does not clash");
        assert!(refused(json!({"fields": [{"path": "a", "type": "string", "vendorPath": "x"}]})).contains("unknown member"));
        assert!(refused(json!({"fields": [{"path": "a", "type": "string"}], "level": "account"})).contains("accounts are not supported"));
        assert!(refused(json!({"fields": [{"path": "a", "type": "string"}], "level": "instance"})).contains("path chooses"));
        let mut many: Vec<Value> = (0..MAX_FIELDS).map(|i| json!({"path": format!("f{i}"), "type": "string"})).collect();
        assert!(parse_definition("myContact", &json!({"fields": many}), ORG).is_ok(), "exactly 500 fields");
        many.push(json!({"path": "one_more", "type": "string"}));
        assert!(refused(json!({"fields": many})).contains("fields has 501 entries; at most 500"));
        for name in ["", "1abc", "a b", "a/b", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(parse_definition(name, &json!({"fields": [{"path": "a", "type": "string"}]}), ORG).is_err(), "{name}");
        }
        let empty = parse_definitions(json!({"level": "organization"}).as_object().unwrap(), ORG).unwrap_err();
        assert!(empty.message.contains("names no common resource"));
        let nested = parse_definitions(json!({"ok": {"fields": [{"path": "a", "type": "nope"}]}}).as_object().unwrap(), ORG).unwrap_err();
        assert!(nested.message.starts_with("ok.fields[0].type"), "{}", nested.message);
    }

    #[test]
    fn what_the_caller_sent_is_quoted_back_cut_at_64_characters() {
        let unknown = |member: &str| refused(json!({"fields": [{"path": "a", "type": "string", member: 1}]}));
        assert_eq!(unknown("colour"), "fields[0].colour: unknown member; a field has 'path' and 'type'");
        let long = "é".repeat(64);
        assert!(unknown(&long).starts_with(&format!("fields[0].{long}: ")), "64 characters (128 bytes) are quoted whole");
        let longer = "é".repeat(65);
        assert!(unknown(&longer).starts_with(&format!("fields[0].{long}…: ")), "the 65th is cut");
    }
}
