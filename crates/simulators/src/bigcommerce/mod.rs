//! A BigCommerce v2 ("legacy") API simulator, with the v3 hooks API and webhook deliveries.
//!
//! One [`BigCommerceSimulator`] hosts many stores on one port, addressed by path:
//!
//! * legacy mode: `http://HOST/stores/{hash}/api/v2/...` with HTTP Basic `username:api_token`;
//! * token mode:  `http://HOST/stores/{hash}/v2/...` with `X-Auth-Token: api_token`, and
//!   `http://HOST/stores/{hash}/v3/hooks` for webhooks.
//!
//! The data of each store lives in memory and is seeded deterministically from its
//! [`StoreConfig`]. Rate limits and faults can be configured per store, at start or at
//! run time (through the methods here or the JSON control API under `/_sim`). Writes to
//! orders, products and customers fire the store's webhooks (see `crates/simulators/README.md`).

mod api;
mod catalog;
mod control;
mod customers;
mod data;
mod delivery;
mod events;
mod fmt;
mod geo;
mod hooks;
mod http;
mod orders;
mod query;
use crate::rng;
mod seed;
mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use delivery::Delivery;

/// The fixed API token of the demo store (`hash` `abc123`, username `sandbox`).
pub const DEMO_API_TOKEN: &str = "sandbox-demo-token-0123456789abcdef";
/// The hash of the demo store.
pub const DEMO_STORE_HASH: &str = "abc123";
/// The username of the demo store.
pub const DEMO_USERNAME: &str = "sandbox";

/// How many webhook delivery attempts a store's log keeps.
pub const WEBHOOK_LOG_SIZE: usize = delivery::LOG_SIZE;

/// The vendor's default rate-limit window.
pub const DEFAULT_QUOTA_WINDOW: Duration = Duration::from_millis(30_000);

/// One simulated store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The store hash, the `{hash}` in `/stores/{hash}/...`.
    pub hash: String,
    /// The API user name (legacy Basic auth).
    pub username: String,
    /// The API token: the Basic password in legacy mode, `X-Auth-Token` in token mode.
    pub api_token: String,
    /// How many orders to seed.
    pub seed_orders: usize,
    /// How many customers to seed.
    pub seed_customers: usize,
    /// How many products to seed.
    pub seed_products: usize,
    /// A request quota per window; `None` means unlimited and no rate-limit headers.
    pub quota: Option<Quota>,
    /// Legacy (HTTP Basic) requests see the quota as legacy stores showed it: the
    /// calls left in `X-BC-ApiLimit-Remaining` on every answer and, once it is spent,
    /// **509** with no wait header, instead of `X-Rate-Limit-*` and 429.
    pub legacy_rate_limits: bool,
    /// Faults to inject.
    pub faults: Faults,
    /// The store's numeric id (`/store`'s `store_id`, the `store_id` of webhook payloads);
    /// `None` takes the one seeded from the hash.
    pub store_id: Option<u64>,
    /// Compresses the webhook retry schedule: 0.001 turns the 60 s wait into 60 ms.
    pub webhook_time_scale: f64,
}

impl Default for StoreConfig {
    /// The demo store: hash `abc123`, username `sandbox`, token [`DEMO_API_TOKEN`],
    /// 120 orders, 40 customers, 30 products, no quota, no faults, the seeded store id,
    /// the vendor's webhook schedule (time scale 1).
    fn default() -> Self {
        StoreConfig {
            hash: DEMO_STORE_HASH.to_string(),
            username: DEMO_USERNAME.to_string(),
            api_token: DEMO_API_TOKEN.to_string(),
            seed_orders: 120,
            seed_customers: 40,
            seed_products: 30,
            quota: None,
            legacy_rate_limits: false,
            faults: Faults::default(),
            store_id: None,
            webhook_time_scale: 1.0,
        }
    }
}

/// A rate limit: at most `requests` per `window` (a fixed window, as the vendor's).
#[derive(Clone, Debug)]
pub struct Quota {
    pub requests: u32,
    pub window: Duration,
}

impl Quota {
    /// The vendor's Standard/Plus plan quota: 150 requests per 30 s.
    pub fn standard() -> Self {
        Quota { requests: 150, window: DEFAULT_QUOTA_WINDOW }
    }
}

