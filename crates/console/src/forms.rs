//! The connect form of an element, generated from its configuration parameters:
//! labels, required marks, descriptions, `PASSWORD` fields that never carry a
//! value back to the browser, `COMBO` choices, and only the keys of the chosen
//! authentication mode.

use std::collections::BTreeMap;

use serde::Serialize;
use switchyard_elements::{Authentication, ElementDefinition, ParameterType};

/// Keys the forms of an OAuth 2.0 element never ask for: its tokens (written by
/// the code exchange) and the redirect URI (always this server's
/// `/connect/oauth/callback`). Elsewhere `oauth.user.token` is a credential a
/// person enters (BigCommerce's token mode).
fn never_asked(def: &ElementDefinition, key: &str) -> bool {
    def.authentication.oauth2().is_some() && (switchyard_engine::oauth::is_token_key(key) || key == "oauth.callback.url")
}

/// One input of the form.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub key: String,
    pub label: String,
    /// `text`, `password`, `textarea`, `checkbox` or `select`.
    pub input: &'static str,
    /// Must be entered (required, and the element has no default for it).
    pub required: bool,
    pub description: String,
    pub options: Vec<String>,
    /// What the form shows in it: what was entered (never for passwords), else
    /// nothing (a default is the placeholder, and applies when left empty).
    pub value: String,
    pub placeholder: String,
    pub max_len: Option<usize>,
    /// The refusal that names this field, if the last try was refused.
    pub error: Option<String>,
    /// `connection` or `events`.
    pub section: &'static str,
}

/// The form of one element in one authentication mode.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigForm {
    /// The configuration key that picks the mode and the modes it offers (none for
    /// elements with one scheme).
    pub mode_key: Option<String>,
    pub modes: Vec<String>,
    pub mode: String,
    pub oauth: bool,
    pub fields: Vec<Field>,
}

/// The form for `def` in `mode` (the element's default mode when `None` or
/// unknown). `skip` keys are not asked (preset by a Connect session); `events`
/// adds the optional `event.*` settings. `entered` refills what was typed.
pub fn config_form(def: &ElementDefinition, mode: Option<&str>, skip: &[String], events: bool, entered: &BTreeMap<String, String>) -> ConfigForm {
    let (mode_key, modes, mode, mode_config) = match &def.authentication {
        Authentication::Choice(choice) => {
            let modes: Vec<String> = choice.modes.keys().cloned().collect();
            let default = def.parameter(&choice.key).and_then(|p| p.default_value.clone());
            let mode = mode
                .filter(|m| modes.iter().any(|x| x == m))
                .map(str::to_owned)
                .or(default)
                .or_else(|| modes.first().cloned())
                .unwrap_or_default();
            let config = BTreeMap::from([(choice.key.clone(), mode.clone())]);
            (Some(choice.key.clone()), modes, mode, config)
        }
        _ => (None, Vec::new(), String::new(), BTreeMap::new()),
    };
    let required = def.required_keys(&mode_config);
    // Credentials of other modes are not this mode's business.
    let other_modes: Vec<&str> = match &def.authentication {
        Authentication::Choice(_) => def.keys_to_enter().into_iter().filter(|k| !required.contains(k)).collect(),
        _ => Vec::new(),
    };
    let fields = def
        .configuration
        .iter()
        .filter(|p| !p.hide_from_console && !never_asked(def, &p.key) && !skip.contains(&p.key))
        .filter(|p| Some(&p.key) != mode_key.as_ref() && !other_modes.contains(&p.key.as_str()))
        .filter_map(|p| {
            let is_event = p.key.starts_with("event.");
            let section = if is_event { "events" } else { "connection" };
            if is_event && !events {
                return None;
            }
            let has_default = p.default_value.as_deref().is_some_and(|v| !v.is_empty());
            let secret = def.is_secret(&p.key);
            let input = match p.kind {
                ParameterType::Password => "password",
                ParameterType::Textarea => "textarea",
                ParameterType::Boolean => "checkbox",
                ParameterType::Combo => "select",
                _ => "text",
            };
            let placeholder = match (&p.default_value, secret) {
                (Some(_), true) if has_default => "leave empty to use the default".to_owned(),
                (Some(d), false) => d.clone(),
                _ => String::new(),
            };
            let value = if secret { String::new() } else { entered.get(&p.key).cloned().unwrap_or_default() };
            Some(Field {
                key: p.key.clone(),
                label: p.name.clone(),
                input,
                required: required.contains(&p.key.as_str()) && !has_default,
                description: p.description.clone(),
                options: p.options.clone(),
                value,
                placeholder,
                max_len: p.kind.max_len(),
                error: None,
                section,
            })
        })
        .collect();
    ConfigForm { mode_key, modes, mode, oauth: def.authentication.oauth2().is_some(), fields }
}

