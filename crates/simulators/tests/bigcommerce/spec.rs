//! The vendor's specs, loaded at test time from `../shared/specs/bigcommerce` beside the
//! workspace, made ready for a JSON Schema validator (local `$ref`s inlined, OpenAPI
//! 3.0 `nullable` turned into type unions), and the v2 catalog field facts.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

pub fn specs_dir() -> PathBuf {
    // crates/simulators -> workspace root -> ../shared/specs; a git worktree of the
    // workspace sits deeper, so the nearest ancestor that has `shared/specs` wins.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().and_then(|p| p.parent()).expect("workspace root");
    let specs = |dir: &std::path::Path| dir.join("shared/specs/bigcommerce");
    root.ancestors().skip(1).map(specs).find(|d| d.is_dir()).unwrap_or_else(|| specs(root.parent().unwrap_or(root)))
}

fn load(file: &str) -> Value {
    let path = specs_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if file.ends_with(".json") {
        serde_json::from_str(&text).unwrap()
    } else {
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }
}

fn cached(file: &str) -> &'static Value {
    static SPECS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, &'static Value>>> = OnceLock::new();
    let map = SPECS.get_or_init(Default::default);
    let mut m = map.lock().unwrap();
    m.entry(file.to_string()).or_insert_with(|| Box::leak(Box::new(load(file))))
}

fn pointer<'a>(root: &'a Value, r: &str) -> &'a Value {
    let p = r.strip_prefix('#').unwrap_or_else(|| panic!("only local refs are supported: {r}"));
    root.pointer(p).unwrap_or_else(|| panic!("dangling ref {r}"))
}

/// Inlines local `$ref`s, rewrites `nullable`, and reads `oneOf` as `anyOf`.
fn prepare(root: &Value, v: &Value, depth: usize) -> Value {
    assert!(depth < 40, "schema too deep (recursive $ref?)");
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                return prepare(root, pointer(root, r), depth + 1);
            }
            let mut out = Map::new();
            for (k, x) in o {
                // Annotations only; examples may hold anything.
                if matches!(k.as_str(), "example" | "examples" | "x-examples" | "xml" | "discriminator") {
                    continue;
                }
                // The vendor's specs use `oneOf` for alternatives that overlap (e.g.
                // customer groups' `discount_rules`: four array shapes none of which
                // excludes the others, so no value can match exactly one). They mean
                // `anyOf`, and that is what is checked.
                let key = if k == "oneOf" { "anyOf".to_string() } else { k.clone() };
                out.insert(key, prepare(root, x, depth + 1));
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(e)) = out.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => return json!({ "anyOf": [Value::Object(out), { "type": "null" }] }),
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| prepare(root, x, depth + 1)).collect()),
        _ => v.clone(),
    }
}

/// The JSON response schema of an operation, ready for validation.
pub fn response_schema(file: &str, path: &str, method: &str, status: &str) -> Value {
    let root = cached(file);
    let op = root["paths"][path][method].clone();
    assert!(op.is_object(), "{file}: no {method} {path}");
    let mut resp = op["responses"][status].clone();
    assert!(resp.is_object(), "{file}: {method} {path} has no {status} response");
    if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
        resp = pointer(root, r).clone();
    }
    let schema = resp["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "{file}: {method} {path} {status} has no JSON schema");
    prepare(root, &schema, 0)
}

/// Validates `instance` against `schema`, failing with every error.
pub fn validate(what: &str, schema: &Value, instance: &Value) {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(schema)
        .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what}: the answer does not match the vendor spec:\n{}\n{}", errors.join("\n"), instance);
}

/// Validates an operation's answer against its documented response.
pub fn check(file: &str, path: &str, method: &str, status: &str, instance: &Value) {
    let schema = response_schema(file, path, method, status);
    validate(&format!("{method} {path} {status}"), &schema, instance);
}

