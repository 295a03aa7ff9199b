//! Vendor throttle dialects over HTTP (issue 10 item 1, issue 16 item 8): the engine
//! reads each element's "slow down" statuses and headers into one wait, pauses the
//! instance for it, retries when the wait fits the request's budget and otherwise
//! answers 429 with `Retry-After`, never a 502. BigCommerce (429 and `X-Rate-Limit-*`;
//! legacy stores' 509 and `X-BC-ApiLimit-Remaining`, developer docs "API rate limits")
//! and Keap (429 and `x-keap-product-*`, providers.md) against their simulators.

use std::time::{Duration, Instant};

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::{Dispatcher, InstanceLimits, OutboundPolicy, RetryPolicy, VendorClient};
use switchyard_server::caller::hash_secret;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator, Faults, Quota, DEMO_API_TOKEN};
use switchyard_simulators::keap::{self, KeapSimulator, Limits, TimeUnit, Window, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PRIVATE_KEY};

const STORE: &str = "abc123";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

struct App {
    api: String,
    auth: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

/// The server with `catalog`, vendor waits of at most 5 s and a 20 s budget per request.
async fn app(catalog: Catalog) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (new_secret(), new_secret());
    store.create_organization("acme", &hash_secret(&org_secret), "a@acme.test", &hash_secret(&user_secret)).await.unwrap();
    let client = VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(10));
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_vendor_wait: Duration::from_secs(5),
        call_budget: Duration::from_secs(20),
    };
    let vault = switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate());
    let mut state = AppState::new(store, vault, client.clone(), catalog, vec![9u8; 32]);
    state.engine.vendors = Dispatcher::new(client, retry, InstanceLimits::new(4));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/elements/api-v2", listener.local_addr().unwrap());
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    App { api, auth: format!("User {user_secret}, Organization {org_secret}"), http, _dir: dir }
}

