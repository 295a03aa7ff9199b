//! The set of elements a server knows: the built-in files plus any loaded from a
//! directory, validated once at start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::model::{ElementDefinition, FieldType, Operation, Protocol, Resource};
use crate::template::Template;

/// The definitions shipped in the binary, as (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("bigcommerce.yaml", include_str!("../../../elements/bigcommerce.yaml")),
    ("infusionsoftcrm.yaml", include_str!("../../../elements/infusionsoftcrm.yaml")),
    ("infusionsoftmarketing.yaml", include_str!("../../../elements/infusionsoftmarketing.yaml")),
];

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("element file {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("reading element directory {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Element definitions by key, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_key: BTreeMap<String, Arc<ElementDefinition>>,
}

impl Catalog {
    /// The elements embedded in the binary.
    pub fn builtin() -> Self {
        let mut catalog = Catalog::default();
        for (file, text) in BUILTIN {
            // The built-in files are checked by this crate's tests, so a failure
            // here is a build defect, not bad input.
            let def = parse(file, text).unwrap_or_else(|e| panic!("built-in element: {e}"));
            catalog.insert(def);
        }
        catalog
    }

    /// Adds (or replaces, by key) every `*.yaml`/`*.yml`/`*.json` file of `dir`.
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
            let def = parse(&path.display().to_string(), &text)?;
            self.insert(def);
            count += 1;
        }
        Ok(count)
    }

    fn insert(&mut self, def: ElementDefinition) {
        self.by_key.insert(def.key.clone(), Arc::new(def));
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

/// Parses one definition and checks what serde cannot.
pub fn parse(file: &str, text: &str) -> Result<ElementDefinition, CatalogError> {
    let invalid = |message: String| CatalogError::Invalid { file: file.to_owned(), message };
    let def: ElementDefinition = if file.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?
    };
    validate(&def).map_err(invalid)?;
    Ok(def)
}