/// Faults injected into the answers of one store.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Wait this long before answering.
    pub latency: Option<Duration>,
    /// Share (0..=1) of requests answered with a 5xx error array.
    pub error_rate: f64,
    /// Share (0..=1) of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Stream the body in chunks, taking about this long in total.
    pub slow_body: Option<Duration>,
    /// The status of injected errors (500..=599); `None` picks 500 or 503 at random.
    pub error_status: Option<u16>,
    /// Inject at most this many errors, counted from when these faults were set; then
    /// answer normally (a vendor that recovers). `None`: no limit.
    pub max_errors: Option<u64>,
}

/// How many of a store's latest requests it remembers (see [`SeenRequest`]).
pub const RECENT_REQUESTS: usize = 10_000;

/// One request a store received, as the control API's `/_sim/stores/{hash}/requests`
/// lists it: when (epoch milliseconds), the method, and the path after the API's
/// base (`customers`), without the query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeenRequest {
    pub at: u64,
    pub method: String,
    pub path: String,
}

/// The run-time state of one store.
pub(crate) struct StoreState {
    pub(crate) cfg: RwLock<StoreConfig>,
    pub(crate) data: RwLock<data::StoreData>,
    pub(crate) requests: AtomicU64,
    /// The latest requests, oldest first, at most [`RECENT_REQUESTS`].
    pub(crate) recent: Mutex<std::collections::VecDeque<SeenRequest>>,
    /// Errors injected since the faults were last set.
    pub(crate) injected: AtomicU64,
    pub(crate) window: Mutex<QuotaWindow>,
    pub(crate) hooks: Mutex<hooks::Hooks>,
    pub(crate) deliveries: Mutex<delivery::Log>,
}

pub(crate) struct QuotaWindow {
    pub(crate) start: Instant,
    pub(crate) used: u32,
}

impl StoreState {
    fn new(cfg: StoreConfig) -> Self {
        let data = seed::seed_store(&cfg);
        StoreState {
            cfg: RwLock::new(cfg),
            data: RwLock::new(data),
            requests: AtomicU64::new(0),
            recent: Mutex::new(std::collections::VecDeque::new()),
            injected: AtomicU64::new(0),
            window: Mutex::new(QuotaWindow { start: Instant::now(), used: 0 }),
            hooks: Mutex::new(hooks::Hooks::new()),
            deliveries: Mutex::new(delivery::Log::new()),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) stores: RwLock<HashMap<String, Arc<StoreState>>>,
    /// Hook ids are unique across the simulator's stores, as across the vendor's.
    pub(crate) next_hook_id: AtomicU64,
    pub(crate) webhooks: delivery::Dispatcher,
}

/// The simulator: a cheap handle (an `Arc` inside) shared by the router and the caller.
#[derive(Clone)]
pub struct BigCommerceSimulator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for BigCommerceSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stores = read(&self.inner.stores);
        let mut hashes: Vec<&String> = stores.keys().collect();
        hashes.sort();
        f.debug_struct("BigCommerceSimulator").field("stores", &hashes).finish()
    }
}

