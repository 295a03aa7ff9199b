//! The instance configuration keys of events, as Cloud Elements names them
//! (platform-api.md, "Configuration keys"). The engine reads them to register
//! vendor webhooks; the events crate to poll and deliver.

pub const ENABLED: &str = "event.notification.enabled";
pub const CALLBACK_URL: &str = "event.notification.callback.url";
pub const SIGNATURE_KEY: &str = "event.notification.signature.key";
pub const VENDOR_TYPE: &str = "event.vendor.type";
pub const REFRESH_INTERVAL: &str = "event.poller.refresh_interval";
pub const POLLER_CONFIGURATION: &str = "event.poller.configuration";
pub const OBJECTS: &str = "event.objects";