fn validate(def: &ElementDefinition) -> Result<(), String> {
    let known = |name: &str| def.parameter(name).is_some();
    let auth_templates = def.authentication.templates();
    let mut config_templates = vec![("baseUrl".to_owned(), def.base_url.as_str())];
    config_templates.extend(auth_templates.into_iter().map(|(what, t)| (format!("authentication.{what}"), t)));
    validate_auth(def)?;
    if let Some(key) = def.xml_rpc.as_ref().and_then(|x| x.key.as_deref()) {
        config_templates.push(("xmlRpc.key".to_owned(), key));
    }
    for (what, text) in config_templates {
        let t = Template::parse(text).map_err(|e| format!("{what}: {e}"))?;
        let unknown = t.placeholders().find(|n| !known(n)).map(str::to_owned);
        if let Some(name) = unknown {
            return Err(format!("{what} uses '{{{name}}}', which is not a configuration key"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &def.configuration {
        if !seen.insert(p.key.as_str()) {
            return Err(format!("configuration key '{}' is declared twice", p.key));
        }
    }
    validate_protocol(def)?;
    crate::listing::validate_paging(&def.paging)?;
    validate_webhooks(def)?;
    for r in &def.resources {
        let hub = Template::parse(&r.path).map_err(|e| format!("resource {}: {e}", r.path))?;
        let vendor =
            Template::parse(&r.vendor_path).map_err(|e| format!("resource {}: {e}", r.path))?;
        let hub_params: Vec<&str> = hub.placeholders().collect();
        if let Some(p) = vendor.placeholders().find(|p| !hub_params.contains(p)) {
            return Err(format!("resource {}: vendorPath uses '{{{p}}}' that the path lacks", r.path));
        }
        if !r.path.starts_with('/') || (def.protocol == Protocol::RestJson && !r.vendor_path.starts_with('/')) {
            return Err(format!("resource {}: paths start with '/'", r.path));
        }
        if r.operations.is_empty() {
            return Err(format!("resource {}: no operations", r.path));
        }
        if r.supports(Operation::Read) && r.supports(Operation::List) {
            return Err(format!("resource {}: 'read' and 'list' both answer GET", r.path));
        }
        validate_queries(def, r).map_err(|e| format!("resource {}: {e}", r.path))?;
        crate::listing::validate_listing(def, r).map_err(|e| format!("resource {}: {e}", r.path))?;
    }
    Ok(())
}

/// A choice picks among simple schemes by a COMBO key the element declares, whose
/// options are exactly the modes; OAuth 2.0 is not a mode (its flows are the
/// element's, not an instance's).
fn validate_auth(def: &ElementDefinition) -> Result<(), String> {
    let crate::Authentication::Choice(choice) = &def.authentication else {
        return Ok(());
    };
    if choice.modes.is_empty() {
        return Err("authentication: a choice needs modes".into());
    }
    if let Some((mode, _)) = choice
        .modes
        .iter()
        .find(|(_, a)| matches!(a, crate::Authentication::OAuth2(_) | crate::Authentication::Choice(_)))
    {
        return Err(format!("authentication mode '{mode}': only basic and custom schemes can be modes"));
    }
    let param = def
        .parameter(&choice.key)
        .ok_or_else(|| format!("authentication.key '{}' is not a configuration key", choice.key))?;
    let mut options = param.options.clone();
    options.sort();
    let modes: Vec<String> = choice.modes.keys().cloned().collect();
    if options != modes {
        return Err(format!("configuration '{}' must offer exactly the modes {}", choice.key, modes.join(", ")));
    }
    if param.default_value.as_deref().is_none_or(|d| !choice.modes.contains_key(d)) {
        return Err(format!("configuration '{}' needs a default naming a mode", choice.key));
    }
    Ok(())
}

/// Webhook objects are hub resources that can be read one by one (events are
/// enriched with the record), and event types are the three Cloud Elements has.
fn validate_webhooks(def: &ElementDefinition) -> Result<(), String> {
    let Some(w) = &def.events.webhooks else {
        return Ok(());
    };
    let bad = |m: String| Err(format!("events.webhooks: {m}"));
    for object in w.objects.keys() {
        let readable = def.route("GET", &format!("{}/1", object.trim_start_matches('/'))).is_ok_and(|r| r.operation == Operation::Get);
        if !readable {
            return bad(format!("object '{object}' is not a hub resource with a get by id"));
        }
    }
    if let Some((_, t)) = w.event_types.iter().find(|(_, t)| !matches!(t.as_str(), "CREATED" | "UPDATED" | "DELETED")) {
        return bad(format!("event type '{t}' is not CREATED, UPDATED or DELETED"));
    }
    if let Some(k) = w.requires.keys().find(|k| def.parameter(k).is_none()) {
        return bad(format!("requires '{k}', which is not a configuration key"));
    }
    for call in [&w.register, &w.remove] {
        if !matches!(call.method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") || !call.path.starts_with('/') {
            return bad(format!("'{} {}' is not a method and a path starting with '/'", call.method, call.path));
        }
    }
    if !w.body.is_object() {
        return bad("body must be a JSON object".into());
    }
    if let Some(p) = w.digest.iter().find(|p| !p.starts_with('/')) {
        return bad(format!("digest '{p}' is not a JSON pointer (it starts with '/')"));
    }
    if let Some((i, p)) = w.digest.iter().enumerate().find(|(i, p)| w.digest[..*i].contains(p)) {
        return bad(format!("digest '{p}' is named twice (entry {})", i + 1));
    }
    Ok(())
}

/// What each protocol needs: `rest-json` resources name vendor paths; `xml-rpc`
/// resources name tables (and the model whose fields are selected) or, for `read`,
/// the method to call.
fn validate_protocol(def: &ElementDefinition) -> Result<(), String> {
    match def.protocol {
        Protocol::RestJson => {
            if def.xml_rpc.is_some() {
                return Err("'xmlRpc' on a rest-json element".into());
            }
            if let Some(r) = def.resources.iter().find(|r| r.table.is_some() || r.rpc_method.is_some() || !r.fixed.is_empty()) {
                return Err(format!("resource {}: 'table', 'fixed' and 'rpcMethod' are for xml-rpc elements", r.path));
            }
            if !def.check.path.starts_with('/') {
                return Err("check.path starts with '/'".into());
            }
        }
        Protocol::XmlRpc => {
            let x = def.xml_rpc.as_ref().ok_or("an xml-rpc element declares 'xmlRpc' (endpoint, service)")?;
            if !x.endpoint.starts_with('/') || x.service.is_empty() {
                return Err("xmlRpc.endpoint starts with '/' and xmlRpc.service is named".into());
            }
            if let Some((kind, status)) = x.faults.iter().find(|(_, s)| !(400..=599).contains(*s)) {
                return Err(format!("xmlRpc.faults.{kind}: {status} is not an error status"));
            }
            if def.check.method.is_empty() {
                return Err("check.method names the XML-RPC method that proves the credentials".into());
            }
            if !matches!(def.paging, crate::Paging::Page { .. }) {
                return Err(format!("paging.style: xml-rpc elements page by 'page', not '{}'", def.paging.style()));
            }
            for r in &def.resources {
                let what = |m: &str| format!("resource {}: {m}", r.path);
                if !r.vendor_path.is_empty() {
                    return Err(what("xml-rpc resources name a 'table', not a 'vendorPath'"));
                }
                if r.path.contains('{') {
                    return Err(what("xml-rpc resources have no path parameters"));
                }
                if r.supports(Operation::Read) {
                    if r.operations.len() != 1 || r.rpc_method.is_none() || r.table.is_some() {
                        return Err(what("a 'read' names its 'rpcMethod' and nothing else"));
                    }
                    continue;
                }
                if r.table.is_none() || r.rpc_method.is_some() {
                    return Err(what("names its 'table' (and no 'rpcMethod')"));
                }
                let model = r.model.as_deref().and_then(|m| def.models.get(m)).ok_or_else(|| what("names a 'model': its fields are the ones selected"))?;
                if !model.contains_key(def.id_field.as_str()) {
                    return Err(what(&format!("the model lacks the id field '{}'", def.id_field)));
                }
                if let Some(f) = r.fixed.keys().find(|f| !model.contains_key(f.as_str())) {
                    return Err(what(&format!("fixed field '{f}' is not in the model")));
                }
                if !r.where_map.is_empty() {
                    return Err(what("xml-rpc lists send every model field to queryData; 'where' is for rest-json"));
                }
            }
        }
    }
    Ok(())
}

/// The `model`, `where` and `orderBy` declarations of one resource.
fn validate_queries(def: &ElementDefinition, r: &Resource) -> Result<(), String> {
    let model = match &r.model {
        Some(name) => Some(def.models.get(name).ok_or_else(|| format!("model '{name}' is not declared in models"))?),
        None => None,
    };
    if !r.where_map.is_empty() && !r.supports(Operation::List) {
        return Err("'where' on a resource without 'list'".into());
    }
    let mut params = std::collections::HashSet::new();
    for (field, filter) in &r.where_map {
        let Some(model) = model else {
            return Err(format!("where.{field}: a resource with 'where' declares its 'model'"));
        };
        // A declared field, or a sub-field of a declared object (filtered as text).
        let t = match model.get(field.as_str()) {
            Some(t) => *t,
            None => {
                let parent = field.rsplit_once('.').map(|(p, _)| p);
                match parent.and_then(|p| model.get(p)) {
                    Some(FieldType::Object) => FieldType::String,
                    _ => return Err(format!("where.{field}: the model has no such field")),
                }
            }
        };
        if filter.params().next().is_none() {
            return Err(format!("where.{field}: names no vendor parameter (eq, min or max)"));
        }
        if (filter.min.is_some() || filter.max.is_some()) && !t.is_ordered() {
            return Err(format!("where.{field}: min/max on a {} field, which has no order", t.as_str()));
        }
        if !t.is_scalar() {
            return Err(format!("where.{field}: a {} field cannot be filtered by value", t.as_str()));
        }
        for p in filter.params() {
            if p.is_empty() || !params.insert(p.to_owned()) {
                return Err(format!("where.{field}: vendor parameter '{p}' is empty or used twice"));
            }
        }
    }
    if let Some(sort) = &r.order_by {
        if !r.supports(Operation::List) {
            return Err("'orderBy' on a resource without 'list'".into());
        }
        if sort.param.is_empty() || sort.fields.is_empty() {
            return Err("orderBy needs 'param' and 'fields'".into());
        }
        if let Some(f) = model.and_then(|m| sort.fields.iter().find(|f| !m.contains_key(f.as_str()))) {
            return Err(format!("orderBy field '{f}' is not in the model"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParameterType;

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
        assert_eq!(digest, r#"["store/order/created","order",223,1561479335,"stores/abc"]"#);
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

    #[test]
    fn set_default_points_an_element_elsewhere() {
        let mut catalog = Catalog::builtin();
        assert!(catalog.set_default("bigcommerce", "store.url", "http://127.0.0.1:1/x"));
        let bc = catalog.get("bigcommerce").unwrap();
        assert_eq!(bc.parameter("store.url").unwrap().default_value.as_deref(), Some("http://127.0.0.1:1/x"));
        assert!(!catalog.set_default("bigcommerce", "nope", "v"));
    }
}