impl ConfigForm {
    /// The configuration entered in a submitted form: the mode, and each field of
    /// this form that is not empty (an empty one takes the element's default); a
    /// checkbox is `true` when ticked, `false` when not.
    pub fn read(&self, form: &crate::auth::Form) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        if let Some(key) = &self.mode_key {
            config.insert(key.clone(), self.mode.clone());
        }
        for field in &self.fields {
            let value = form.get(&field.key);
            match (field.input, value) {
                ("checkbox", v) => {
                    config.insert(field.key.clone(), v.is_some().to_string());
                }
                (_, Some(v)) => {
                    config.insert(field.key.clone(), v.to_owned());
                }
                (_, None) => {}
            }
        }
        config
    }

    /// Puts a refusal next to the field it names (`'password'` quoted, as the
    /// API's messages name keys); `false` when it names none of them.
    pub fn attach_error(&mut self, message: &str) -> bool {
        let named = self.fields.iter_mut().find(|f| message.contains(&format!("'{}'", f.key)));
        match named {
            Some(field) => {
                field.error = Some(message.to_owned());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_elements::Catalog;

    fn keys(form: &ConfigForm) -> Vec<&str> {
        form.fields.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn a_mode_shows_its_own_credentials_only() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let basic = config_form(bc, None, &[], false, &BTreeMap::new());
        assert_eq!((basic.mode.as_str(), keys(&basic)), ("basic", vec!["username", "password", "store.url"]));
        assert!(basic.fields.iter().all(|f| f.required));
        assert_eq!(basic.fields[1].input, "password");
        let custom = config_form(bc, Some("custom"), &[], false, &BTreeMap::new());
        assert_eq!(keys(&custom), ["store.url", "oauth.api.key", "oauth.user.token"]);
        // An unknown mode is the default one.
        assert_eq!(config_form(bc, Some("nope"), &[], false, &BTreeMap::new()).mode, "basic");
        let with_events = config_form(bc, None, &[], true, &BTreeMap::new());
        assert!(with_events.fields.iter().any(|f| f.key == "event.vendor.type" && f.input == "select" && f.section == "events"));
    }

    #[test]
    fn oauth_elements_ask_neither_tokens_nor_the_redirect_uri() {
        let catalog = Catalog::builtin();
        let keap = catalog.get("infusionsoftcrm").unwrap();
        let form = config_form(keap, None, &[], false, &BTreeMap::new());
        assert!(form.oauth);
        assert_eq!(keys(&form), ["infusionsoft.private.key", "oauth.api.key", "oauth.api.secret"]);
        let preset = config_form(keap, None, &["oauth.api.key".to_owned(), "oauth.api.secret".to_owned()], false, &BTreeMap::new());
        assert_eq!(keys(&preset), ["infusionsoft.private.key"]);
    }

    #[test]
    fn passwords_never_come_back_and_errors_find_their_field() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let entered = BTreeMap::from([("username".to_owned(), "me".to_owned()), ("password".to_owned(), "s3cret".to_owned())]);
        let mut form = config_form(bc, None, &[], false, &entered);
        assert_eq!(form.fields[0].value, "me");
        assert_eq!(form.fields[1].value, "");
        assert!(form.attach_error("configuration 'store.url' must be a URL"));
        assert!(form.fields[2].error.is_some());
        assert!(!form.attach_error("The vendor refused the credentials"));
    }
}
