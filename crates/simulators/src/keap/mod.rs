//! A Keap (Infusionsoft) simulator: the OAuth 2.0 authorize page and token endpoint,
//! and the legacy XML-RPC `DataService` API.
//!
//! * `GET|POST /app/oauth/authorize`: the sign-in page, then the consent page (Approve/Deny),
//!   redirecting with a code;
//! * `POST /token`: code exchange and refresh with rotation;
//! * `POST /crm/xmlrpc/v1`: `DataService.*` with `Authorization: Bearer` and the private key;
//! * `/_sim/...`: the JSON control API (apps, settings, limits, counters, token expiry).
//!
//! One simulator hosts several apps; each app is one OAuth client bound to one Keap
//! account (its private key and data). Data is seeded deterministically from the app's
//! [`AppConfig`]. See the crate README for the wire details.

mod control;
mod fault;
mod http;
mod oauth;
mod page;
mod query;
mod rpc;
mod schema;
mod seed;
mod store;
pub mod xmlrpc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The demo app's OAuth client id.
pub const DEMO_CLIENT_ID: &str = "sandbox-keap-client";
/// The demo app's OAuth client secret.
pub const DEMO_CLIENT_SECRET: &str = "sandbox-keap-secret-0123456789abcdef";
/// The demo account's private key (the "Encrypted Key", first parameter of every XML-RPC call).
pub const DEMO_PRIVATE_KEY: &str = "sandbox-keap-private-key-0123456789abcdef";
/// The demo app's name, shown on the consent page.
pub const DEMO_APP_NAME: &str = "Switchyard Sandbox";
/// The demo Keap account (its `*.infusionsoft.com` name, part of the token's `scope`).
pub const DEMO_ACCOUNT: &str = "sandbox123";
/// The demo account's sign-in on the authorize page: user name (an e-mail, as Keap's).
pub const DEMO_USERNAME: &str = "sandbox@example.com";
/// The demo account's sign-in on the authorize page: password.
pub const DEMO_PASSWORD: &str = "sandbox-keap-password";

/// Keap's access-token lifetime: 24 hours.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);
/// How long an authorization code can be exchanged.
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// One OAuth client and the Keap account it was authorized for.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The account's private key; XML-RPC calls must send it as their first parameter.
    pub private_key: String,
    /// The application's display name, shown on the consent page.
    pub app_name: String,
    /// The account name (`{account}.infusionsoft.com`).
    pub account: String,
    /// The sign-in of the account's user on the authorize page (before the approval).
    pub username: String,
    pub password: String,
    /// Seed sizes.
    pub seed: Seed,
    /// API quota and throttle; `None` parts are unlimited and send no headers.
    pub limits: Limits,
    /// The account's time zone (`Application/timezone`): Keap writes every date
    /// (`DateCreated`, `LastUpdated`, ...) as the wall-clock time in it, without an
    /// offset. UTC unless set.
    pub timezone: chrono_tz::Tz,
}

impl Default for AppConfig {
    /// The demo app: [`DEMO_CLIENT_ID`], [`DEMO_CLIENT_SECRET`], [`DEMO_PRIVATE_KEY`],
    /// [`DEMO_APP_NAME`], account [`DEMO_ACCOUNT`] signed in with [`DEMO_USERNAME`] and
    /// [`DEMO_PASSWORD`], the default seed and Keap's limits.
    fn default() -> Self {
        AppConfig {
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            private_key: DEMO_PRIVATE_KEY.into(),
            app_name: DEMO_APP_NAME.into(),
            account: DEMO_ACCOUNT.into(),
            username: DEMO_USERNAME.into(),
            password: DEMO_PASSWORD.into(),
            seed: Seed::default(),
            limits: Limits::default(),
            timezone: chrono_tz::Tz::UTC,
        }
    }
}

/// How many records of each table to seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Seed {
    pub users: usize,
    pub companies: usize,
    pub contacts: usize,
    /// `Lead` records.
    pub opportunities: usize,
    /// `ContactAction` records (notes, tasks, appointments).
    pub actions: usize,
}

impl Default for Seed {
    /// 4 users, 20 companies, 60 contacts, 30 opportunities, 80 contact actions.
    fn default() -> Self {
        Seed { users: 4, companies: 20, contacts: 60, opportunities: 30, actions: 80 }
    }
}

/// A unit of Keap's rate-limit windows (the `*-time-unit` headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnit {
    fn seconds(self) -> u64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Minute => 60,
            TimeUnit::Hour => 3_600,
            TimeUnit::Day => 86_400,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Second => "second",
            TimeUnit::Minute => "minute",
            TimeUnit::Hour => "hour",
            TimeUnit::Day => "day",
        }
    }
}

