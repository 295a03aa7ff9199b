//! The set of elements a server knows: the built-in files plus any loaded from a
//! directory, validated once at start. A definition the checks refuse (see
//! `check.rs`) stops the load with one line naming the file, the line, the field
//! and what the field allows.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::locate::Lines;
use crate::model::ElementDefinition;

/// The definitions shipped in the binary, as (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("bigcommerce.yaml", include_str!("../../../elements/bigcommerce.yaml")),
    ("infusionsoftcrm.yaml", include_str!("../../../elements/infusionsoftcrm.yaml")),
    ("infusionsoftmarketing.yaml", include_str!("../../../elements/infusionsoftmarketing.yaml")),
];

#[derive(Debug, Error)]
pub enum CatalogError {
    /// A definition refused: `{file}:{line}: {field}: {message}` (the line when the
    /// file writes the field or something around it, the field when one is at fault).
    #[error("{file}{}: {}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid { file: String, line: Option<usize>, field: Option<String>, message: String },
    #[error("reading element directory {dir}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where an element came from: a built-in file, or a file of a loaded directory.
#[derive(Debug, Clone)]
struct Origin {
    file: String,
    builtin: bool,
}

/// Element definitions by key, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_key: BTreeMap<String, Arc<ElementDefinition>>,
    origins: BTreeMap<String, Origin>,
}

impl Catalog {
    /// The elements embedded in the binary.
    pub fn builtin() -> Self {
        let mut catalog = Catalog::default();
        for (file, text) in BUILTIN {
            // The built-in files are checked by this crate's tests, so a failure
            // here is a build defect, not bad input.
            let def = parse(file, text).unwrap_or_else(|e| panic!("built-in element: {e}"));
            catalog.admit(def, file, text, true).unwrap_or_else(|e| panic!("built-in element: {e}"));
        }
        catalog
    }

