//! An element's own OpenAPI document (`GET /elements/{keyOrId}/docs`): its hub
//! resources, their operations and record models, written from the definition
//! alone, so a new element file documents itself.

use serde_json::{json, Map, Value};

use crate::{Behaviour, ElementDefinition, FieldType, Operation, Resource};

/// OpenAPI 3.0 for the element's hub API under `/elements/api-v2`.
pub fn openapi(def: &ElementDefinition) -> Value {
    let mut paths = Map::new();
    for resource in &def.resources {
        for &op in &resource.operations {
            let (method, suffix) = op.hub_shape();
            let path = format!("/hubs/{}{}{suffix}", def.hub, resource.path);
            let entry = paths.entry(path.clone()).or_insert_with(|| json!({}));
            entry[method.to_ascii_lowercase()] = operation(def, resource, op, &path);
        }
    }
    let mut schemas = Map::new();
    for (name, model) in &def.models {
        let mut properties = Map::new();
        for (field, kind) in model.iter() {
            let mut schema = field_schema(def, *kind);
            if model.is_nullable(field) {
                schema["nullable"] = Value::Bool(true);
            } else if replaced_by_null(def, *kind) {
                schema["nullable"] = Value::Bool(true);
                schema["description"] = Value::String(
                    "null when the vendor wrote a value that cannot be decoded (an Elements-Warning header names the field)".into(),
                );
            }
            insert_field(&mut properties, field, schema);
        }
        schemas.insert(schema_name(name), json!({"type": "object", "properties": properties}));
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["message", "requestId"], "properties": {
            "message": {"type": "string"},
            "requestId": {"type": "string"},
            "providerMessage": {"type": "string", "description": "What the vendor said"}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("{} hub API ({})", def.name, def.key),
            "version": "1",
            "description": format!(
                "Element {} (id {}), hub `{}`. Calls carry `Authorization: User <secret>, Organization <secret>, Element <instance token>`. {}{}",
                def.key, def.id, def.hub, def.description, setup_markdown(def)
            ),
        },
        "servers": [{"url": "/elements/api-v2"}],
        "security": [{"Authorization": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"Authorization": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        },
    })
}

/// The setup guides as a markdown list under a "Setup" heading, each key with
/// its label, steps and vendor page; empty when the file gives none.
fn setup_markdown(def: &ElementDefinition) -> String {
    if def.setup.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n\n## Setup\n");
    for guide in &def.setup {
        let label = def.parameter(&guide.key).map_or(guide.key.as_str(), |p| p.name.as_str());
        text.push_str(&format!("\n- **{label}** (`{}`):\n", guide.key));
        for (n, step) in guide.steps.iter().enumerate() {
            text.push_str(&format!("  {}. {step}\n", n + 1));
        }
        text.push_str(&format!("  <{}>\n", guide.link));
    }
    text
}

/// Adds to the element's document `doc` (from [`openapi`]) an object that a
/// transformation maps onto its object `vendor_object`: the vendor object's paths
/// (the object, a record, the count) under `/hubs/{hub}/{name}`, their operation ids
/// suffixed `As_{name}` (ids are unique in a document), and a schema
/// `common.{name}` of `fields` (`(dotted path, string|number|boolean|date)`) in
/// place of the vendor record's. A nested vendor object, which cannot be called
/// by another name, is left out.
pub fn add_common_object(doc: &mut Value, def: &ElementDefinition, name: &str, vendor_object: &str, fields: &[(&str, &str)]) {
    let Some((_, resource)) = crate::objects(def).into_iter().find(|(n, _)| n == vendor_object) else { return };
    if resource.path.contains('{') {
        return;
    }
    let vendor_prefix = format!("/hubs/{}{}", def.hub, resource.path);
    let vendor_ref = resource.model.as_deref().map(|m| format!("#/components/schemas/{}", schema_name(m)));
    let common_ref = format!("#/components/schemas/common.{name}");
    let copies: Vec<(String, Value)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(path, item)| {
            let suffix = path.strip_prefix(&vendor_prefix)?;
            matches!(suffix, "" | "/{id}" | "/count").then(|| (format!("/hubs/{}/{name}{suffix}", def.hub), item.clone()))
        })
        .collect();
    for (path, mut item) in copies {
        if let Some(vendor_ref) = &vendor_ref {
            swap_refs(&mut item, vendor_ref, &common_ref);
        }
        for operation in item.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                operation["operationId"] = Value::String(format!("{id}As_{name}"));
            }
            if let Some(summary) = operation.get("summary").and_then(Value::as_str) {
                operation["summary"] = Value::String(format!("{summary}, as {name}"));
            }
        }
        if let Some(paths) = doc["paths"].as_object_mut() {
            paths.insert(path, item);
        }
    }
    let mut properties = Map::new();
    for (path, kind) in fields {
        let schema = match *kind {
            "date" => json!({"type": "string", "format": "date-time"}),
            other => json!({"type": other}),
        };
        insert_field(&mut properties, path, schema);
    }
    let description = format!("Common resource '{name}': element object '{vendor_object}' transformed");
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.insert(format!("common.{name}"), json!({"type": "object", "description": description, "properties": properties}));
    }
}