/// At most `limit` calls per `interval` `unit`s (a fixed window from its first call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub limit: u64,
    #[serde(default = "one")]
    pub interval: u32,
    #[serde(rename = "time_unit")]
    pub unit: TimeUnit,
}

fn one() -> u32 {
    1
}

impl Window {
    fn length(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval.max(1)) * self.unit.seconds())
    }
}

/// Keap's two limits: the long quota and the short throttle. In JSON an omitted part
/// is unlimited (only [`Limits::default`] has Keap's numbers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub quota: Option<Window>,
    #[serde(default)]
    pub throttle: Option<Window>,
}

impl Default for Limits {
    /// Keap's published limits: 150,000 calls a day and 1,500 a minute.
    fn default() -> Self {
        Limits {
            quota: Some(Window { limit: 150_000, interval: 1, unit: TimeUnit::Day }),
            throttle: Some(Window { limit: 1_500, interval: 1, unit: TimeUnit::Minute }),
        }
    }
}

/// Simulator-wide switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `GET /app/oauth/authorize` redirects with a code at once, without the page.
    pub auto_approve: bool,
    /// `expires_in` of new access tokens.
    pub access_token_lifetime: Duration,
    /// How long a new authorization code can be exchanged.
    pub code_lifetime: Duration,
    /// A granted token pair is answered this long after the grant took effect (the
    /// code is spent, the old refresh token already dead): an answer still in flight.
    pub token_answer_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_approve: false,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            code_lifetime: DEFAULT_CODE_LIFETIME,
            token_answer_delay: Duration::ZERO,
        }
    }
}

/// Calls to `POST /token`, whatever their answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenCalls {
    pub total: u64,
    pub authorization_code: u64,
    pub refresh_token: u64,
    /// Missing or unsupported `grant_type`.
    pub other: u64,
}

impl TokenCalls {
    fn count(&mut self, grant_type: Option<&str>) {
        self.total += 1;
        match grant_type {
            Some("authorization_code") => self.authorization_code += 1,
            Some("refresh_token") => self.refresh_token += 1,
            _ => self.other += 1,
        }
    }
}

pub(crate) struct WindowState {
    start: Instant,
    start_wall: SystemTime,
    used: u64,
}

/// The run-time state of one app.
pub(crate) struct App {
    pub(crate) cfg: RwLock<AppConfig>,
    pub(crate) data: RwLock<store::AccountData>,
    /// Quota and throttle windows.
    pub(crate) windows: Mutex<[Option<WindowState>; 2]>,
    pub(crate) rpc_calls: AtomicU64,
    pub(crate) token_calls: Mutex<TokenCalls>,
}

pub(crate) struct Inner {
    pub(crate) apps: RwLock<HashMap<String, Arc<App>>>,
    pub(crate) settings: RwLock<Settings>,
    pub(crate) grants: Mutex<oauth::Grants>,
    pub(crate) token_calls: Mutex<TokenCalls>,
}

/// The simulator: a cheap handle (an `Arc` inside) shared by the router and the caller.
#[derive(Clone)]
pub struct KeapSimulator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for KeapSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeapSimulator").field("apps", &self.client_ids()).finish()
    }
}