    /// Adds every `*.yaml`/`*.yml`/`*.json` file of `dir`, in name order. A file
    /// whose `key` or `id` another element has is refused, unless it names the
    /// built-in element of its key in `replaces` (then it takes that element's place).
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, CatalogError> {
        let io = |source| CatalogError::Io { dir: dir.display().to_string(), source };
        let mut count = 0;
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "yaml" | "yml" | "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let file = path.display().to_string();
            let def = parse(&file, &text)?;
            self.admit(def, &file, &text, false)?;
            count += 1;
        }
        Ok(count)
    }

    /// Adds `def` (read from `file`) unless its key or id is taken.
    fn admit(&mut self, def: ElementDefinition, file: &str, text: &str, builtin: bool) -> Result<(), CatalogError> {
        let refuse = |field: &str, message: String| CatalogError::Invalid {
            file: file.to_owned(),
            line: Lines::of(text).line_of(field),
            field: Some(field.to_owned()),
            message,
        };
        let replacing = match (&def.replaces, self.origins.get(&def.key)) {
            (Some(_), Some(o)) if o.builtin => true,
            (Some(key), _) => {
                return Err(refuse(
                    "replaces",
                    format!("'{key}' is not the key of a built-in element still in place; allowed: the key of a built-in element this file stands in for, once"),
                ))
            }
            (None, Some(o)) => {
                let how = if o.builtin { format!(", or `replaces: {}` to stand in for the built-in one", def.key) } else { String::new() };
                return Err(refuse("key", format!("'{}' is already the key of {}; allowed: a key no other element has{how}", def.key, o.file)));
            }
            (None, None) => false,
        };
        if let Some(other) = self.by_key.values().find(|d| d.id == def.id && (d.key != def.key || !replacing)) {
            let taken_by = self.origins.get(&other.key).map_or(other.key.as_str(), |o| o.file.as_str());
            return Err(refuse("id", format!("{} is already the id of {taken_by}; allowed: an id no other element has", def.id)));
        }
        self.origins.insert(def.key.clone(), Origin { file: file.to_owned(), builtin });
        self.by_key.insert(def.key.clone(), Arc::new(def));
        Ok(())
    }

    /// Looks an element up by key or by numeric id.
    pub fn get(&self, key_or_id: &str) -> Option<&Arc<ElementDefinition>> {
        if let Some(def) = self.by_key.get(key_or_id) {
            return Some(def);
        }
        let id: i64 = key_or_id.parse().ok()?;
        self.by_key.values().find(|d| d.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ElementDefinition>> {
        self.by_key.values()
    }

    /// Replaces the default value of one configuration parameter, e.g. to point
    /// an element at a local simulator. Returns false if there is no such parameter.
    pub fn set_default(&mut self, element: &str, key: &str, value: &str) -> bool {
        let Some(def) = self.by_key.get_mut(element) else { return false };
        let def = Arc::make_mut(def);
        match def.configuration.iter_mut().find(|p| p.key == key) {
            Some(param) => {
                param.default_value = Some(value.to_owned());
                true
            }
            None => false,
        }
    }
}

/// Parses one definition and runs every check of `check.rs` on it. `file` names
/// it in refusals (`file:line: field: what is wrong; allowed: ...`).
pub fn parse(file: &str, text: &str) -> Result<ElementDefinition, CatalogError> {
    let def: ElementDefinition = if file.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| CatalogError::Invalid {
            file: file.to_owned(),
            line: Some(e.line()).filter(|l| *l > 0),
            field: None,
            message: strip_location(&e.to_string()),
        })?
    } else {
        // The field path of a missing or mistyped field (the parser gives a line only,
        // and for a missing field the line of the document's start).
        serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e| {
            let path = e.path().to_string();
            let e = e.into_inner();
            let field = (!path.is_empty() && path != ".").then_some(path);
            CatalogError::Invalid {
                file: file.to_owned(),
                line: field.as_deref().and_then(|f| Lines::of(text).line_of(f)).or(e.location().map(|l| l.line())),
                field,
                message: strip_location(&e.to_string()),
            }
        })?
    };
    if let Some(r) = crate::check::first_refusal(&def) {
        return Err(CatalogError::Invalid {
            file: file.to_owned(),
            line: Lines::of(text).line_of(&r.field),
            field: Some(r.field),
            message: format!("{}; allowed: {}", r.problem, r.allowed),
        });
    }
    Ok(def)
}