/// Locks never stay poisoned here: every critical section leaves the data consistent,
/// so a panic elsewhere must not take the simulator down.
pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl BigCommerceSimulator {
    /// A simulator hosting the given stores (a later store with the same hash wins).
    pub fn new(stores: Vec<StoreConfig>) -> Self {
        let inner = Inner { stores: RwLock::new(HashMap::new()), next_hook_id: AtomicU64::new(1), webhooks: delivery::Dispatcher::new() };
        let sim = BigCommerceSimulator { inner: Arc::new(inner) };
        for s in stores {
            sim.add_store(s);
        }
        sim
    }

    /// One demo store, see [`StoreConfig::default`].
    pub fn demo() -> Self {
        Self::new(vec![StoreConfig::default()])
    }

    /// The axum router serving every store and the `/_sim` control API.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Adds (or replaces, with fresh seed data) a store.
    pub fn add_store(&self, cfg: StoreConfig) {
        let hash = cfg.hash.clone();
        let state = Arc::new(StoreState::new(cfg));
        write(&self.inner.stores).insert(hash, state);
    }

    /// Removes a store; true if it existed.
    pub fn remove_store(&self, hash: &str) -> bool {
        write(&self.inner.stores).remove(hash).is_some()
    }

    /// The hashes of all stores, sorted.
    pub fn store_hashes(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.inner.stores).keys().cloned().collect();
        v.sort();
        v
    }

    /// The current configuration of a store (with its current faults and quota).
    pub fn store(&self, hash: &str) -> Option<StoreConfig> {
        self.state(hash).map(|s| read(&s.cfg).clone())
    }

    /// Replaces the faults of a store (no-op for an unknown store).
    pub fn set_faults(&self, hash: &str, faults: Faults) {
        if let Some(s) = self.state(hash) {
            write(&s.cfg).faults = faults;
            s.injected.store(0, Ordering::Relaxed);
        }
    }

    /// Replaces the quota of a store and starts a fresh window (no-op for an unknown store).
    pub fn set_quota(&self, hash: &str, quota: Option<Quota>) {
        if let Some(s) = self.state(hash) {
            write(&s.cfg).quota = quota;
            *lock(&s.window) = QuotaWindow { start: Instant::now(), used: 0 };
        }
    }

    /// Makes a store's legacy (Basic) answers throttle as legacy stores did
    /// ([`StoreConfig::legacy_rate_limits`]); its quota is set with [`Self::set_quota`].
    pub fn set_legacy_rate_limits(&self, hash: &str, on: bool) {
        if let Some(s) = self.state(hash) {
            write(&s.cfg).legacy_rate_limits = on;
        }
    }

    /// Requests seen for a store (every request addressed to it, whatever the answer).
    pub fn request_count(&self, hash: &str) -> u64 {
        self.state(hash).map(|s| s.requests.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The store's latest requests (at most [`RECENT_REQUESTS`]), oldest first.
    pub fn recent_requests(&self, hash: &str) -> Vec<SeenRequest> {
        self.state(hash).map(|s| lock(&s.recent).iter().cloned().collect()).unwrap_or_default()
    }

    /// Sets how fast a store's webhook retries come: the vendor's waits (60 s, 180 s, ...
    /// after the first attempt) times `scale`. Waits already running keep their length.
    /// False for an unknown store or a scale that is not a finite number >= 0.
    pub fn set_webhook_time_scale(&self, hash: &str, scale: f64) -> bool {
        match self.state(hash) {
            Some(s) if scale.is_finite() && scale >= 0.0 => {
                write(&s.cfg).webhook_time_scale = scale;
                true
            }
            _ => false,
        }
    }

    /// A store's webhook delivery attempts, oldest first (the last
    /// [`WEBHOOK_LOG_SIZE`]); empty for an unknown store.
    pub fn webhook_deliveries(&self, hash: &str) -> Vec<Delivery> {
        self.state(hash).map(|s| delivery::log(&s)).unwrap_or_default()
    }

    /// A store's numeric id as webhook payloads carry it (`"1025646"`).
    pub fn store_id(&self, hash: &str) -> Option<String> {
        self.state(hash).map(|s| read(&s.data).info.store_id.to_string())
    }

    /// Puts a store's data back to its seed (the request counter, quota window, webhooks and
    /// their delivery log stay).
    pub fn reset_data(&self, hash: &str) -> bool {
        match self.state(hash) {
            Some(s) => {
                let fresh = seed::seed_store(&read(&s.cfg));
                *write(&s.data) = fresh;
                true
            }
            None => false,
        }
    }

    pub(crate) fn state(&self, hash: &str) -> Option<Arc<StoreState>> {
        read(&self.inner.stores).get(hash).cloned()
    }
}

/// Serves the simulator on `listener` until the task is dropped or accepting fails.
///
/// Unlike mounting [`BigCommerceSimulator::router`] in another server, this server can
/// drop a connection without writing a byte (the `drop_rate` fault).
pub async fn serve(listener: tokio::net::TcpListener, sim: BigCommerceSimulator) -> std::io::Result<()> {
    http::serve(listener, sim).await
}