/// Locks never stay poisoned: every critical section leaves the data consistent.
pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeapSimulator {
    /// A simulator hosting the given apps (a later app with the same client id wins).
    pub fn new(apps: Vec<AppConfig>) -> Self {
        let sim = KeapSimulator {
            inner: Arc::new(Inner {
                apps: RwLock::new(HashMap::new()),
                settings: RwLock::new(Settings::default()),
                grants: Mutex::new(oauth::Grants::default()),
                token_calls: Mutex::new(TokenCalls::default()),
            }),
        };
        for a in apps {
            sim.add_app(a);
        }
        sim
    }

    /// One demo app, see [`AppConfig::default`].
    pub fn demo() -> Self {
        Self::new(vec![AppConfig::default()])
    }

    /// The axum router: OAuth, XML-RPC and the `/_sim` control API.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Adds (or replaces, with fresh seed data and no tokens) an app.
    pub fn add_app(&self, cfg: AppConfig) {
        let id = cfg.client_id.clone();
        let data = seed::seed_account(&cfg);
        let app = Arc::new(App {
            cfg: RwLock::new(cfg),
            data: RwLock::new(data),
            windows: Mutex::new([None, None]),
            rpc_calls: AtomicU64::new(0),
            token_calls: Mutex::new(TokenCalls::default()),
        });
        lock(&self.inner.grants).forget_client(&id);
        write(&self.inner.apps).insert(id, app);
    }

    /// Removes an app and every token issued to it; true if it existed.
    pub fn remove_app(&self, client_id: &str) -> bool {
        lock(&self.inner.grants).forget_client(client_id);
        write(&self.inner.apps).remove(client_id).is_some()
    }

    /// The client ids of all apps, sorted.
    pub fn client_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.inner.apps).keys().cloned().collect();
        v.sort();
        v
    }

    /// The configuration of an app.
    pub fn app(&self, client_id: &str) -> Option<AppConfig> {
        self.state(client_id).map(|a| read(&a.cfg).clone())
    }

    pub fn settings(&self) -> Settings {
        read(&self.inner.settings).clone()
    }

    /// Replaces the simulator-wide settings (tokens already issued keep their expiry).
    pub fn set_settings(&self, settings: Settings) {
        *write(&self.inner.settings) = settings;
    }

    /// Makes `GET /app/oauth/authorize` redirect with a code at once (for non-browser tests).
    pub fn set_auto_approve(&self, on: bool) {
        write(&self.inner.settings).auto_approve = on;
    }

    /// The `expires_in` of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        write(&self.inner.settings).access_token_lifetime = lifetime;
    }

    /// Replaces an app's limits and starts fresh windows (no-op for an unknown app).
    pub fn set_limits(&self, client_id: &str, limits: Limits) {
        if let Some(a) = self.state(client_id) {
            write(&a.cfg).limits = limits;
            *lock(&a.windows) = [None, None];
        }
    }

    /// Sets an app's account time zone: dates written from now on are its wall-clock
    /// times, and `getAppSetting("Application", "timezone")` names it (no-op for an
    /// unknown app).
    pub fn set_timezone(&self, client_id: &str, zone: chrono_tz::Tz) {
        if let Some(a) = self.state(client_id) {
            write(&a.cfg).timezone = zone;
        }
    }

    /// Calls to `POST /token` across all apps (also those naming no known client).
    pub fn token_calls(&self) -> TokenCalls {
        *lock(&self.inner.token_calls)
    }

    /// Calls to `POST /token` that named this app's client id.
    pub fn app_token_calls(&self, client_id: &str) -> Option<TokenCalls> {
        self.state(client_id).map(|a| *lock(&a.token_calls))
    }

    /// XML-RPC requests that carried a valid access token of this app.
    pub fn rpc_count(&self, client_id: &str) -> u64 {
        self.state(client_id).map(|a| a.rpc_calls.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Makes every access token of the app expired now (refresh tokens stay); returns how many.
    pub fn expire_access_tokens(&self, client_id: &str) -> usize {
        lock(&self.inner.grants).expire_access(client_id)
    }

    /// Revokes every access and refresh token of the app; returns how many.
    pub fn revoke_tokens(&self, client_id: &str) -> usize {
        lock(&self.inner.grants).forget_client(client_id)
    }

    /// Puts an app's data back to its seed (tokens, counters and limits stay).
    pub fn reset_data(&self, client_id: &str) -> bool {
        match self.state(client_id) {
            Some(a) => {
                let fresh = seed::seed_account(&read(&a.cfg));
                *write(&a.data) = fresh;
                true
            }
            None => false,
        }
    }

    /// Makes the simulator write `xml` verbatim in place of the whole `<value>…</value>`
    /// of one field of one record, in every answer that carries the field, until the
    /// field is written or the data reset. For answers a client must survive, e.g.
    /// `<value>&#55357;</value>`: a lone surrogate, which Keap writes when a text was cut
    /// between the two halves of an emoji. False for an unknown app, table, record or field.
    pub fn set_raw_field(&self, client_id: &str, table: &str, id: i32, field: &str, xml: &str) -> bool {
        let (Some(app), Some(t)) = (self.state(client_id), schema::table(table)) else { return false };
        let set = write(&app.data).set_raw(t, id, field, xml.to_owned());
        set
    }

    pub(crate) fn state(&self, client_id: &str) -> Option<Arc<App>> {
        read(&self.inner.apps).get(client_id).cloned()
    }
}

/// Serves the simulator on `listener` until the task is dropped or serving fails.
pub async fn serve(listener: tokio::net::TcpListener, sim: KeapSimulator) -> std::io::Result<()> {
    axum::serve(listener, sim.router()).await
}