/// A parser's message without its trailing " at line L column C" (the line is
/// given in front).
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Operation, ParameterType};

    #[test]
    fn builtin_elements_load_with_the_seed_keys() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        assert_eq!(bc.id, 274);
        assert_eq!(bc.hub, "ecommerce");
        assert_eq!(catalog.get("274").unwrap().key, "bigcommerce");
        let label = |k: &str| bc.parameter(k).unwrap().name.as_str();
        assert_eq!(label("username"), "Username");
        assert_eq!(label("password"), "API Token");
        assert_eq!(label("store.url"), "API Path");
        assert_eq!(bc.parameter("password").unwrap().kind, ParameterType::Password);
        assert!(bc.is_secret("password"));
        assert!(bc.is_secret("event.notification.signature.key"));
        assert!(!bc.is_secret("username"));
        for key in [
            "event.notification.enabled",
            "event.notification.callback.url",
            "event.notification.signature.key",
            "event.vendor.type",
            "event.poller.refresh_interval",
            "event.poller.configuration",
        ] {
            assert!(bc.parameter(key).is_some(), "{key} missing");
        }
    }

    #[test]
    fn bigcommerce_credentials_are_required_in_the_mode_that_uses_them() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let config = |mode: &str| BTreeMap::from([("authentication.type".to_owned(), mode.to_owned())]);
        let mut basic = bc.required_keys(&BTreeMap::new());
        basic.sort_unstable();
        assert_eq!(basic, ["password", "store.url", "username"]);
        let mut custom = bc.required_keys(&config("custom"));
        custom.sort_unstable();
        assert_eq!(custom, ["oauth.api.key", "oauth.user.token", "store.url"]);
        assert_eq!(bc.authentication_for(&config("custom")).unwrap().type_name(), "custom");
        assert_eq!(bc.authentication_for(&BTreeMap::new()).unwrap().type_name(), "basic");
        assert!(bc.authentication_for(&config("token")).is_none());
        assert!(bc.is_secret("oauth.user.token"));
        let hooks = bc.events.webhooks.as_ref().unwrap();
        assert_eq!(hooks.object_of("store/order/statusUpdated"), Some("orders"));
        assert_eq!(hooks.object_of("store/cart/created"), None);
        assert_eq!(hooks.event_type_of("store/order/archived"), Some("DELETED"));
        // BigCommerce's callback (webhooks.v3.yml, "Example callback structure"): `hash`
        // is a digest of the record, the same for every change of it, so it is left out.
        let call = serde_json::json!({"producer": "stores/abc", "hash": "dd70", "created_at": 1561479335,
            "store_id": "1", "scope": "store/order/created", "data": {"type": "order", "id": 223}});
        let digest = hooks.digest_of(&call).unwrap();
        assert_eq!(digest, r#"["store/order/created","order","223","1561479335","stores/abc"]"#);
        // An id written as a string is the same id (found by a review: 101 and "101"
        // were two events).
        let mut as_text = call.clone();
        as_text["data"]["id"] = "223".into();
        assert_eq!(hooks.digest_of(&as_text).as_deref(), Some(digest.as_str()));
        let mut other_hash = call.clone();
        other_hash["hash"] = "ffff".into();
        assert_eq!(hooks.digest_of(&other_hash).as_deref(), Some(digest.as_str()));
        let mut later = call.clone();
        later["created_at"] = 1561479336.into();
        assert_ne!(hooks.digest_of(&later).as_deref(), Some(digest.as_str()));
        let mut timeless = call;
        timeless.as_object_mut().unwrap().remove("created_at");
        assert_eq!(hooks.digest_of(&timeless), None, "a call lacking a value is never a repeat");
    }

    #[test]
    fn a_choice_must_match_its_key_and_webhooks_their_resources() {
        let text = include_str!("../../../elements/bigcommerce.yaml");
        let refused = |from: &str, to: &str, why: &str| {
            assert!(text.contains(from), "{from}");
            let err = parse("bigcommerce.yaml", &text.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        };
        refused("options: [basic, custom]", "options: [basic, custom, token]", "exactly the modes");
        refused("defaultValue: basic,", "defaultValue: token,", "default naming a mode");
        refused("key: authentication.type\n", "key: auth.kind\n", "not a configuration key");
        refused("orders: \"store/order/*\"", "coupons: \"store/order/*\"", "'coupons'");
        refused("archived: DELETED", "archived: GONE", "GONE");
        refused("digest: [/scope,", "digest: [scope,", "not a JSON pointer");
        refused("digest: [/scope,", "digest: [/producer, /scope,", "named twice");
    }

    #[test]
    fn infusionsoft_elements_keep_the_seed_ids_keys_and_defaults() {
        let catalog = Catalog::builtin();
        for (key, id, hub) in [("infusionsoftcrm", 191, "crm"), ("infusionsoftmarketing", 192, "marketing")] {
            let def = catalog.get(key).unwrap();
            assert_eq!((def.id, def.hub.as_str(), def.authentication.type_name()), (id, hub, "oauth2"));
            assert_eq!(catalog.get(&id.to_string()).unwrap().key, key);
            let default = |k: &str| def.parameter(k).unwrap().default_value.clone();
            assert_eq!(default("oauth.authorization.url").as_deref(), Some("https://accounts.infusionsoft.com/app/oauth/authorize"));
            assert_eq!(default("oauth.token.url").as_deref(), Some("https://api.infusionsoft.com/token"));
            assert_eq!(default("base.url").as_deref(), Some("https://api.infusionsoft.com/crm"));
            for secret in ["infusionsoft.private.key", "oauth.api.secret", "oauth.user.token", "oauth.user.refresh_token"] {
                assert!(def.is_secret(secret), "{key}: {secret}");
            }
            for k in ["oauth.api.key", "oauth.callback.url", "oauth.user.refresh_time", "oauth.user.refresh_interval", "event.poller.configuration"] {
                assert!(def.parameter(k).is_some(), "{key}: {k}");
                assert!(!def.is_secret(k));
            }
            let required: Vec<&str> = def.configuration.iter().filter(|p| p.required).map(|p| p.key.as_str()).collect();
            assert_eq!(required, ["infusionsoft.private.key", "oauth.api.key", "oauth.api.secret", "oauth.callback.url"]);
        }
        let tables = |key: &str| -> Vec<(String, String)> {
            let def = catalog.get(key).unwrap();
            def.resources.iter().filter_map(|r| Some((r.path.clone(), r.table.clone()?))).collect()
        };
        let crm = tables("infusionsoftcrm");
        for (path, table) in [("/accounts", "Company"), ("/contacts", "Contact"), ("/opportunities", "Lead"), ("/users", "User")] {
            assert!(crm.contains(&(path.into(), table.into())), "{path}");
        }
        let marketing = tables("infusionsoftmarketing");
        for (path, table) in [("/accounts", "Company"), ("/contacts", "Contact"), ("/leads", "Lead"), ("/notes", "ContactAction")] {
            assert!(marketing.contains(&(path.into(), table.into())), "{path}");
        }
    }

    /// `event.objects` is a documented key of every element with events: what it
    /// does and the names it takes (those its poller configuration or webhooks have).
    #[test]
    fn every_element_with_events_documents_event_objects() {
        for def in Catalog::builtin().iter().filter(|d| d.events.supported) {
            let p = def.parameter("event.objects").unwrap_or_else(|| panic!("{}: no event.objects", def.key));
            let poller: serde_json::Value =
                serde_json::from_str(def.parameter("event.poller.configuration").unwrap().default_value.as_deref().unwrap()).unwrap();
            let mut names: Vec<&String> = poller.as_object().unwrap().keys().collect();
            names.extend(def.events.webhooks.iter().flat_map(|w| w.objects.keys()));
            for name in names {
                assert!(p.description.contains(name.as_str()), "{}: '{name}' not among the allowed values: {}", def.key, p.description);
            }
            assert!(!def.is_secret("event.objects") && !p.required);
        }
    }

    #[test]
    fn xml_rpc_declarations_are_checked() {
        let text = include_str!("../../../elements/infusionsoftcrm.yaml");
        let err = |from: &str, to: &str| parse("x.yaml", &text.replacen(from, to, 1)).unwrap_err().to_string();
        assert!(err("    table: Company\n", "    vendorPath: /Company\n").contains("table"));
        assert!(err("  endpoint: /xmlrpc/v1\n", "  endpoint: xmlrpc/v1\n").contains("xmlRpc"));
        assert!(err("key: \"{infusionsoft.private.key}\"", "key: \"{private.key}\"").contains("private.key"));
        assert!(err("tokenUrl: \"{oauth.token.url}\"", "tokenUrl: \"{oauth.token}\"").contains("oauth.token"));
        assert!(err("idField: Id", "idField: Key").contains("id field"));
    }

    #[test]
    fn a_template_naming_an_unknown_key_is_refused() {
        let text = include_str!("../../../elements/bigcommerce.yaml")
            .replace("baseUrl: \"{store.url}\"", "baseUrl: \"{store.link}\"");
        let err = parse("x.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("store.link"), "{err}");
    }

    const SHAPES: &str = r#"
key: shapes
id: 99001
name: Shapes
hub: ecommerce
authentication: {type: custom, query: {api_key: "{api.key}"}}
protocol: rest-json
baseUrl: "{base.url}/v1"
baseUrls: {v2: "{base.url|parent}/v2"}
check: {method: GET, path: /shop.json}
paging: {style: page, pageParam: page, sizeParam: limit, firstPage: 1, maxPageSize: 50}
configuration:
  - {key: base.url, name: Base URL, type: TEXTFIELD_1000, required: true, format: url}
  - {key: api.key, name: API Key, type: PASSWORD, required: true}
resources:
  - {path: /orders, vendorPath: /orders.json, itemPath: "/orders/{id}.json", operations: [list, create, get, update, delete],
     recordPath: order, bodyPath: order}
  - {path: "/customers/{customerId}/addresses", vendorPath: "/customers/{customerId}/addresses.json",
     itemPath: "/customers/{customerId}/addresses/{id}.json", operations: [get, update], recordPath: data.address}
  - {path: /reports, base: v2, vendorPath: /reports, operations: [list]}
"#;

    #[test]
    fn envelopes_item_paths_bases_and_placements_load() {
        let def = parse("shapes.yaml", SHAPES).unwrap();
        let orders = &def.resources[0];
        assert_eq!((orders.record_path.as_deref(), orders.body_path.as_deref()), (Some("order"), Some("order")));
        assert_eq!(def.vendor_call(orders, Operation::Get), ("GET".to_owned(), "/orders/{id}.json".to_owned()));
        assert_eq!(def.vendor_call(orders, Operation::List), ("GET".to_owned(), "/orders.json".to_owned()));
        assert_eq!(def.base_url_of(def.resources[2].base.as_deref()), Some("{base.url|parent}/v2"));
        assert!(def.is_base_url_key("base.url") && !def.is_base_url_key("api.key"));
        assert_eq!(def.authentication.type_name(), "custom");
        let bearer = SHAPES.replace(r#"{type: custom, query: {api_key: "{api.key}"}}"#, r#"{type: bearer, token: "{api.key}"}"#);
        assert_eq!(parse("x.yaml", &bearer).unwrap().authentication.type_name(), "bearer");
    }

    #[test]
    fn wrong_shapes_are_refused_at_load_naming_the_field() {
        let refused = |from: &str, to: &str, why: &[&str]| {
            assert!(SHAPES.contains(from), "{from}");
            let err = parse("shapes.yaml", &SHAPES.replacen(from, to, 1)).unwrap_err().to_string();
            for w in why {
                assert!(err.contains(w), "{to}: {err}");
            }
        };
        refused("base: v2,", "base: v3,", &["resources[2].base", "base 'v3'", "baseUrls", "v2"]);
        refused("{path: /reports,", "{path: \"/reports/{r|parent}\",", &["resources[2].path", "no filter"]);
        refused(r#"itemPath: "/orders/{id}.json""#, r#"itemPath: "/orders/{order}.json""#, &["resources[0].itemPath", "{order}"]);
        refused(r#"itemPath: "/orders/{id}.json""#, r#"itemPath: "/orders/all.json""#, &["itemPath has no '{id}'"]);
        refused(r#"itemPath: "/orders/{id}.json""#, r#"itemPath: "orders/{id}.json""#, &["resources[0].itemPath", "does not start with '/'"]);
        refused(r#"itemPath: "/orders/{id}.json""#, r#"itemPath: "/orders/{id}/../x.json""#, &["resources[0].itemPath", "'..'"]);
        refused("vendorPath: /reports", "vendorPath: /./reports", &["resources[2].vendorPath", "'.'"]);
        refused("vendorPath: /reports", "vendorPath: /%2E%2e/reports", &["'%2E%2e'"]);
        refused("check: {method: GET, path: /shop.json}", "check: {method: GET, path: /../shop.json}", &["check.path"]);
        refused("recordPath: order,", "recordPath: order.,", &["resources[0].recordPath", "order."]);
        refused("operations: [list]}", "operations: [list], recordPath: data}", &["'recordPath' on a resource without get, create or update"]);
        refused("operations: [list]}", "operations: [list], bodyPath: data}", &["'bodyPath' on a resource without create or update"]);
        refused(r#"{api_key: "{api.key}"}"#, r#"{api_key: "{api.token}"}"#, &["authentication.query.api_key", "api.token"]);
        refused(r#"{type: custom, query: {api_key: "{api.key}"}}"#, "{type: custom}", &["'headers' or 'query'"]);
        refused(r#"{type: custom, query: {api_key: "{api.key}"}}"#, r#"{type: bearer, token: "{key}"}"#, &["authentication.token", "'{key}'"]);
        refused(r#"{v2: "{base.url|parent}/v2"}"#, r#"{v2: "{base.url|up}/v2"}"#, &["baseUrls.v2", "filter 'up'", "parent"]);
        refused(r#"{v2: "{base.url|parent}/v2"}"#, r#"{v2: "{base}/v2"}"#, &["baseUrls.v2", "'{base}'"]);
        // The old way to the v3 hooks: dot segments in a webhook path are refused now.
        let bc = include_str!("../../../elements/bigcommerce.yaml");
        assert!(bc.contains("register: {method: POST, path: /hooks}"));
        let err = parse("bigcommerce.yaml", &bc.replacen("path: /hooks}", "path: /../v3/hooks}", 1)).unwrap_err().to_string();
        assert!(err.contains("events.webhooks.register.path") && err.contains("baseUrls"), "{err}");
        let err = parse("bigcommerce.yaml", &bc.replacen("    base: v3\n", "    base: v4\n", 1)).unwrap_err().to_string();
        assert!(err.contains("events.webhooks.base") && err.contains("base 'v4'"), "{err}");
        let oauth = include_str!("../../../elements/infusionsoftcrm.yaml");
        let declared = "  exchangeAuth: client_secret_post\n  refreshAuth: client_secret_basic\n";
        assert!(oauth.contains(declared));
        let err = parse("x.yaml", &oauth.replacen("refreshAuth: client_secret_basic", "refreshAuth: client_secret_jwt", 1)).unwrap_err().to_string();
        assert!(err.contains("client_secret_jwt") && err.contains("client_secret_basic"), "{err}");
        let swapped = "  exchangeAuth: client_secret_basic\n  refreshAuth: form\n";
        let o = parse("x.yaml", &oauth.replacen(declared, swapped, 1)).unwrap().authentication.oauth2().unwrap().clone();
        assert_eq!((o.refresh_auth, o.exchange_auth), (crate::ClientAuth::Form, crate::ClientAuth::Basic), "older spelling too");
        let o = parse("x.yaml", &oauth.replacen(declared, "", 1)).unwrap().authentication.oauth2().unwrap().clone();
        assert_eq!((o.refresh_auth, o.exchange_auth), (crate::ClientAuth::Basic, crate::ClientAuth::Form), "the defaults");
        let keap = parse("x.yaml", oauth).unwrap();
        let o = keap.authentication.oauth2().unwrap();
        assert_eq!((o.refresh_auth, o.exchange_auth), (crate::ClientAuth::Basic, crate::ClientAuth::Form), "Keap's, unchanged");
    }

    /// Every key a person enters has a guide in the built-in files; the keys are
    /// pinned so that the rule cannot shrink unnoticed.
    #[test]
    fn built_in_setup_guides_cover_the_keys_to_enter() {
        let catalog = Catalog::builtin();
        let keap = ["infusionsoft.private.key", "oauth.api.key", "oauth.api.secret", "oauth.callback.url"];
        for (key, expected) in [
            ("bigcommerce", &["username", "password", "store.url", "oauth.api.key", "oauth.user.token"][..]),
            ("infusionsoftcrm", &keap[..]),
            ("infusionsoftmarketing", &keap[..]),
        ] {
            let def = catalog.get(key).unwrap();
            assert_eq!(def.keys_to_enter(), expected, "{key}");
            for k in expected {
                let guide = def.setup_of(k).unwrap_or_else(|| panic!("{key}: no setup guide for {k}"));
                assert!(guide.link.starts_with("https://") && !guide.steps.is_empty(), "{key}: {k}");
            }
        }
        let oauth = catalog.get("infusionsoftcrm").unwrap();
        let callback = oauth.setup_of("oauth.callback.url").unwrap().steps.join(" ");
        assert!(callback.contains("exactly"), "the redirect URL must match: {callback}");
    }

    #[test]
    fn wrong_setup_guides_are_refused_at_load_naming_file_line_and_field() {
        let text = include_str!("../../../elements/bigcommerce.yaml");
        // `below`: how many lines under the start of `to` the refused field is.
        let refused = |from: &str, to: &str, below: usize, field: &str, why: &str| {
            assert!(text.contains(from), "{from}");
            let changed = text.replacen(from, to, 1);
            let line = text[..text.find(from).unwrap()].matches('\n').count() + 1 + below;
            let err = parse("bigcommerce.yaml", &changed).unwrap_err().to_string();
            assert!(err.starts_with(&format!("bigcommerce.yaml:{line}: {field}: ")), "{to}: {err}");
            assert!(err.contains(why), "{to}: {err}");
        };
        refused("  - key: username\n    steps:", "  - key: user.name\n    steps:", 0, "setup[0].key", "'user.name' is not a configuration key");
        refused("  - key: password\n    steps:", "  - key: username\n    steps:", 0, "setup[1].key", "'username' has a guide already");
        refused(
            "  - key: oauth.user.token\n",
            "  - key: event.objects\n    steps: []\n    link: \"https://x.example\"\n  - key: oauth.user.token\n",
            1,
            "setup[4].steps",
            "the guide of 'event.objects' has no steps",
        );
        refused(
            "      - \"Open the same legacy API account",
            "      - \"  \"\n      - \"Open the same legacy API account",
            0,
            "setup[1].steps[0]",
            "step 1 of the guide of 'password' is blank",
        );
        let link = "link: \"https://support.bigcommerce.com/articles/Public/Store-API-Accounts/\"";
        refused(link, "link: \"http://support.bigcommerce.com/x\"", 0, "setup[3].link", "not an absolute https URL");
        refused(link, "link: \"/articles/Store-API-Accounts\"", 0, "setup[3].link", "not an absolute https URL");
        let err = parse("bigcommerce.yaml", &text.replacen("    link: \"https://docs", "    url: \"https://docs", 1)).unwrap_err().to_string();
        assert!(err.contains("bigcommerce.yaml:") && err.contains("url"), "{err}");
        // No `setup` at all is allowed (a file without guides).
        let start = text.find("\nsetup:\n").unwrap();
        let end = text.find("\nevents:\n").unwrap();
        let bare = parse("bigcommerce.yaml", &format!("{}{}", &text[..start], &text[end..])).unwrap();
        assert!(bare.setup.is_empty() && bare.setup_of("username").is_none());
    }

    #[test]
    fn bigcommerce_hooks_go_to_the_v3_base() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let hooks = bc.events.webhooks.as_ref().unwrap();
        let template = bc.base_url_of(hooks.base.as_deref()).unwrap();
        let config = |url: &str| BTreeMap::from([("store.url".to_owned(), url.to_owned())]);
        let render = |url: &str| {
            let c = config(url);
            crate::render(template, |k| c.get(k).map(|v| std::borrow::Cow::Borrowed(v.as_str())))
        };
        assert_eq!(render("https://api.bigcommerce.com/stores/abc123/v2").unwrap(), "https://api.bigcommerce.com/stores/abc123/v3");
        assert_eq!(render("https://api.bigcommerce.com/stores/abc123/v2/").unwrap(), "https://api.bigcommerce.com/stores/abc123/v3");
        assert_eq!(hooks.register.path, "/hooks");
    }

    #[test]
    fn set_default_points_an_element_elsewhere() {
        let mut catalog = Catalog::builtin();
        assert!(catalog.set_default("bigcommerce", "store.url", "http://127.0.0.1:1/x"));
        let bc = catalog.get("bigcommerce").unwrap();
        assert_eq!(bc.parameter("store.url").unwrap().default_value.as_deref(), Some("http://127.0.0.1:1/x"));
        assert!(!catalog.set_default("bigcommerce", "nope", "v"));
    }
}