/// Validates a webhook callback body against the vendor's payload schema of its scope:
/// `_all.yml` must list the scope (its entry names the callback file `store_order_created.yml`
/// for `store/order/created`), and the schema of that name in `webhooks.v3.yml`'s
/// components must accept the body.
pub fn check_callback(payload: &Value) {
    let scope = payload["scope"].as_str().unwrap_or_else(|| panic!("callback without a scope: {payload}"));
    let name = scope.replace('/', "_");
    let entry = &cached("_all.yml")["properties"][scope];
    assert!(entry.is_object(), "_all.yml does not list the scope {scope}");
    let r = entry["properties"]["allOf"][0]["$ref"].as_str().unwrap_or("");
    assert!(r.ends_with(&format!("/{name}.yml")), "_all.yml names {r} for {scope}");
    let root = cached("webhooks.v3.yml");
    let schema = &root["components"]["schemas"][&name];
    assert!(schema.is_object(), "webhooks.v3.yml has no schema {name}");
    validate(&format!("callback {scope}"), &prepare(root, schema, 0), payload);
}

/// Checks a v2 catalog object against the field names and types of
/// `v2-catalog-facts.json`: every listed field is present (except `absent`) and has its
/// type; `nullable` fields may be null.
pub fn check_facts(resource: &str, object: &str, v: &Value, absent: &[&str], nullable: &[&str]) {
    let facts = cached("v2-catalog-facts.json");
    let fields = facts["resources"][resource]["objects"][object]
        .as_object()
        .unwrap_or_else(|| panic!("no facts for {resource}/{object}"));
    assert!(!fields.is_empty());
    let o = v.as_object().unwrap_or_else(|| panic!("{resource}: not an object: {v}"));
    for (name, ty) in fields {
        let ty = ty.as_str().unwrap();
        if absent.contains(&name.as_str()) || ty == "store_v2_products_read_only" {
            continue;
        }
        let x = o.get(name).unwrap_or_else(|| panic!("{resource}: field {name} missing in {v}"));
        if x.is_null() && nullable.contains(&name.as_str()) {
            continue;
        }
        let ok = match ty {
            "int" | "integer" => x.is_i64() || x.is_u64(),
            "string" | "text" | "enum" => x.is_string(),
            "decimal" => x.as_str().is_some_and(is_decimal),
            "boolean" => x.is_boolean(),
            "date" => x.as_str().is_some_and(|s| s.is_empty() || chrono::DateTime::parse_from_rfc2822(s).is_ok()),
            "array" => x.is_array(),
            "object" => x.is_object(),
            "object_array" => x.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
            "resource" | "object/resource" => {
                x.get("url").and_then(Value::as_str).is_some_and(|u| u.starts_with("http")) && x.get("resource").and_then(Value::as_str).is_some_and(|r| r.starts_with('/'))
            }
            other => panic!("{resource}: unknown fact type {other} for {name}"),
        };
        assert!(ok, "{resource}: field {name} should be {ty}, is {x}");
    }
}

/// `"336.3200"`: the vendor's decimal strings.
pub fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        Some((i, f)) => !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && f.len() == 4 && f.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

#[test]
fn specs_load_and_prepare() {
    // Every schema used by the tests compiles.
    for (file, path, method, status) in [
        ("orders.v2.oas2.yml", "/orders", "get", "200"),
        ("orders.v2.oas2.yml", "/orders/{order_id}", "get", "200"),
        ("orders.v2.oas2.yml", "/orders/count", "get", "200"),
        ("store_information.v2.yml", "/store", "get", "200"),
        ("customers.v2.yml", "/customers", "get", "200"),
        ("brands.v2.yaml", "/brands", "get", "200"),
        ("custom-fields.v2.yml", "/products/{product_id}/custom_fields", "get", "200"),
        ("webhooks.v3.yml", "/hooks", "get", "200"),
        ("webhooks.v3.yml", "/hooks", "post", "200"),
        ("webhooks.v3.yml", "/hooks", "post", "422"),
        ("webhooks.v3.yml", "/hooks/{webhook_id}", "get", "404"),
    ] {
        let s = response_schema(file, path, method, status);
        jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&s).unwrap();
    }
    assert!(is_decimal("336.3200"));
    assert!(!is_decimal("336.32"));
}
