//! switchyard-engine: everything that happens between Switchyard and a vendor for
//! an element instance, below the HTTP layer.
//!
//! - the vendor transport: the outbound policy, the HTTP client, retries and
//!   per-instance limits ([`client`], [`outbound`], [`dispatch`], [`retry`], [`throttle`]);
//! - the [`Engine`]: hub operations routed through the element's data
//!   ([`Engine::execute`]: REST JSON and XML-RPC, exact paging with signed tokens,
//!   CEQL), OAuth 2.0 token refresh ([`oauth`]), the credential check and code
//!   exchange of instance creation ([`credentials`]), vendor webhook registration
//!   ([`webhooks`]), the call log ([`call_log`]), and opened instances ([`instance`]).
//! - Cloud Elements' data layer: object metadata and common resource definitions
//!   ([`objects`]), transformations and hub calls on transformed objects
//!   ([`transformations`]).
//!
//! The HTTP server, the event poller and the delivery worker all call the engine;
//! it answers typed values ([`hub::HubAnswer`], [`EngineError`]), never HTTP
//! responses.

pub mod call_log;
pub mod calls;
pub mod client;
pub mod credentials;
pub mod dispatch;
pub mod error;
pub mod hub;
pub mod instance;
pub mod memo;
mod metrics;
pub mod oauth;
pub mod objects;
pub mod outbound;
pub mod page_token;
pub mod password;
pub mod retry;
pub mod secret;
pub mod segment;
pub mod throttle;
pub mod transformations;
pub mod vendor;
pub mod webhooks;

use std::sync::Arc;

use futures::future::BoxFuture;
use switchyard_elements::Catalog;
use switchyard_store::Store;
use switchyard_vault::Vault;

pub use client::{provider_message, VendorClient, VendorError, VendorRequest, VendorResponse};
pub use dispatch::{Dispatched, Dispatcher};
pub use error::EngineError;
pub use hub::{HubAnswer, HubPage, HubRequest, Outcome};
pub use instance::OpenInstance;
pub use outbound::{OutboundPolicy, PolicyError};
pub use retry::RetryPolicy;
pub use throttle::InstanceLimits;

/// Told when an instance turns invalid (its OAuth refresh was refused for good) or
/// valid again, so its event callback hears of it (the events crate sends
/// `INSTANCE_INVALID` / `INSTANCE_VALID`). The instance's state has changed whatever
/// the listener does; it only reports.
pub trait HealthListener: Send + Sync {
    fn instance_health(&self, instance_id: i64, valid: bool, words: Option<String>) -> BoxFuture<'static, ()>;
}

/// The engine: what every vendor interaction of an instance needs. Cheap to clone
/// (every field is shared); adjust the public fields after [`Engine::new`].
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    /// Opens and seals instance secrets.
    pub vault: Vault,
    pub catalog: Arc<Catalog>,
    /// All outbound HTTP, behind the outbound policy (token endpoints, callbacks).
    pub client: VendorClient,
    /// Vendor calls: `client` with retries and per-instance limits.
    pub vendors: Dispatcher,
    /// Where vendor calls are logged (written in the background).
    pub call_log: call_log::CallLog,
    /// Signs hub `nextPage` tokens (and the server's other page tokens).
    pub paging_key: Arc<Vec<u8>>,
    /// Instances opened recently, by token hash.
    pub instances: instance::InstanceCache,
    /// OAuth 2.0 refresh settings and the per-instance single flight.
    pub oauth: oauth::OAuthRuntime,
    /// Where vendors reach this server (`http://host:port`, no path): vendor
    /// webhooks are registered to `{public_url}/elements/api-v2/events/...`.
    pub public_url: String,
    /// Hears of instances turning invalid or valid.
    pub health: Option<Arc<dyn HealthListener>>,
    /// Organizations' transformations, for hub calls.
    pub transformations: transformations::TransformationCache,
}

impl Engine {
    /// An engine with default retries, limits and OAuth settings, the call log
    /// writing to `store` (a task on the current runtime), and no health listener.
    pub fn new(store: Store, vault: Vault, client: VendorClient, catalog: Arc<Catalog>, paging_key: Vec<u8>) -> Engine {
        Engine {
            vendors: Dispatcher::new(client.clone(), RetryPolicy::default(), InstanceLimits::default()),
            call_log: call_log::CallLog::spawn(store.clone(), call_log::Retention::default()),
            store,
            vault,
            catalog,
            client,
            paging_key: Arc::new(paging_key),
            instances: instance::InstanceCache::default(),
            oauth: oauth::OAuthRuntime::default(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            health: None,
            transformations: transformations::new_cache(),
        }
    }

    /// Tells the health listener, if any.
    pub async fn announce_health(&self, instance_id: i64, valid: bool, words: Option<&str>) {
        if let Some(listener) = &self.health {
            listener.instance_health(instance_id, valid, words.map(str::to_owned)).await;
        }
    }
}