impl App {
    async fn call(&self, method: reqwest::Method, path: &str, auth: &str, body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
        let text = r.text().await.unwrap();
        Answer { status, retry_after, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn get(&self, auth: &str, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, auth, None).await
    }

    /// A BigCommerce instance on the legacy (Basic) store; its hub authorization.
    async fn store_instance(&self, sim_base: &str, name: &str) -> String {
        let body = json!({"element": {"key": "bigcommerce"}, "name": name, "configuration": {
            "username": "sandbox", "password": DEMO_API_TOKEN, "store.url": format!("{sim_base}/stores/{STORE}/api/v2")}});
        let created = self.call(reqwest::Method::POST, "/instances", &self.auth, Some(body)).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
        format!("{}, Element {}", self.auth, created.body["token"].as_str().unwrap())
    }
}

async fn bigcommerce_sim() -> (BigCommerceSimulator, String) {
    let sim = BigCommerceSimulator::demo();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(bigcommerce::serve(listener, sim.clone()));
    (sim, base)
}

/// The built-in catalog with BigCommerce's windows cut to 1 s (a copy of its file
/// with `replaces: bigcommerce`), so waiting out a window fits in a test.
fn short_windows() -> Catalog {
    let text = include_str!("../../../elements/bigcommerce.yaml")
        .replacen("windowSeconds: 30}", "windowSeconds: 1}", 1)
        .replacen("windowSeconds: 60}", "windowSeconds: 1}", 1)
        .replacen("  windowSeconds: 30\n", "  windowSeconds: 1\n", 1)
        .replacen("name: BigCommerce\n", "name: BigCommerce\nreplaces: bigcommerce\n", 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bigcommerce.yaml"), text).unwrap();
    let mut catalog = Catalog::builtin();
    catalog.load_dir(dir.path()).unwrap();
    assert_eq!(catalog.get("bigcommerce").unwrap().throttle().window_seconds, 1);
    catalog
}

fn bare(status: u16) -> Faults {
    Faults { error_rate: 1.0, error_status: Some(status), max_errors: Some(1), ..Faults::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_509_or_a_bare_429_once_is_waited_out_for_the_window_and_retried() {
    let (sim, base) = bigcommerce_sim().await;
    let app = app(short_windows()).await;
    let auth = app.store_instance(&base, "legacy").await;
    for status in [509, 429] {
        // Once, with no header naming a wait (today a 509 is a 502 without retry).
        sim.set_faults(STORE, bare(status));
        let before = sim.request_count(STORE);
        let started = Instant::now();
        let answer = app.get(&auth, "/hubs/ecommerce/orders?pageSize=2").await;
        assert_eq!(answer.status, StatusCode::OK, "{status}: {}", answer.body);
        assert_eq!(answer.body.as_array().unwrap().len(), 2);
        assert_eq!(sim.request_count(STORE) - before, 2, "{status}: one throttled call, one retry");
        assert!(started.elapsed() >= Duration::from_millis(950), "{status}: waited the 1 s window, not a short backoff: {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_store_out_of_quota_answers_429_with_retry_after_and_is_not_hammered() {
    let (sim, base) = bigcommerce_sim().await;
    let app = app(Catalog::builtin()).await;
    let first = app.store_instance(&base, "first").await;
    let second = app.store_instance(&base, "second").await;
    // The legacy API's hour, seen as one request left: the first instance spends it.
    sim.set_legacy_rate_limits(STORE, true);
    sim.set_quota(STORE, Some(Quota { requests: 1, window: Duration::from_secs(3600) }));
    assert_eq!(app.get(&first, "/hubs/ecommerce/orders/100").await.status, StatusCode::OK);

    // The second meets the vendor's 509 (X-BC-ApiLimit-Remaining: 0, no wait named):
    // the legacy limit's 60 s is past the 5 s the policy waits, so 429 at once.
    let before = sim.request_count(STORE);
    let started = Instant::now();
    let answer = app.get(&second, "/hubs/ecommerce/orders/100").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "never a 502 for throttling: {}", answer.body);
    assert_eq!(answer.body["message"], "The vendor answered 509: its rate limit is used up");
    assert!(answer.body["providerMessage"].as_str().unwrap().contains("requests-per-hour"), "{}", answer.body);
    assert!(answer.body["requestId"].is_string());
    assert_eq!(answer.retry_after, Some(60), "seconds until the pause ends, rounded up");
    assert_eq!(sim.request_count(STORE) - before, 1, "not retried into the refusal");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Concurrent callers of the paused instance wait on it instead of hammering: all
    // 429 with the time left, none reaching the store.
    let calls = (0..6).map(|_| app.get(&second, "/hubs/ecommerce/customers"));
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
        assert!(matches!(answer.retry_after, Some(58..=60)), "{:?}", answer.retry_after);
        assert!(answer.body["message"].as_str().unwrap().contains("rate limit"), "{}", answer.body);
    }
    // The first instance paused itself when its answer said 0 remaining (the legacy
    // limit's minute): the proxy waits on the same pause.
    let proxied = app.get(&first, "/proxy/orders").await;
    assert_eq!(proxied.status, StatusCode::TOO_MANY_REQUESTS, "{}", proxied.body);
    assert!(matches!(proxied.retry_after, Some(58..=60)), "{:?}", proxied.retry_after);
    assert_eq!(sim.request_count(STORE) - before, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_429_passed_through_after_the_retries_carries_retry_after() {
    let (sim, base) = bigcommerce_sim().await;
    let app = app(Catalog::builtin()).await;
    let auth = app.store_instance(&base, "token").await;
    // A bare 429 every time: the 30 s window is past the policy's 5 s.
    sim.set_faults(STORE, Faults { error_rate: 1.0, error_status: Some(429), ..Faults::default() });
    let answer = app.get(&auth, "/hubs/ecommerce/orders/100").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
    assert_eq!(answer.body["message"], "The vendor answered 429");
    assert_eq!(answer.retry_after, Some(30), "BigCommerce's documented window");
    // A legacy 509 through the proxy: the vendor's status, and when to come back.
    let (sim2, base2) = bigcommerce_sim().await;
    let other = app.store_instance(&base2, "other").await;
    sim2.set_faults(STORE, Faults { error_rate: 1.0, error_status: Some(509), ..Faults::default() });
    let proxied = app.get(&other, "/proxy/time").await;
    assert_eq!(proxied.status.as_u16(), 509);
    assert_eq!(proxied.retry_after, Some(30));
}

// ---------------------------------------------------------------- Keap

/// The Keap simulator with its endpoints as the Infusionsoft elements' defaults.
async fn keap_app() -> (App, KeapSimulator) {
    let sim = KeapSimulator::demo();
    sim.set_auto_approve(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keap = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keap::serve(listener, sim.clone()));
    let mut catalog = Catalog::builtin();
    assert!(catalog.set_default("infusionsoftcrm", "oauth.authorization.url", &format!("{keap}/app/oauth/authorize")));
    assert!(catalog.set_default("infusionsoftcrm", "oauth.token.url", &format!("{keap}/token")));
    assert!(catalog.set_default("infusionsoftcrm", "base.url", &format!("{keap}/crm")));
    (app(catalog).await, sim)
}

impl App {
    /// The OAuth dance for `infusionsoftcrm` (auto-approved); the hub authorization.
    async fn keap_instance(&self) -> String {
        let q = format!("apiKey={DEMO_CLIENT_ID}&apiSecret={DEMO_CLIENT_SECRET}&callbackUrl={CALLBACK}&state=s");
        let url = self.get(&self.auth, &format!("/elements/infusionsoftcrm/oauth/url?{q}")).await.body["oauthUrl"].as_str().unwrap().to_owned();
        let consent = self.http.get(url).send().await.unwrap();
        let location = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let body = json!({"element": {"key": "infusionsoftcrm"}, "name": "keap", "providerData": {"code": code}, "configuration": {
            "oauth.api.key": DEMO_CLIENT_ID, "oauth.api.secret": DEMO_CLIENT_SECRET, "oauth.callback.url": CALLBACK,
            "infusionsoft.private.key": DEMO_PRIVATE_KEY}});
        let created = self.call(reqwest::Method::POST, "/instances", &self.auth, Some(body)).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
        format!("{}, Element {}", self.auth, created.body["token"].as_str().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keap_quota_pauses_until_its_expiry_time_and_its_throttle_for_a_minute() {
    let (app, sim) = keap_app().await;
    let day = Window { limit: 2, interval: 1, unit: TimeUnit::Day };
    sim.set_limits(DEMO_CLIENT_ID, Limits { quota: Some(day), throttle: None });
    let auth = app.keap_instance().await; // the credential check spends one call
    // The second call spends the quota: its answer says 0 available until the
    // expiry-time (epoch milliseconds, a day on), and the instance pauses until then.
    assert_eq!(app.get(&auth, "/hubs/crm/ping").await.status, StatusCode::OK);
    let before = sim.rpc_count(DEMO_CLIENT_ID);
    let answer = app.get(&auth, "/hubs/crm/contacts?pageSize=1").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
    assert!(matches!(answer.retry_after, Some(86_300..=86_400)), "{:?}", answer.retry_after);
    assert_eq!(sim.rpc_count(DEMO_CLIENT_ID), before, "a spent quota is not called");

    // The per-minute throttle names no reset: Keap's 429 is answered with its minute.
    let (app, sim) = keap_app().await;
    let minute = Window { limit: 1, interval: 1, unit: TimeUnit::Minute };
    sim.set_limits(DEMO_CLIENT_ID, Limits { quota: None, throttle: Some(minute) });
    let auth = app.keap_instance().await;
    let before = sim.rpc_count(DEMO_CLIENT_ID);
    let answer = app.get(&auth, "/hubs/crm/ping").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
    assert_eq!(answer.body["message"], "The vendor answered 429");
    assert!(answer.body["providerMessage"].as_str().unwrap().contains("Rate limit quota violation"), "{}", answer.body);
    assert_eq!(answer.retry_after, Some(60));
    assert_eq!(sim.rpc_count(DEMO_CLIENT_ID) - before, 1, "refused once, not retried for a minute");
}
