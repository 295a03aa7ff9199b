//! The set of elements a server knows: the built-in files plus any loaded from a
//! directory, validated once at start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::model::{ElementDefinition, FieldType, Operation, Resource};
use crate::template::Template;

/// The definitions shipped in the binary, as (file name, contents).
const BUILTIN: &[(&str, &str)] = &[(
    "bigcommerce.yaml",
    include_str!("../../../elements/bigcommerce.yaml"),
)];

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
    let mut config_templates = vec![("baseUrl", def.base_url.as_str())];
    match &def.authentication {
        crate::Authentication::Basic { username, password } => {
            config_templates.push(("authentication.username", username));
            config_templates.push(("authentication.password", password));
        }
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
    for r in &def.resources {
        let hub = Template::parse(&r.path).map_err(|e| format!("resource {}: {e}", r.path))?;
        let vendor =
            Template::parse(&r.vendor_path).map_err(|e| format!("resource {}: {e}", r.path))?;
        let hub_params: Vec<&str> = hub.placeholders().collect();
        if let Some(p) = vendor.placeholders().find(|p| !hub_params.contains(p)) {
            return Err(format!("resource {}: vendorPath uses '{{{p}}}' that the path lacks", r.path));
        }
        if !r.path.starts_with('/') || !r.vendor_path.starts_with('/') {
            return Err(format!("resource {}: paths start with '/'", r.path));
        }
        if r.operations.is_empty() {
            return Err(format!("resource {}: no operations", r.path));
        }
        if r.supports(Operation::Read) && r.supports(Operation::List) {
            return Err(format!("resource {}: 'read' and 'list' both answer GET", r.path));
        }
        validate_queries(def, r).map_err(|e| format!("resource {}: {e}", r.path))?;
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
