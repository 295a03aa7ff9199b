//! OAuth 2.0, the authentication scheme an element declares with
//! `authentication: {type: oauth2, ...}`: the authorize URL, the code exchange at
//! instance creation, and token refresh.
//!
//! Refresh tokens may rotate (Keap's do: the old one dies the moment a new pair is
//! issued), so a refresh must happen once, and its answer must be kept:
//! - **single flight**: in this process, one refresh per instance at a time (an
//!   async mutex per instance); across processes sharing the database, a lease row
//!   (`oauth_refresh`, see `switchyard-store`) taken before the token call and
//!   renewed while it runs. A caller that waited finds the token changed and uses it.
//! - **commit first**: the new pair is written (one `synchronous=FULL` SQLite
//!   transaction) the moment the vendor answers, before it is used. The window in
//!   which a crash loses the rotated token is the vendor's answer in flight plus
//!   that commit (docs/choices.md).
//! - a refresh refused for good (`invalid_grant`, or the app's own credentials:
//!   `invalid_client`, `unauthorized_client`) makes the instance `valid: false` and
//!   sends `INSTANCE_INVALID`; hub calls then answer 401 with the vendor's words until
//!   a new code re-authorizes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::Value;
use switchyard_elements::{ClientAuth, ElementDefinition, OAuth2};
use switchyard_store::NewValue;

use crate::calls::{log_entry, render, unreached};
use crate::client::{provider_message, VendorRequest};
use crate::instance::{defaults, VaultSealer};
use crate::{Engine, EngineError};

/// The configuration keys the engine writes (platform-api.md, "Configuration keys").
pub const ACCESS_TOKEN: &str = "oauth.user.token";
pub const REFRESH_TOKEN: &str = "oauth.user.refresh_token";
/// Epoch milliseconds of the last code exchange or refresh.
pub const REFRESH_TIME: &str = "oauth.user.refresh_time";
/// Seconds the access token lives (the vendor's `expires_in`).
pub const REFRESH_INTERVAL: &str = "oauth.user.refresh_interval";

/// Whether a configuration key is one the engine keeps for OAuth (callers cannot set them).
pub fn is_token_key(key: &str) -> bool {
    matches!(key, ACCESS_TOKEN | REFRESH_TOKEN | REFRESH_TIME | REFRESH_INTERVAL)
}

/// Largest token endpoint answer read.
const MAX_TOKEN_BODY: usize = 64 * 1024;
/// How often a process waiting for another's lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(25);

/// Refresh settings and the in-process single flight. Cheap to clone.
#[derive(Clone)]
pub struct OAuthRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    margin: Duration,
    lease: Duration,
    /// How long a refresh waits for another process's lease before answering 503.
    lease_wait: Duration,
    /// This process's name on leases.
    holder: String,
    locks: std::sync::Mutex<HashMap<i64, Weak<tokio::sync::Mutex<()>>>>,
}

impl OAuthRuntime {
    /// Refresh 5 minutes before expiry.
    pub const DEFAULT_MARGIN: Duration = Duration::from_secs(300);
    /// A refresh lease lasts 30 s and is renewed every 10 s while its token call runs.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// `margin`: how long before expiry a token is refreshed (at most half its
    /// lifetime, so short-lived tokens are not refreshed on every call); `lease`:
    /// how long another process waits for a refresh holder that stopped answering.
    pub fn new(margin: Duration, lease: Duration) -> Self {
        use rand::Rng;
        let holder = format!("{}-{:016x}", std::process::id(), rand::thread_rng().gen::<u64>());
        let lease = lease.max(Duration::from_millis(300));
        // A live holder renews its lease only while its token call runs, which the
        // vendor timeout bounds; past this, something is wrong with the database.
        let lease_wait = lease * 4 + Duration::from_secs(60);
        OAuthRuntime { inner: Arc::new(Inner { margin, lease, lease_wait, holder, locks: Default::default() }) }
    }

    /// The same settings, but a refresh waits at most `wait` for a lease another
    /// process holds before answering 503 (default: four leases and a minute).
    pub fn with_lease_wait(self, wait: Duration) -> Self {
        let Inner { margin, lease, ref holder, .. } = *self.inner;
        OAuthRuntime {
            inner: Arc::new(Inner { margin, lease, lease_wait: wait, holder: holder.clone(), locks: Default::default() }),
        }
    }

