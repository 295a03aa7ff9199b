//! An instance's event configuration, read fresh from the database each time
//! (so a `PATCH /instances/{id}` takes effect without a restart).

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_elements::ElementDefinition;
use switchyard_store::config_aad;
use switchyard_vault::Secret;

use crate::{Context, EventsError};

pub use switchyard_elements::event_keys::{
    CALLBACK_URL, ENABLED, OBJECTS, POLLER_CONFIGURATION, REFRESH_INTERVAL, SIGNATURE_KEY, VENDOR_TYPE,
};

/// Default poll interval in minutes, as Cloud Elements ships it.
const DEFAULT_INTERVAL_MINUTES: f64 = 15.0;
/// The shortest interval honoured, whatever the configuration says: a typo must
/// not turn the poller into a load test of the vendor.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorType {
    Polling,
    Webhook,
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
        if let Some(def) = def {
            for p in def.configuration.iter().filter(|p| p.key.starts_with("event.")) {
                if let Some(v) = &p.default_value {
                    values.insert(p.key.clone(), v.clone());
                }
            }
        }
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
        Self::from_values(instance_id, &values)
    }

    /// The configuration from plain values (already opened).
    pub fn from_values(instance_id: i64, values: &BTreeMap<String, String>) -> Result<EventConfig, EventsError> {
        let get = |k: &str| values.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let bad = |message: String| EventsError::Config { instance: instance_id, message };
        let vendor_type = match get(VENDOR_TYPE) {
            None | Some("polling") => VendorType::Polling,
            Some("webhook") => VendorType::Webhook,
            Some(other) => return Err(bad(format!("{VENDOR_TYPE} must be polling or webhook, not '{other}'"))),
        };
        let minutes = match get(REFRESH_INTERVAL) {
            None => DEFAULT_INTERVAL_MINUTES,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m > 0.0)
                .ok_or_else(|| bad(format!("{REFRESH_INTERVAL} must be a positive number of minutes, not '{v}'")))?,
        };
        // Capped at a week so the Duration arithmetic cannot overflow.
        let refresh_interval = Duration::from_secs_f64(minutes.min(7.0 * 24.0 * 60.0) * 60.0).max(MIN_INTERVAL);
        Ok(EventConfig {
            enabled: get(ENABLED) == Some("true"),
            callback_url: get(CALLBACK_URL).map(str::to_owned),
            signature_key: values.get(SIGNATURE_KEY).filter(|v| !v.is_empty()).map(|v| Secret::new(v.clone())),
            vendor_type,
            refresh_interval,
            poller_configuration: get(POLLER_CONFIGURATION).map(str::to_owned),
            objects: get(OBJECTS).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<EventConfig, EventsError> {
        EventConfig::from_values(1, &pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
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
        for bad in [(REFRESH_INTERVAL, "-1"), (REFRESH_INTERVAL, "soon"), (VENDOR_TYPE, "push")] {
            assert!(config(&[bad]).is_err(), "{bad:?}");
        }
    }
}