/// Every `$ref` to `from` in `value` made a `$ref` to `to`.
fn swap_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                if key == "$ref" && member.as_str() == Some(from) {
                    *member = Value::String(to.to_owned());
                } else {
                    swap_refs(member, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| swap_refs(item, from, to)),
        _ => {}
    }
}

/// `customerAddress` -> `CustomerAddress`.
fn schema_name(model: &str) -> String {
    let mut chars = model.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A field of a model; a dotted name (`billing_address.email`) nests under its parent.
fn insert_field(properties: &mut Map<String, Value>, field: &str, schema: Value) {
    match field.split_once('.') {
        None => {
            properties.insert(field.to_owned(), schema);
        }
        Some((parent, rest)) => {
            let parent = properties.entry(parent.to_owned()).or_insert_with(|| json!({"type": "object"}));
            if !parent["properties"].is_object() {
                parent["properties"] = json!({});
            }
            if let Some(children) = parent["properties"].as_object_mut() {
                insert_field(children, rest, schema);
            }
        }
    }
}

/// The JSON the vendor (and so the hub) uses for a field type, honouring the
/// element's behaviours (decimal strings, RFC 2822 dates, link objects).
fn field_schema(def: &ElementDefinition, kind: FieldType) -> Value {
    let has = |b: Behaviour| def.behaviours.contains(&b);
    match kind {
        FieldType::Integer => json!({"type": "integer"}),
        FieldType::Decimal if has(Behaviour::DecimalStrings) => {
            json!({"type": "string", "format": "decimal", "example": "12.5000"})
        }
        FieldType::Decimal => json!({"type": "number"}),
        FieldType::String => json!({"type": "string"}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date if has(Behaviour::Rfc2822Dates) => {
            json!({"type": "string", "format": "rfc2822", "example": "Tue, 20 Nov 2012 00:00:00 +0000"})
        }
        FieldType::Date => json!({"type": "string", "format": "date-time"}),
        FieldType::Object => json!({"type": "object"}),
        FieldType::Array => json!({"type": "array", "items": {}}),
        FieldType::Link => json!({"type": "object", "readOnly": true, "description": "A link to a related resource",
            "properties": {"url": {"type": "string"}, "resource": {"type": "string"}}}),
    }
}

/// XML-RPC scalars (`int`, `boolean`, `double`, `dateTime.iso8601`) whose text does
/// not parse are answered as `null` rather than failing the call (docs/choices.md).
fn replaced_by_null(def: &ElementDefinition, kind: FieldType) -> bool {
    def.protocol == crate::Protocol::XmlRpc
        && matches!(kind, FieldType::Integer | FieldType::Decimal | FieldType::Boolean | FieldType::Date)
}

fn operation(def: &ElementDefinition, resource: &Resource, op: Operation, path: &str) -> Value {
    let model = resource.model.as_deref().map(|m| json!({"$ref": format!("#/components/schemas/{}", schema_name(m))}));
    let record = model.clone().unwrap_or_else(|| json!({"type": "object"}));
    let name = resource.name();
    let (summary, answer) = match op {
        Operation::List => (format!("List {name}"), json!({"type": "array", "items": record})),
        Operation::Create => (format!("Create one of {name}"), record.clone()),
        Operation::Get => (format!("Retrieve one of {name}"), record.clone()),
        Operation::Update => (
            format!("Update one of {name} (sent to the vendor as {})", def.vendor_call(resource, op).0),
            record.clone(),
        ),
        Operation::Delete => (format!("Delete one of {name}"), json!({})),
        Operation::Count => (
            format!("Count {name}"),
            json!({"type": "object", "properties": {"count": {"type": "integer"}}}),
        ),
        Operation::Read => (format!("Read {name}"), json!({"type": "object"})),
    };
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if op == Operation::List {
        parameters.extend(list_parameters(def, resource));
    }
    let error = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut responses = Map::new();
    let ok = if op == Operation::Delete {
        json!({"description": "Deleted"})
    } else {
        json!({"description": "OK", "content": {"application/json": {"schema": answer}}})
    };
    responses.insert("200".into(), ok);
    for (status, why) in [
        ("400", "Bad input (e.g. a CEQL clause that cannot be honoured)"),
        ("401", "Missing or wrong credentials"),
        ("403", "The instance is disabled"),
        ("404", "No such record or resource"),
        ("502", "The vendor failed; its status and words in providerMessage"),
        ("504", "The vendor did not answer in time"),
    ] {
        let mut e = error.clone();
        e["description"] = Value::String(why.to_owned());
        responses.insert(status.into(), e);
    }
    let mut operation = json!({
        "tags": [name],
        "summary": summary,
        "operationId": format!("{}{}", op_verb(op), path_name(&resource.path, op)),
        "parameters": parameters,
        "responses": responses,
    });
    if !resource.description.is_empty() {
        operation["description"] = Value::String(resource.description.clone());
    }
    if matches!(op, Operation::Create | Operation::Update) {
        operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": record}}});
    }
    operation
}

fn list_parameters(def: &ElementDefinition, resource: &Resource) -> Vec<Value> {
    let mut where_help = "CEQL filter, e.g. `id > 5 AND status = 'Shipped'`.".to_owned();
    if def.protocol == crate::Protocol::XmlRpc {
        where_help.push_str(
            " `=`, `!=`, `<`, `<=`, `>`, `>=`, `LIKE`, `IS [NOT] NULL` joined by AND are sent to the vendor's queryData \
             (one clause per field); the rest is filtered by Switchyard.",
        );
    } else if !resource.where_map.is_empty() {
        let fields: Vec<&str> = resource.where_map.keys().map(String::as_str).collect();
        where_help.push_str(&format!(
            " Sent to the vendor as its own filters: {}; other clauses are filtered by Switchyard.",
            fields.join(", ")
        ));
    }
    let mut out = vec![
        json!({"name": "where", "in": "query", "schema": {"type": "string"}, "description": where_help}),
        json!({"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": def.paging_of(resource).max_page_size(), "default": 200}}),
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
        json!({"name": "nextPage", "in": "query", "schema": {"type": "string"},
            "description": "The Elements-Next-Page-Token of the previous page"}),
        json!({"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "Comma list of fields to return"}),
    ];
    if let Some(sort) = &resource.order_by {
        out.push(json!({"name": "orderBy", "in": "query", "schema": {"type": "string"},
            "description": format!("`field asc|desc`, one of: {}", sort.fields.join(", "))}));
    }
    out
}

fn op_verb(op: Operation) -> &'static str {
    match op {
        Operation::List => "list",
        Operation::Create => "create",
        Operation::Get => "get",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Count => "count",
        Operation::Read => "read",
    }
}

/// `/orders/{orderId}/shipments` -> `OrdersByOrderIdShipments`: unique per resource path,
/// so that it differs from the store-wide `/orders/shipments` (`OrdersShipments`).
fn path_name(path: &str, op: Operation) -> String {
    let name: String = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(param) => format!("By{}", schema_name(param)),
            None => schema_name(s),
        })
        .collect();
    if op == Operation::Count {
        format!("{name}Count")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    #[test]
    fn bigcommerce_documents_every_resource_with_its_model() {
        let catalog = Catalog::builtin();
        let def = catalog.get("bigcommerce").unwrap();
        let doc = openapi(def);
        let paths = doc["paths"].as_object().unwrap();
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        let declared: usize = def.resources.iter().map(|r| r.operations.len()).sum();
        assert_eq!(operations, declared, "one OpenAPI operation per declared operation");
        let patch = &doc["paths"]["/hubs/ecommerce/orders/{id}"]["patch"];
        assert_eq!(patch["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Order");
        assert!(patch["summary"].as_str().unwrap().contains("PUT"));
        let order = &doc["components"]["schemas"]["Order"]["properties"];
        assert_eq!(order["date_created"]["format"], "rfc2822");
        assert_eq!(order["total_inc_tax"]["type"], "string", "decimal strings");
        let list = &doc["paths"]["/hubs/ecommerce/orders"]["get"];
        assert!(list["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "orderBy"));
        let ids: Vec<&str> = paths.values().flat_map(|p| p.as_object().unwrap().values()).map(|o| o["operationId"].as_str().unwrap()).collect();
        let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique: {ids:?}");
        let shipments = &doc["paths"]["/hubs/ecommerce/orders/{orderId}/shipments/{id}"]["get"]["parameters"];
        assert_eq!(shipments.as_array().unwrap().len(), 2, "both path parameters");
    }

    #[test]
    fn the_description_lists_the_setup_guides_after_the_element_text() {
        let catalog = Catalog::builtin();
        let def = catalog.get("infusionsoftcrm").unwrap();
        let text = openapi(def)["info"]["description"].as_str().unwrap().to_owned();
        let (intro, setup) = text.split_once("\n\n## Setup\n").unwrap();
        assert!(intro.starts_with("Element infusionsoftcrm (id 191)") && intro.ends_with(&def.description), "{intro}");
        assert!(setup.starts_with("\n- **Encrypted Key** (`infusionsoft.private.key`):\n  1. "), "{setup}");
        assert!(setup.contains("\n  <https://developer.infusionsoft.com/getting-started-oauth-keys/>\n"), "{setup}");
        let mut bare = (**def).clone();
        bare.setup.clear();
        let text = openapi(&bare)["info"]["description"].as_str().unwrap().to_owned();
        assert!(!text.contains("Setup") && text.ends_with(&def.description), "no heading without guides: {text}");
    }

    /// Fields the vendor sends as `null` allow it; the others do not.
    /// BigCommerce: orders.v2.oas2.yml `order_Shared` (`external_source`, ...) and
    /// `orderProducts` (`event_name`, ...), customers.v2.yml `customer_Base.form_fields`
    /// mark them `nullable`; the simulator sends them so. Keap: a scalar that cannot
    /// be decoded is answered as `null`.
    #[test]
    fn fields_the_vendor_sends_as_null_are_nullable() {
        let catalog = Catalog::builtin();
        let bc = openapi(catalog.get("bigcommerce").unwrap());
        let schemas = &bc["components"]["schemas"];
        for (model, field) in [("Order", "external_source"), ("Order", "credit_card_type"), ("OrderProduct", "event_name"),
            ("Customer", "form_fields"), ("Product", "brand"), ("ProductSku", "price")]
        {
            assert_eq!(schemas[model]["properties"][field]["nullable"], true, "{model}.{field}");
        }
        for (model, field) in [("Order", "id"), ("Order", "status"), ("Customer", "email")] {
            assert!(schemas[model]["properties"][field].get("nullable").is_none(), "{model}.{field}");
        }
        let keap = openapi(catalog.get("infusionsoftcrm").unwrap());
        let contact = &keap["components"]["schemas"]["Contact"]["properties"];
        assert_eq!(contact["LastUpdated"]["nullable"], true);
        assert!(contact["FirstName"].get("nullable").is_none(), "text is replaced by U+FFFD, not null");
    }

    #[test]
    fn a_nullable_field_reads_back_as_declared_and_an_unknown_type_is_refused() {
        let model: crate::Model = serde_yaml_ng::from_str("{a: string?, b: integer}").unwrap();
        assert!(model.is_nullable("a") && !model.is_nullable("b"));
        assert_eq!(model.get("a"), Some(&FieldType::String));
        assert_eq!(serde_json::to_value(&model).unwrap(), json!({"a": "string?", "b": "integer"}));
        let err = serde_yaml_ng::from_str::<crate::Model>("{a: strng?}").unwrap_err().to_string();
        assert!(err.contains("field 'a'") && err.contains("strng"), "{err}");
    }
}
