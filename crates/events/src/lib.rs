//! Events: what changed at a vendor, told to the user's callback URL.
//!
//! * [`poller`]: a scheduler lists each enabled instance's resources through the
//!   element's own hub list calls (a [`HubLister`]: the engine), turns new
//!   or changed records into events, and keeps a high-water mark per instance and
//!   resource in the database.
//! * [`delivery`]: a worker claims due delivery jobs with a lease, POSTs the signed
//!   Cloud Elements message, and retries with growing delays.
//! * [`health`]: `INSTANCE_INVALID` / `INSTANCE_VALID` messages, sent the same way.
//! * [`retention`]: finished events leave the log after a while.
//!
//! Every event is stored with its delivery job in one transaction before anything
//! is sent, so delivery is at-least-once across crashes. See the README.

pub mod config;
pub mod delivery;
pub mod health;
pub mod message;
pub mod poller;
pub mod retention;
pub mod retry;
pub mod sign;

/// Java date patterns; moved to `switchyard-transform`, re-exported so `crate::datefmt` paths keep working.
pub use switchyard_transform::datefmt;

use std::sync::Arc;

use switchyard_elements::Catalog;
use switchyard_store::Store;
use switchyard_vault::Vault;

pub use config::{ConfigError, EventConfig, VendorType};
pub use delivery::{Deliverer, DeliverySettings};
pub use health::{notify_instance_created, notify_instance_health, HealthNotifier};
pub use poller::{BoxFuture, BoxFutureHub, HubError, HubLister, HubPage, Poller, PollerSettings, ScheduleWaker};
pub use retry::RetryPolicy;

/// What the event machinery reads: the database, the vault that opens sealed
/// configuration values, and the element catalog (for configuration defaults).
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub vault: Vault,
    pub catalog: Arc<Catalog>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Store(#[from] switchyard_store::StoreError),
    #[error("a sealed configuration value did not open: {0}")]
    Vault(#[from] switchyard_vault::VaultError),
    #[error("instance {instance}: {message}")]
    Config { instance: i64, message: String },
    #[error("polling {resource}: {source}")]
    Hub { resource: String, source: HubError },
}

impl EventsError {
    /// The error as told on the instance it concerns (without its id).
    pub fn reason(&self) -> String {
        match self {
            EventsError::Config { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Wakes the delivery worker when events were stored in this process, so they go
/// out at once instead of at the worker's next look at the database.
#[derive(Clone, Default)]
pub struct EventWaker(Arc<tokio::sync::Notify>);

impl EventWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.0.notified().await
    }
}

/// Milliseconds since the epoch, the unit of every time the queue compares.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An epoch-milliseconds time as ISO 8601 UTC with milliseconds.
pub fn iso_ms(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