    fn lock_for(&self, instance_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(&instance_id).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, l| l.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(instance_id, Arc::downgrade(&lock));
        lock
    }

    /// Whether stored tokens are due for a refresh now.
    fn due(&self, t: &Tokens) -> bool {
        let (Some(issued), Some(lifetime)) = (t.issued_ms, t.lifetime_s) else {
            return false; // unknown lifetime: the vendor's 401 says when
        };
        let lifetime_ms = lifetime.saturating_mul(1000);
        let margin = (self.inner.margin.as_millis() as i64).min(lifetime_ms / 2);
        epoch_ms() >= issued.saturating_add(lifetime_ms).saturating_sub(margin)
    }
}

impl Default for OAuthRuntime {
    fn default() -> Self {
        OAuthRuntime::new(Self::DEFAULT_MARGIN, Self::DEFAULT_LEASE)
    }
}

pub fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Test hook: `SWITCHYARD_DEBUG_CRASH=<point>` aborts the process at that point of a
/// refresh (`oauth-before-token-call`, `oauth-after-token-commit`). Read only in
/// debug builds; a release build has no such switch.
fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("SWITCHYARD_DEBUG_CRASH").is_ok_and(|v| v == point) {
        tracing::error!(point, "SWITCHYARD_DEBUG_CRASH: aborting at this point");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// The stored tokens of an instance.
struct Tokens {
    access: String,
    refresh: String,
    issued_ms: Option<i64>,
    lifetime_s: Option<i64>,
}

impl Tokens {
    /// Whether the vendor's lifetime is over (unknown lifetimes never are).
    fn expired(&self) -> bool {
        match (self.issued_ms, self.lifetime_s) {
            (Some(issued), Some(lifetime)) => epoch_ms() >= issued.saturating_add(lifetime.saturating_mul(1000)),
            _ => false,
        }
    }

    fn of(config: &BTreeMap<String, String>) -> Option<Tokens> {
        let get = |k: &str| config.get(k).filter(|v| !v.is_empty());
        Some(Tokens {
            access: get(ACCESS_TOKEN)?.clone(),
            refresh: get(REFRESH_TOKEN).cloned().unwrap_or_default(),
            issued_ms: get(REFRESH_TIME).and_then(|v| v.parse().ok()),
            lifetime_s: get(REFRESH_INTERVAL).and_then(|v| v.parse().ok()),
        })
    }
}

/// A token pair the vendor issued.
pub struct TokenPair {
    access: String,
    refresh: String,
    expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenPair {{ access: ***, refresh: ***, expires_in: {} }}", self.expires_in)
    }
}

impl TokenPair {
    /// The configuration values to store for it, issued now.
    pub fn values(&self) -> Vec<(String, String)> {
        vec![
            (ACCESS_TOKEN.to_owned(), self.access.clone()),
            (REFRESH_TOKEN.to_owned(), self.refresh.clone()),
            (REFRESH_TIME.to_owned(), epoch_ms().to_string()),
            (REFRESH_INTERVAL.to_owned(), self.expires_in.to_string()),
        ]
    }
}

/// Why the token endpoint gave no pair.
enum TokenFailure {
    /// It answered 4xx: `error` is the OAuth error code, `words` its description.
    Refused { error: String, words: Option<String> },
    /// No usable answer.
    Failed(EngineError),
}

pub fn oauth2(def: &ElementDefinition) -> Result<&OAuth2, EngineError> {
    def.authentication
        .oauth2()
        .ok_or_else(|| EngineError::new(StatusCode::BAD_REQUEST, format!("Element {} does not use OAuth 2.0", def.key)))
}

