//! An instance's event configuration, read fresh from the database each time
//! (so a `PATCH /instances/{id}` takes effect without a restart).

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_elements::ElementDefinition;
use switchyard_store::config_aad;
use switchyard_vault::Secret;

use crate::poller::parse_poller_configuration;
use crate::{Context, EventsError};

pub use switchyard_elements::event_keys::{
    CALLBACK_URL, ENABLED, OBJECTS, POLLER_CONFIGURATION, REFRESH_INTERVAL, SIGNATURE_KEY, VENDOR_TYPE,
};

/// Default poll interval in minutes, as Cloud Elements ships it.
const DEFAULT_INTERVAL_MINUTES: f64 = 15.0;
/// The longest poll interval accepted: a day, in minutes.
pub const MAX_INTERVAL_MINUTES: f64 = 1440.0;
/// The shortest interval honoured: a fraction of a minute below a second (which
/// the range allows) is polled every second, so a typo cannot turn the poller
/// into a load test of the vendor.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorType {
    Polling,
    Webhook,
}

/// An `event.*` value that is not allowed: the key and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration '{key}' {message}")]
pub struct ConfigError {
    pub key: &'static str,
    /// What the value must be (and what it was, unless it is a secret).
    pub message: String,
}

impl ConfigError {
    fn new(key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError { key, message: message.into() }
    }
}

/// The `event.*` values of one instance over the element's defaults.
#[derive(Debug, Clone)]
pub struct EventConfig {
    pub enabled: bool,
    pub callback_url: Option<String>,
    /// Debug prints `***`.
    pub signature_key: Option<Secret>,
    pub vendor_type: VendorType,
    pub refresh_interval: Duration,
    /// The JSON text of `event.poller.configuration` (parsed by the poller).
    pub poller_configuration: Option<String>,
    /// `event.objects`: the hub resources watched (all configured when absent).
    pub objects: Option<Vec<String>>,
}