/// One `POST` to the token endpoint (`oauth.token.url`, through the outbound policy).
/// Sent once, never through the retrying dispatcher: a grant whose answer is lost
/// cannot be replayed (codes are single-use, refresh tokens may rotate), so there is
/// nothing to retry. Logged in the call log of `instance` when there is one
/// (method, the URL's path and query names, status, duration: never the form).
/// `refreshing`: the refresh token the form sends, kept when the answer names none
/// (RFC 6749 section 6: the server *may* issue a new one); a code exchange passes
/// `None`, and an answer without a refresh token is then a failure.
async fn token_call(
    engine: &Engine,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    mut form: Vec<(&'static str, String)>,
    client_auth: ClientAuth,
    instance: Option<i64>,
    refreshing: Option<&str>,
) -> Result<TokenPair, TokenFailure> {
    let o = oauth2(def).map_err(TokenFailure::Failed)?;
    let rendered = |t: &str| render(t, config).map_err(TokenFailure::Failed);
    let (url, client_id, client_secret) = (rendered(&o.token_url)?, rendered(&o.client_id)?, rendered(&o.client_secret)?);
    let basic_auth = match client_auth {
        ClientAuth::Basic => Some((client_id, client_secret)),
        ClientAuth::Form => {
            form.push(("client_id", client_id));
            form.push(("client_secret", client_secret));
            None
        }
    };
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
    // The log keeps the path and the query's names (see `log_entry`).
    let logged_path = match url::Url::parse(&url) {
        Ok(u) => u.query().map_or_else(|| u.path().to_owned(), |q| format!("{}?{q}", u.path())),
        Err(_) => String::new(),
    };
    let request = VendorRequest {
        method: Method::POST,
        url,
        headers: vec![
            ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
            ("Accept".to_owned(), "application/json".to_owned()),
        ],
        basic_auth,
        body: Some(body.into()),
        max_body: MAX_TOKEN_BODY,
    };
    let (at, started) = (SystemTime::now(), std::time::Instant::now());
    let result = engine.client.send(request).await;
    let done = crate::Dispatched { result, retries: 0, elapsed: started.elapsed(), retry_after: None };
    if let Some(instance_id) = instance {
        engine.call_log.record(log_entry(instance_id, &Method::POST, &logged_path, &[], &done, at));
    }
    let response = done.result.map_err(|e| TokenFailure::Failed(unreached(e)))?;
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or("").to_owned();
    match response.status {
        200..=299 => {
            let access = field("access_token");
            let refresh = Some(field("refresh_token")).filter(|r| !r.is_empty()).or_else(|| refreshing.map(str::to_owned)).unwrap_or_default();
            let expires_in = parsed.as_ref().and_then(|v| v.get("expires_in")).and_then(Value::as_i64).unwrap_or(0);
            if access.is_empty() || refresh.is_empty() {
                return Err(TokenFailure::Failed(EngineError::new(
                    StatusCode::BAD_GATEWAY,
                    "The token endpoint answered without an access and a refresh token",
                )));
            }
            Ok(TokenPair { access, refresh, expires_in })
        }
        400..=499 => Err(TokenFailure::Refused { error: field("error"), words: provider_message(&response.body) }),
        status => {
            let mut err = EngineError::new(StatusCode::BAD_GATEWAY, format!("The token endpoint failed with status {status}"));
            err.provider_message = provider_message(&response.body);
            Err(TokenFailure::Failed(err))
        }
    }
}

/// Exchanges an authorization code (instance creation and re-authorization). Any
/// failure is a 400 carrying the vendor's words; nothing is stored by this call.
/// `instance`: whose call log records the call (none at creation: no instance yet).
pub async fn exchange_code(
    engine: &Engine,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    code: &str,
    instance: Option<i64>,
) -> Result<TokenPair, EngineError> {
    let o = oauth2(def)?;
    let redirect_uri = render(&o.callback_url, config)?;
    let form = vec![("grant_type", "authorization_code".to_owned()), ("code", code.to_owned()), ("redirect_uri", redirect_uri)];
    // As the element declares (default: form fields, as Keap documents for the exchange).
    token_call(engine, def, config, form, o.exchange_auth, instance, None).await.map_err(|failure| match failure {
        TokenFailure::Refused { error, words } => {
            let mut err = EngineError::new(
                StatusCode::BAD_REQUEST,
                format!("The vendor refused the authorization code{}", if error.is_empty() { String::new() } else { format!(" ({error})") }),
            );
            err.provider_message = words;
            err
        }
        TokenFailure::Failed(e) => {
            let mut err = EngineError::new(StatusCode::BAD_REQUEST, format!("The authorization code could not be exchanged: {}", e.message));
            err.provider_message = e.provider_message;
            err
        }
    })
}

/// The 401 of every hub call on an instance whose refresh token was refused.
pub async fn reauthorize_error(engine: &Engine, instance_id: i64) -> EngineError {
    let words = engine.store.refresh_refusal(instance_id).await.ok().flatten();
    reauthorize(instance_id, words)
}

fn reauthorize(instance_id: i64, words: Option<String>) -> EngineError {
    let mut err = EngineError::unauthorized(format!(
        "Instance {instance_id} must be re-authenticated: the vendor refused to refresh its tokens. \
         Authorize again and send the new code as providerData.code in PATCH /instances/{instance_id} \
         (with the app's oauth.api.key and oauth.api.secret corrected if the vendor refused those)"
    ));
    err.provider_message = words.filter(|w| !w.is_empty());
    err
}

/// The stored configuration over the element defaults, secrets opened.
async fn current(engine: &Engine, def: &ElementDefinition, instance_id: i64) -> Result<BTreeMap<String, String>, EngineError> {
    let mut config = defaults(def);
    config.extend(engine.stored_configuration(instance_id).await?);
    Ok(config)
}

/// Before a hub call: refreshes the access token in `config` when it is due.
pub async fn ensure_fresh(
    engine: &Engine,
    def: &ElementDefinition,
    instance_id: i64,
    config: &mut BTreeMap<String, String>,
) -> Result<(), EngineError> {
    let Some(t) = Tokens::of(config) else {
        return Err(EngineError::unauthorized(format!(
            "Instance {instance_id} has no access token; authorize it (providerData.code in PATCH /instances/{instance_id})"
        )));
    };
    if engine.oauth.due(&t) {
        match refresh(engine, def, instance_id, &t.access, false).await {
            Ok((fresh, _)) => {
                config.insert(ACCESS_TOKEN.to_owned(), fresh);
            }
            // Refreshing early failed for a reason that may pass (the token endpoint
            // is down): the old token is still good for the rest of the margin.
            Err(e) if e.status != StatusCode::UNAUTHORIZED && !t.expired() => {
                tracing::warn!(instance_id, error = %e.message, "refreshing before expiry failed; using the current token");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// After the vendor refused `used` (401): another access token, refreshed at most
/// once however many calls saw the 401, and whether this call refreshed it (a token
/// merely found stored may be stale too: see `Vendor::exchange`).
pub(crate) async fn refresh_after_401(
    engine: &Engine,
    def: &ElementDefinition,
    instance_id: i64,
    used: &str,
) -> Result<(String, bool), EngineError> {
    refresh(engine, def, instance_id, used, true).await
}

/// Renews the refresh lease every third of its length while the token call runs.
struct Renewal {
    /// Dropping it (here or with the whole `Renewal`) stops the loop at its next wait.
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Renewal {
    fn start(store: switchyard_store::Store, instance_id: i64, holder: String, lease: Duration) -> Renewal {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(lease / 3) => {}
                }
                if !matches!(store.take_refresh_lease(instance_id, &holder, lease.as_millis() as i64).await, Ok(true)) {
                    break;
                }
            }
        });
        Renewal { stop, task }
    }

    /// Stops renewing and waits for a renewal already sent to the database to end,
    /// so that it cannot take the lease back after the caller releases it. (Aborting
    /// the task would not do: a query already sent runs to its end without it.)
    async fn finish(self) {
        drop(self.stop);
        let _ = self.task.await;
    }
}

/// Single flight: returns a stored token other than `seen` (another refresh, by this
/// process or another, or simply newer than the caller's view), else refreshes under
/// the lease. `force`: refresh even if the clock says the token is still good (the
/// vendor said 401). The flag says whether this call made the token call.
async fn refresh(
    engine: &Engine,
    def: &ElementDefinition,
    instance_id: i64,
    seen: &str,
    force: bool,
) -> Result<(String, bool), EngineError> {
    let newer = |t: &Tokens| t.access != seen;
    let rt = &engine.oauth;
    let in_process = rt.lock_for(instance_id).lock_owned().await;
    let lease_ms = rt.inner.lease.as_millis() as i64;
    let give_up = tokio::time::Instant::now() + rt.inner.lease_wait;
    loop {
        let config = current(engine, def, instance_id).await?;
        let t = Tokens::of(&config).ok_or_else(|| reauthorize(instance_id, None))?;
        if newer(&t) || (!force && !rt.due(&t)) {
            return Ok((t.access, false));
        }
        if let Some(words) = engine.store.refresh_refusal(instance_id).await? {
            return Err(reauthorize(instance_id, Some(words)));
        }
        if engine.store.take_refresh_lease(instance_id, &rt.inner.holder, lease_ms).await? {
            // Another process may have committed between our read and the lease.
            let config = current(engine, def, instance_id).await?;
            let t = Tokens::of(&config).ok_or_else(|| reauthorize(instance_id, None))?;
            if newer(&t) {
                engine.store.release_refresh_lease(instance_id, &rt.inner.holder).await?;
                return Ok((t.access, false));
            }
            return refresh_in_task(engine, def, instance_id, config, t, in_process).await.map(|token| (token, true));
        }
        if tokio::time::Instant::now() > give_up {
            return Err(EngineError::new(StatusCode::SERVICE_UNAVAILABLE, "Another server is refreshing this instance's tokens; try again"));
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// The token call and the commit of its answer run in a task of their own, holding
/// the in-process lock: a hub call whose client hangs up is dropped by axum, and a
/// rotated pair dropped with it would lose the connection (the old refresh token is
/// already dead at the vendor).
async fn refresh_in_task(
    engine: &Engine,
    def: &ElementDefinition,
    instance_id: i64,
    config: BTreeMap<String, String>,
    t: Tokens,
    in_process: tokio::sync::OwnedMutexGuard<()>,
) -> Result<String, EngineError> {
    let def = engine.catalog.get(&def.key).cloned().ok_or_else(|| EngineError::internal(format!("no element {}", def.key)))?;
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        let _in_process = in_process;
        refresh_holding_lease(&engine, &def, instance_id, &config, t).await
    });
    task.await.map_err(EngineError::internal)?
}

async fn refresh_holding_lease(
    engine: &Engine,
    def: &ElementDefinition,
    instance_id: i64,
    config: &BTreeMap<String, String>,
    t: Tokens,
) -> Result<String, EngineError> {
    let rt = &engine.oauth;
    let holder = rt.inner.holder.clone();
    let o = oauth2(def)?;
    let renewal = Renewal::start(engine.store.clone(), instance_id, holder.clone(), rt.inner.lease);
    // The vendor kills the old refresh token when it answers; a node that could
    // not seal the new one would lose the connection, so it does not ask.
    if let Err(e) = engine.check_sealing() {
        renewal.finish().await;
        engine.store.release_refresh_lease(instance_id, &holder).await?;
        return Err(e);
    }
    crash_point("oauth-before-token-call");
    let form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", t.refresh.clone())];
    let answer = token_call(engine, def, config, form, o.refresh_auth, Some(instance_id), Some(&t.refresh)).await;
    // Stopped before the commit releases the lease, so it cannot take it back after.
    renewal.finish().await;
    match answer {
        Ok(pair) => {
            let values: Vec<(String, NewValue)> = pair
                .values()
                .into_iter()
                .map(|(k, v)| {
                    let v = if def.is_secret(&k) { NewValue::Secret(v) } else { NewValue::Plain(v) };
                    (k, v)
                })
                .collect();
            // The old refresh token is dead now: this commit is the connection.
            let mut attempt = 0;
            loop {
                match engine.store.commit_tokens(instance_id, &holder, &values, &VaultSealer(&engine.vault)).await {
                    Ok(()) => {
                        // This process's memory of the instance holds the old token.
                        engine.instances.forget_instance(instance_id);
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(instance_id, error = %e, attempt, "storing refreshed tokens failed; trying again");
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(instance_id, error = %e, "refreshed tokens could not be stored; the instance must be re-authorized");
                        return Err(e.into());
                    }
                }
            }
            crash_point("oauth-after-token-commit");
            tracing::info!(instance_id, expires_in = pair.expires_in, "refreshed the OAuth tokens");
            Ok(pair.access)
        }
        Err(TokenFailure::Refused { error, words }) if refused_for_good(&error) => {
            // Under the lease nobody else should have refreshed; if someone did
            // anyway (a lease that lapsed mid-call), theirs is the live token. A
            // vendor that does not rotate refresh tokens changes only the access token.
            let now = current(engine, def, instance_id).await?;
            if let Some(other) = Tokens::of(&now).filter(|n| n.refresh != t.refresh || n.access != t.access) {
                engine.store.release_refresh_lease(instance_id, &holder).await?;
                return Ok(other.access);
            }
            let words = words.unwrap_or(error);
            tracing::warn!(instance_id, "the vendor refused to refresh the tokens; the instance is now invalid");
            engine.store.refuse_refresh(instance_id, &holder, &words).await?;
            engine.instances.forget_instance(instance_id);
            engine.announce_health(instance_id, false, Some(&words)).await;
            Err(reauthorize(instance_id, Some(words)))
        }
        Err(failure) => {
            engine.store.release_refresh_lease(instance_id, &holder).await?;
            Err(match failure {
                TokenFailure::Refused { error, words } => {
                    let mut err = EngineError::new(
                        StatusCode::BAD_GATEWAY,
                        format!("The vendor refused to refresh the tokens ({})", if error.is_empty() { "no reason" } else { &error }),
                    );
                    err.provider_message = words;
                    err
                }
                TokenFailure::Failed(e) => e,
            })
        }
    }
}

/// Whether a refused refresh can never pass as things are (RFC 6749 5.2): the
/// refresh token is dead (`invalid_grant`), or the app's id or secret is wrong or
/// revoked (`invalid_client`, `unauthorized_client`). Other refusals may pass.
fn refused_for_good(error: &str) -> bool {
    matches!(error, "invalid_grant" | "invalid_client" | "unauthorized_client")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(issued_ms: i64, lifetime_s: i64) -> Tokens {
        Tokens { access: "a".into(), refresh: "r".into(), issued_ms: Some(issued_ms), lifetime_s: Some(lifetime_s) }
    }

    #[test]
    fn tokens_are_due_a_margin_before_expiry_but_not_before_half_their_life() {
        let rt = OAuthRuntime::new(Duration::from_secs(300), Duration::from_secs(30));
        let now = epoch_ms();
        assert!(!rt.due(&tokens(now, 86_400)));
        assert!(rt.due(&tokens(now - (86_400 - 299) * 1000, 86_400)), "inside the margin");
        assert!(!rt.due(&tokens(now - 20_000, 60)), "a 60 s token is refreshed after 30 s, not on every call");
        assert!(rt.due(&tokens(now - 31_000, 60)));
        assert!(rt.due(&tokens(now, 0)), "expired on arrival");
        let unknown = Tokens { access: "a".into(), refresh: "r".into(), issued_ms: None, lifetime_s: None };
        assert!(!rt.due(&unknown), "no lifetime known: the vendor's 401 decides");
    }

    #[test]
    fn one_lock_per_instance_while_in_use() {
        let rt = OAuthRuntime::default();
        let a = rt.lock_for(1);
        assert!(Arc::ptr_eq(&a, &rt.lock_for(1)));
        assert!(!Arc::ptr_eq(&a, &rt.lock_for(2)));
        drop(a);
        let _b = rt.lock_for(3);
        assert_eq!(rt.inner.locks.lock().unwrap().len(), 1, "unused locks are dropped");
    }

    #[test]
    fn only_dead_grants_and_refused_clients_are_final() {
        for final_ in ["invalid_grant", "invalid_client", "unauthorized_client"] {
            assert!(refused_for_good(final_), "{final_}");
        }
        for passing in ["invalid_request", "invalid_scope", "unsupported_grant_type", "temporarily_unavailable", ""] {
            assert!(!refused_for_good(passing), "{passing}");
        }
    }

    #[test]
    fn token_pairs_never_print_their_tokens() {
        let p = TokenPair { access: "SECRET-A".into(), refresh: "SECRET-R".into(), expires_in: 60 };
        let shown = format!("{p:?}");
        assert!(!shown.contains("SECRET") && shown.contains("60"), "{shown}");
    }
}