impl EventConfig {
    /// Reads the instance's `event.*` values, opening the sealed ones.
    pub async fn load(ctx: &Context, def: Option<&ElementDefinition>, instance_id: i64) -> Result<EventConfig, EventsError> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for row in ctx.store.configuration(instance_id).await? {
            if !row.key.starts_with("event.") {
                continue;
            }
            let value = match (row.value, row.secret) {
                (Some(v), _) => v,
                (None, Some(blob)) => ctx.vault.decrypt_str(&blob, &config_aad(instance_id, &row.key))?.expose().to_owned(),
                (None, None) => continue,
            };
            values.insert(row.key, value);
        }
        Self::from_values(def, &values).map_err(|e| EventsError::Config { instance: instance_id, message: e.to_string() })
    }

    /// The configuration from plain values (already opened) over the element's
    /// defaults, every `event.*` key checked: what the poller and the delivery
    /// worker would read is what is saved, so the server calls this before it
    /// stores an instance's configuration. Keys other than `event.*` are ignored.
    ///
    /// * `event.notification.enabled`: `true` or `false`;
    /// * `event.notification.callback.url`: an absolute http(s) URL with a host (the
    ///   outbound policy is the server's to apply, and again at every delivery);
    /// * `event.vendor.type`: `polling` or `webhook`;
    /// * `event.poller.refresh_interval`: minutes, more than 0 and at most 1440,
    ///   fractions allowed;
    /// * `event.poller.configuration`: the documented JSON shape (see
    ///   [`parse_poller_configuration`]), required for polling with events on;
    /// * `event.objects`: names the element can watch that way (the resources of
    ///   the poller configuration, or the element's vendor webhooks).
    pub fn from_values(def: Option<&ElementDefinition>, values: &BTreeMap<String, String>) -> Result<EventConfig, ConfigError> {
        let default = |k: &str| def.and_then(|d| d.parameter(k)).and_then(|p| p.default_value.as_deref());
        let get = |k: &str| values.get(k).map(String::as_str).or_else(|| default(k)).map(str::trim).filter(|v| !v.is_empty());

        let enabled = match get(ENABLED) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(ConfigError::new(ENABLED, format!("must be true or false, not '{other}'"))),
        };
        let callback_url = match get(CALLBACK_URL) {
            None => None,
            Some(v) => {
                let ok = url::Url::parse(v)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()));
                if !ok {
                    return Err(ConfigError::new(CALLBACK_URL, format!("must be an http(s) URL, not '{v}'")));
                }
                Some(v.to_owned())
            }
        };
        let vendor_type = match get(VENDOR_TYPE) {
            None | Some("polling") => VendorType::Polling,
            Some("webhook") => VendorType::Webhook,
            Some(other) => return Err(ConfigError::new(VENDOR_TYPE, format!("must be polling or webhook, not '{other}'"))),
        };
        let minutes = match get(REFRESH_INTERVAL) {
            None => DEFAULT_INTERVAL_MINUTES,
            Some(v) => v.parse::<f64>().ok().filter(|m| m.is_finite() && *m > 0.0 && *m <= MAX_INTERVAL_MINUTES).ok_or_else(|| {
                ConfigError::new(
                    REFRESH_INTERVAL,
                    format!("must be a number of minutes greater than 0 and at most {MAX_INTERVAL_MINUTES} (fractions allowed), not '{v}'"),
                )
            })?,
        };
        let refresh_interval = Duration::from_secs_f64(minutes * 60.0).max(MIN_INTERVAL);
        let poller_configuration = get(POLLER_CONFIGURATION).map(str::to_owned);
        let resources = match &poller_configuration {
            Some(text) => Some(
                parse_poller_configuration(text).map_err(|e| ConfigError::new(POLLER_CONFIGURATION, format!("is not valid: {e}")))?,
            ),
            None if enabled && vendor_type == VendorType::Polling => {
                return Err(ConfigError::new(POLLER_CONFIGURATION, "is required to poll (the element has no default)"));
            }
            None => None,
        };
        let objects: Option<Vec<String>> =
            get(OBJECTS).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
        if let Some(objects) = &objects {
            // What this instance can watch the way it is configured to.
            let (known, how): (Option<Vec<&str>>, &str) = match vendor_type {
                VendorType::Polling => {
                    (resources.as_ref().map(|r| r.iter().map(|r| r.name.as_str()).collect()), "in event.poller.configuration")
                }
                VendorType::Webhook => (
                    def.and_then(|d| d.events.webhooks.as_ref()).map(|w| w.objects.keys().map(String::as_str).collect()),
                    "with a vendor webhook",
                ),
            };
            if let Some(known) = known {
                if let Some(unknown) = objects.iter().find(|o| !known.contains(&o.as_str())) {
                    return Err(ConfigError::new(
                        OBJECTS,
                        format!("names '{unknown}', which is not a resource {how}; these are: {}", known.join(", ")),
                    ));
                }
            }
        }
        Ok(EventConfig {
            enabled,
            callback_url,
            signature_key: values.get(SIGNATURE_KEY).filter(|v| !v.is_empty()).map(|v| Secret::new(v.clone())),
            vendor_type,
            refresh_interval,
            poller_configuration,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<EventConfig, ConfigError> {
        EventConfig::from_values(None, &pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn bigcommerce(pairs: &[(&str, &str)]) -> Result<EventConfig, ConfigError> {
        let catalog = switchyard_elements::Catalog::builtin();
        let def = catalog.get("bigcommerce").unwrap();
        EventConfig::from_values(Some(def), &pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn reads_the_keys_with_cloud_elements_defaults() {
        let c = config(&[]).unwrap();
        assert!(!c.enabled && c.callback_url.is_none() && c.signature_key.is_none());
        assert_eq!(c.vendor_type, VendorType::Polling);
        assert_eq!(c.refresh_interval, Duration::from_secs(15 * 60));
        let c = config(&[
            (ENABLED, "true"),
            (CALLBACK_URL, "https://example.com/hook"),
            (SIGNATURE_KEY, "k3y"),
            (REFRESH_INTERVAL, "0.05"),
            (VENDOR_TYPE, "webhook"),
            (OBJECTS, "orders, products"),
        ])
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.refresh_interval, Duration::from_secs(3));
        assert_eq!(c.vendor_type, VendorType::Webhook);
        assert_eq!(c.objects.unwrap(), ["orders", "products"]);
        assert_eq!(format!("{:?}", c.signature_key), "Some(***)");
        assert_eq!(config(&[(REFRESH_INTERVAL, "0.0001")]).unwrap().refresh_interval, MIN_INTERVAL);
        assert_eq!(config(&[(REFRESH_INTERVAL, "1440")]).unwrap().refresh_interval, Duration::from_secs(86_400));
        // The element's defaults fill what the instance leaves out.
        let c = bigcommerce(&[(ENABLED, "true")]).unwrap();
        assert!(c.enabled && c.poller_configuration.is_some());
        assert_eq!(c.refresh_interval, Duration::from_secs(15 * 60));
    }

    #[test]
    fn every_key_is_checked_and_the_error_names_it_with_what_is_allowed() {
        for (key, value, allowed) in [
            (REFRESH_INTERVAL, "0", "greater than 0 and at most 1440"),
            (REFRESH_INTERVAL, "-1", "greater than 0 and at most 1440"),
            (REFRESH_INTERVAL, "1440.5", "greater than 0 and at most 1440"),
            (REFRESH_INTERVAL, "soon", "greater than 0 and at most 1440"),
            (REFRESH_INTERVAL, "NaN", "greater than 0 and at most 1440"),
            (ENABLED, "yes", "true or false"),
            (VENDOR_TYPE, "push", "polling or webhook"),
            (CALLBACK_URL, "not a url", "http(s) URL"),
            (CALLBACK_URL, "ftp://example.com/x", "http(s) URL"),
            (POLLER_CONFIGURATION, "[1]", "not valid"),
            (POLLER_CONFIGURATION, r#"{"orders":{"url":"/elsewhere"}}"#, "hub path"),
            (OBJECTS, "orders,coupons", "customers, orders, products"),
        ] {
            let err = bigcommerce(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, key, "{value}");
            let message = err.to_string();
            assert!(message.contains(key) && message.contains(allowed), "{key}={value}: {message}");
        }
        // Objects are judged by how the instance watches: polling by the poller
        // configuration's resources, webhooks by the element's vendor hooks.
        let own = r#"{"coupons":{"url":"/hubs/ecommerce/coupons"}}"#;
        assert!(bigcommerce(&[(POLLER_CONFIGURATION, own), (OBJECTS, "coupons")]).is_ok());
        let err = bigcommerce(&[(VENDOR_TYPE, "webhook"), (POLLER_CONFIGURATION, own), (OBJECTS, "coupons")]).unwrap_err();
        assert!(err.message.contains("vendor webhook"), "{err}");
        // Polling with events on needs a poller configuration.
        assert_eq!(config(&[(ENABLED, "true")]).unwrap_err().key, POLLER_CONFIGURATION);
        assert!(config(&[(ENABLED, "true"), (VENDOR_TYPE, "webhook")]).is_ok());
    }
}
