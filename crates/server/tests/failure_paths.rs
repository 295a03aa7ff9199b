//! Failure paths over HTTP (issue 17): what a caller sees when the vendor, the token
//! endpoint, the database or the caller's own input goes wrong. The router runs in
//! this process; the BigCommerce and Keap simulators, and a programmable stand-in
//! vendor for answers no simulator gives (garbage, redirect loops, bodies over the
//! bound), each on their own 127.0.0.1 port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::{Dispatcher, InstanceLimits, OutboundPolicy, RetryPolicy, VendorClient};
use switchyard_server::caller::hash_secret;
use switchyard_engine::oauth::OAuthRuntime;
use switchyard_server::webhooks::SECRET_HEADER;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator, Faults, DEMO_API_TOKEN, DEMO_STORE_HASH};
use switchyard_simulators::keap::{self, KeapSimulator, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PRIVATE_KEY};

const ATTEMPTS: u32 = 4;
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const HASH: &str = DEMO_STORE_HASH;

// ---------------------------------------------------------------------------
// The stand-in vendor: in front of a simulator, it forwards every request there
// unless the test has it answer something else; it counts what it was asked.

/// One request as the stand-in vendor saw it.
struct Seen {
    path: String,
    body: Bytes,
}

impl Seen {
    /// The XML-RPC method called (`DataService.query`), if the body is a call.
    fn rpc_method(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.split("<methodName>").nth(1).and_then(|m| m.split('<').next()).unwrap_or("").to_owned()
    }
}

/// Some answer, or `None` to forward the request to the simulator.
type Answerer = Arc<dyn Fn(&Seen) -> Option<Response> + Send + Sync>;
/// Changes the body of a forwarded answer (the simulator's words, edited).
type Rewriter = Arc<dyn Fn(Bytes) -> Bytes + Send + Sync>;

#[derive(Clone)]
struct Stub {
    base: String,
    answer: Arc<Mutex<Answerer>>,
    rewrite: Arc<Mutex<Option<Rewriter>>>,
    /// Waited before every answer.
    delay: Arc<Mutex<Duration>>,
    hits: Arc<AtomicU64>,
}

impl Stub {
    /// A stand-in in front of `vendor` (`http://127.0.0.1:PORT`).
    async fn start(vendor: &str) -> Stub {
        let answer: Answerer = Arc::new(|_: &Seen| None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = Stub {
            base: format!("http://{}", listener.local_addr().unwrap()),
            answer: Arc::new(Mutex::new(answer)),
            rewrite: Arc::default(),
            delay: Arc::default(),
            hits: Arc::default(),
        };
        let (s, vendor) = (stub.clone(), vendor.to_owned());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (s, vendor, http) = (s.clone(), vendor.clone(), http.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                s.hits.fetch_add(1, Ordering::SeqCst);
                let delay = *s.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let answer = s.answer.lock().unwrap().clone();
                if let Some(canned) = answer(&Seen { path: parts.uri.path().to_owned(), body: body.clone() }) {
                    return canned;
                }
                let url = format!("{vendor}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
                let mut out = http.request(parts.method, url).body(body);
                for (name, value) in &parts.headers {
                    if name != header::HOST && name != header::CONTENT_LENGTH {
                        out = out.header(name, value);
                    }
                }
                let Ok(r) = out.send().await else { return StatusCode::BAD_GATEWAY.into_response() };
                let (status, headers) = (r.status(), r.headers().clone());
                let mut bytes = r.bytes().await.unwrap_or_default();
                if let Some(rewrite) = s.rewrite.lock().unwrap().clone() {
                    bytes = rewrite(bytes);
                }
                let mut answer = (status, bytes).into_response();
                for (name, value) in &headers {
                    if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                        answer.headers_mut().insert(name, value.clone());
                    }
                }
                answer
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        stub
    }

    /// What to answer instead of the simulator (`None`: forward).
    fn answer(&self, f: impl Fn(&Seen) -> Option<Response> + Send + Sync + 'static) {
        *self.answer.lock().unwrap() = Arc::new(f);
    }

    /// How to edit what the simulator answers before passing it on.
    fn rewrite(&self, f: impl Fn(Bytes) -> Bytes + Send + Sync + 'static) {
        *self.rewrite.lock().unwrap() = Some(Arc::new(f));
    }

    fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits (10 s at most) until the stand-in has been asked at least `n` times.
    async fn wait_for_hits(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.hits() < n {
            assert!(Instant::now() < deadline, "fewer than {n} requests");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn json_answer(status: StatusCode, body: &str) -> Response {
    (status, [("content-type", "application/json")], body.to_owned()).into_response()
}

/// Everything but the BigCommerce credential check (`GET /time`) answered by `rest`.
fn past_the_check(rest: impl Fn(&Seen) -> Response + Send + Sync + 'static) -> impl Fn(&Seen) -> Option<Response> + Send + Sync + 'static {
    move |seen: &Seen| (!seen.path.ends_with("/time")).then(|| rest(seen))
}

fn xml_answer(xml: &str) -> Response {
    (StatusCode::OK, [("content-type", "text/xml")], format!("<?xml version=\"1.0\"?>{xml}")).into_response()
}

fn rpc_value(value: &str) -> Response {
    xml_answer(&format!("<methodResponse><params><param><value>{value}</value></param></params></methodResponse>"))
}

fn rpc_fault(text: &str) -> Response {
    xml_answer(&format!(
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>2</int></value></member>\
         <member><name>faultString</name><value><string>{text}</string></value></member></struct></value></fault></methodResponse>"
    ))
}

// ---------------------------------------------------------------------------
// The platform.

struct Options {
    vendor_timeout: Duration,
    /// Where vendors are told to send webhooks; default: this server.
    public_url: Option<String>,
    lease_wait: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options { vendor_timeout: Duration::from_secs(10), public_url: None, lease_wait: None }
    }
}

struct App {
    api: String,
    /// `http://127.0.0.1:PORT` of the server (for `/readyz`).
    root: String,
    auth: String,
    http: reqwest::Client,
    store: switchyard_store::Store,
    cache: switchyard_engine::instance::InstanceCache,
    org: i64,
    bc: BigCommerceSimulator,
    bc_base: String,
    keap: KeapSimulator,
    keap_base: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body
    }

    /// An error in the Cloud Elements shape: (message, providerMessage).
    fn error(&self, status: StatusCode) -> (String, Option<String>) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.body["message"].is_string() && self.body["requestId"].is_string(), "Cloud Elements error body: {}", self.body);
        (self.body["message"].as_str().unwrap().to_owned(), self.body["providerMessage"].as_str().map(str::to_owned))
    }
}

async fn start() -> App {
    start_with(Options::default()).await
}

async fn start_with(options: Options) -> App {
    let bc = BigCommerceSimulator::demo();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bc_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(bigcommerce::serve(listener, bc.clone()));

    let keap = KeapSimulator::demo();
    keap.set_auto_approve(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keap_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keap::serve(listener, keap.clone()));
    let mut catalog = Catalog::builtin();
    for element in ["infusionsoftcrm", "infusionsoftmarketing"] {
        assert!(catalog.set_default(element, "oauth.authorization.url", &format!("{keap_base}/app/oauth/authorize")));
        assert!(catalog.set_default(element, "oauth.token.url", &format!("{keap_base}/token")));
        assert!(catalog.set_default(element, "base.url", &format!("{keap_base}/crm")));
    }

    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (new_secret(), new_secret());
    let (org, _) = store.create_organization("acme", &hash_secret(&org_secret), "a@acme.test", &hash_secret(&user_secret)).await.unwrap();
    let client = VendorClient::new(OutboundPolicy::allow_loopback(), options.vendor_timeout);
    let mut state = AppState::new(
        store.clone(),
        switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate()),
        client.clone(),
        catalog,
        vec![9u8; 32],
    );
    // Fast retries so the tests are quick; waits the vendor asks for are still honoured.
    let retry = RetryPolicy {
        max_attempts: ATTEMPTS,
        base_delay: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_vendor_wait: Duration::from_secs(5),
        call_budget: Duration::from_secs(20),
    };
    state.engine.vendors = Dispatcher::new(client, retry, InstanceLimits::new(4));
    let mut oauth = OAuthRuntime::new(Duration::from_secs(300), Duration::from_secs(2));
    if let Some(wait) = options.lease_wait {
        oauth = oauth.with_lease_wait(wait);
    }
    state.engine.oauth = oauth;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    state.engine.public_url = options.public_url.unwrap_or_else(|| root.clone());
    let cache = state.engine.instances.clone();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    App {
        api: format!("{root}/elements/api-v2"),
        root,
        auth: format!("User {user_secret}, Organization {org_secret}"),
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        store,
        cache,
        org: org.id,
        bc,
        bc_base,
        keap,
        keap_base,
        _dir: dir,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl App {
    async fn call(&self, method: Method, path: &str, auth: &str, body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, body }
    }

    async fn platform(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, &self.auth, body).await
    }

    /// The legacy (Basic) configuration of the demo store at `store_url`.
    fn basic(store_url: &str) -> Value {
        json!({"username": "sandbox", "password": DEMO_API_TOKEN, "store.url": store_url})
    }

    fn sim_store_url(&self) -> String {
        format!("{}/stores/{HASH}/api/v2", self.bc_base)
    }

    /// Token mode on the simulator's demo store, over `extra`.
    fn token_mode(&self, extra: Value) -> Value {
        let mut config = json!({
            "authentication.type": "custom",
            "oauth.api.key": "client-1",
            "oauth.user.token": DEMO_API_TOKEN,
            "store.url": format!("{}/stores/{HASH}/v2", self.bc_base),
        });
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config
    }

    fn webhook_events() -> Value {
        json!({"event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.notification.callback.url": CALLBACK, "event.objects": "orders"})
    }

    /// A BigCommerce instance with `config`; (id, hub authorization).
    async fn bigcommerce(&self, config: Value) -> (i64, String) {
        let body = json!({"element": {"key": "bigcommerce"}, "name": "shop", "configuration": config});
        let created = self.platform(Method::POST, "/instances", Some(body)).await.ok();
        (created["id"].as_i64().unwrap(), format!("{}, Element {}", self.auth, created["token"].as_str().unwrap()))
    }

    /// A code from the Keap simulator's (auto-approved) authorize page.
    async fn keap_code(&self) -> String {
        let q = format!("apiKey={DEMO_CLIENT_ID}&callbackUrl={}&state=s", urlencode(CALLBACK));
        let answer = self.platform(Method::GET, &format!("/elements/infusionsoftcrm/oauth/url?{q}"), None).await.ok();
        let r = self.http.get(answer["oauthUrl"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    }

    /// An Infusionsoft CRM instance (the OAuth dance against the Keap simulator)
    /// with `extra` configuration; (id, hub authorization).
    async fn keap_instance(&self, extra: Value) -> (i64, String) {
        let mut config = json!({"oauth.api.key": DEMO_CLIENT_ID, "oauth.api.secret": DEMO_CLIENT_SECRET,
            "oauth.callback.url": CALLBACK, "infusionsoft.private.key": DEMO_PRIVATE_KEY});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let body = json!({"element": {"key": "infusionsoftcrm"}, "name": "keap", "configuration": config,
            "providerData": {"code": self.keap_code().await}});
        let created = self.platform(Method::POST, "/instances", Some(body)).await.ok();
        (created["id"].as_i64().unwrap(), format!("{}, Element {}", self.auth, created["token"].as_str().unwrap()))
    }

    async fn instance_count(&self) -> usize {
        self.platform(Method::GET, "/instances", None).await.ok().as_array().unwrap().len()
    }

    /// The instance's call log once it holds at least `n` entries (written in the background).
    async fn logs(&self, id: i64, n: usize) -> Vec<Value> {
        self.log_until(id, |log| log.len() >= n).await
    }

    /// The instance's call log, newest first, once `done` says so.
    async fn log_until(&self, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.platform(Method::GET, &format!("/instances/{id}/logs?pageSize=500"), None).await.ok();
            let log = log.as_array().unwrap().clone();
            if done(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "the log never got there: {log:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The hooks the simulated store has, as the vendor lists them.
    async fn vendor_hooks(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/stores/{HASH}/v3/hooks", self.bc_base))
            .header("X-Auth-Token", DEMO_API_TOKEN)
            .header("X-Auth-Client", "client-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["data"].as_array().unwrap().clone()
    }
}

fn always(status: u16) -> Faults {
    Faults { error_rate: 1.0, error_status: Some(status), ..Faults::default() }
}

// ---------------------------------------------------------------------------
// POST /elements/{keyOrId}/instances

#[tokio::test(flavor = "multi_thread")]
async fn the_element_route_creates_by_key_or_id_and_refuses_what_posts_to_instances_refuses() {
    let app = start().await;
    let config = App::basic(&app.sim_store_url());

    // By key and by id: the path names the element, the body need not.
    for key_or_id in ["bigcommerce", "274"] {
        let body = json!({"name": format!("by {key_or_id}"), "configuration": config.clone()});
        let created = app.platform(Method::POST, &format!("/elements/{key_or_id}/instances"), Some(body)).await.ok();
        assert_eq!(created["element"]["key"], "bigcommerce");
        assert_eq!(created["configuration"]["password"], "********");
        let auth = format!("{}, Element {}", app.auth, created["token"].as_str().unwrap());
        let orders = app.call(Method::GET, "/hubs/ecommerce/orders?pageSize=2", &auth, None).await.ok();
        assert_eq!(orders.as_array().unwrap().len(), 2);
    }
    // A body that names the same element (by key or id) is fine.
    let body = json!({"element": {"id": 274}, "name": "same", "configuration": config.clone()});
    app.platform(Method::POST, "/elements/bigcommerce/instances", Some(body)).await.ok();
    assert_eq!(app.instance_count().await, 3);

    let seen = app.bc.request_count(HASH);
    let refusals = [
        ("/elements/nope/instances", json!({"name": "x", "configuration": config.clone()}), StatusCode::NOT_FOUND, "nope"),
        ("/elements/9999/instances", json!({"name": "x", "configuration": config.clone()}), StatusCode::NOT_FOUND, "9999"),
        ("/elements/bigcommerce/instances", json!({"configuration": config.clone()}), StatusCode::BAD_REQUEST, "name"),
        ("/elements/bigcommerce/instances", json!({"name": "x", "configuration": {"store.url": app.sim_store_url()}}), StatusCode::BAD_REQUEST, "username"),
        ("/elements/bigcommerce/instances", json!({"name": "x", "configuration": config.clone(), "bogus": 1}), StatusCode::BAD_REQUEST, "bogus"),
        // The body may not name another element than the path.
        ("/elements/bigcommerce/instances", json!({"element": {"key": "infusionsoftcrm"}, "name": "x", "configuration": config.clone()}), StatusCode::BAD_REQUEST, "infusionsoftcrm"),
        ("/elements/274/instances", json!({"element": {"id": 191}, "name": "x", "configuration": config.clone()}), StatusCode::BAD_REQUEST, "191"),
        // OAuth elements need their code here too.
        ("/elements/infusionsoftcrm/instances", json!({"name": "x", "configuration": {"oauth.api.key": "a"}}), StatusCode::BAD_REQUEST, "oauth.api.secret"),
    ];
    for (path, body, status, word) in refusals {
        let (m, _) = app.platform(Method::POST, path, Some(body.clone())).await.error(status);
        assert!(m.contains(word), "{path} {body}: {m}");
    }
    assert_eq!(app.bc.request_count(HASH), seen, "no refused creation reached the vendor");

    // Not JSON, and no caller: refused before anything else.
    let r = app.http.post(format!("{}/elements/bigcommerce/instances", app.api)).header("Authorization", &app.auth)
        .header("Content-Type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.http.post(format!("{}/elements/bigcommerce/instances", app.api)).json(&json!({"name": "x", "configuration": config})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Credentials the vendor refuses: 400 with its words, nothing stored, no secret echoed.
    let mut wrong = App::basic(&app.sim_store_url());
    wrong["password"] = json!("not-the-token-5ecret");
    let a = app.platform(Method::POST, "/elements/bigcommerce/instances", Some(json!({"name": "x", "configuration": wrong}))).await;
    let (_, words) = a.error(StatusCode::BAD_REQUEST);
    assert!(words.is_some(), "{}", a.body);
    assert!(!a.body.to_string().contains("not-the-token-5ecret"));
    assert_eq!(app.instance_count().await, 3, "only the good ones were stored");
}

// ---------------------------------------------------------------------------
// A vendor that times out, answers too much, or redirects for ever.

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_timeout_an_oversized_body_and_a_redirect_loop_are_gateway_errors_logged_by_outcome() {
    let app = start_with(Options { vendor_timeout: Duration::from_millis(700), ..Options::default() }).await;
    let stub = &Stub::start(&app.bc_base).await;
    let (id, auth) = app.bigcommerce(App::basic(&format!("{}/stores/{HASH}/api/v2", stub.base))).await;

    // Slower than the client's timeout: 504, not retried (it used the whole allowance).
    stub.set_delay(Duration::from_secs(3));
    let before = stub.hits();
    let started = Instant::now();
    let (m, _) = app.call(Method::GET, "/hubs/ecommerce/orders", &auth, None).await.error(StatusCode::GATEWAY_TIMEOUT);
    assert!(m.contains("in time"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut at the timeout: {:?}", started.elapsed());
    assert_eq!(stub.hits() - before, 1, "a timeout is not retried");
    stub.set_delay(Duration::ZERO);

    // More than 16 MiB, announced by Content-Length or streamed without one: 502.
    const OVER: usize = 16 * 1024 * 1024 + 1;
    stub.answer(past_the_check(|_| json_answer(StatusCode::OK, &" ".repeat(OVER))));
    let (m, _) = app.call(Method::GET, "/hubs/ecommerce/orders", &auth, None).await.error(StatusCode::BAD_GATEWAY);
    assert!(m.contains("larger than 16777216 bytes"), "{m}");
    stub.answer(past_the_check(|_| {
        let chunks = (0..17).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024]));
        (StatusCode::OK, Body::from_stream(futures::stream::iter(chunks))).into_response()
    }));
    let before = stub.hits();
    let (m, _) = app.call(Method::GET, "/hubs/ecommerce/customers", &auth, None).await.error(StatusCode::BAD_GATEWAY);
    assert!(m.contains("larger than 16777216 bytes"), "{m}");
    assert_eq!(stub.hits() - before, 1, "a body too large is not retried");

    // A redirect to itself: followed a few times, then a 502 (not a hang until the timeout).
    stub.answer(past_the_check(|seen| {
        (StatusCode::FOUND, [("location", seen.path.clone())], "").into_response()
    }));
    let (m, words) = app.call(Method::GET, "/hubs/ecommerce/products", &auth, None).await.error(StatusCode::BAD_GATEWAY);
    let words = words.unwrap_or_default();
    assert!(words.contains("redirect"), "{m}: {words}");
    assert!(!words.contains(&stub.base) && !words.contains("127.0.0.1"), "no URL in the words: {words}");

    // The call log: one row each, with the outcome instead of a status.
    let log = app.logs(id, 4).await;
    let rows: Vec<(&str, &str, Option<i64>)> =
        log.iter().take(4).map(|e| (e["path"].as_str().unwrap(), e["outcome"].as_str().unwrap(), e["status"].as_i64())).collect();
    assert_eq!(
        rows,
        [("/products", "protocol", None), ("/customers", "too-large", None), ("/orders", "too-large", None), ("/orders", "timeout", None)],
        "{log:?}"
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(DEMO_API_TOKEN));
}

// ---------------------------------------------------------------------------
// OAuth: the token endpoint failing, a token gone, a lease never obtained.

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_answering_5xx_during_a_refresh_is_a_502_that_leaves_the_instance_valid() {
    let app = start().await;
    let stub = Stub::start(&app.keap_base).await;
    let (id, auth) = app.keap_instance(json!({"oauth.token.url": format!("{}/token", stub.base)})).await;
    // The token endpoint fails with a 503 (a gateway's answer, in OAuth's error shape).
    stub.answer(|_| Some(json_answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"temporarily_unavailable","error_description":"Token service down"}"#)));

    // The vendor expires the access token: the refresh that follows meets the 503.
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    let before = stub.hits();
    let a = app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await;
    let (m, words) = a.error(StatusCode::BAD_GATEWAY);
    assert!(m.contains("token endpoint") && m.contains("503"), "{m}");
    assert_eq!(words.as_deref(), Some("Token service down"));
    assert_eq!(stub.hits() - before, 1, "the token endpoint is called once, never retried");
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok()["valid"], true, "a failure that may pass");
    assert!(!a.body.to_string().contains(DEMO_CLIENT_SECRET));

    // Logged like any vendor call: POST, the token URL's path, the status.
    let log = app.log_until(id, |log| log.iter().any(|e| e["path"] == "/token")).await;
    let token_row = log.iter().find(|e| e["path"] == "/token").unwrap();
    assert_eq!((token_row["method"].as_str(), token_row["status"].as_i64()), (Some("POST"), Some(503)));

    // The endpoint is back: the next call refreshes and succeeds.
    stub.answer(|_| None);
    assert_eq!(app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.ok().as_array().unwrap().len(), 1);
    assert_eq!(app.keap.token_calls().refresh_token, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_refused_for_a_reason_that_may_pass_is_a_502_that_leaves_the_instance_valid() {
    let app = start().await;
    let stub = Stub::start(&app.keap_base).await;
    let (id, auth) = app.keap_instance(json!({"oauth.token.url": format!("{}/token", stub.base)})).await;
    // RFC 6749 5.2: `invalid_request` says the request was malformed, not that the grant is dead.
    stub.answer(|_| Some(json_answer(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request","error_description":"Try again"}"#)));
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    let before = stub.hits();
    let (m, words) = app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.error(StatusCode::BAD_GATEWAY);
    assert_eq!(stub.hits() - before, 1, "a refused refresh is not retried");
    assert_eq!(m, "The vendor refused to refresh the tokens (invalid_request)");
    assert_eq!(words.as_deref(), Some("Try again"));
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok()["valid"], true);
    stub.answer(|_| None);
    assert_eq!(app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.ok().as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_answer_over_64_kib_is_a_502_that_names_the_bound() {
    let app = start().await;
    let stub = Stub::start(&app.keap_base).await;
    let (id, auth) = app.keap_instance(json!({"oauth.token.url": format!("{}/token", stub.base)})).await;
    // A well-formed token answer padded to one byte over 64 KiB (65,536 bytes, the
    // engine's bound on a token endpoint's answer).
    let head = r#"{"access_token":"a","refresh_token":"r","expires_in":3600,"pad":""#;
    let padded = format!("{head}{}\"}}", "x".repeat(65_537 - head.len() - 2));
    assert_eq!(padded.len(), 65_537);
    stub.answer(move |_| Some(json_answer(StatusCode::OK, &padded)));

    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    let a = app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await;
    let (m, _) = a.error(StatusCode::BAD_GATEWAY);
    assert!(m.contains("larger than 65536 bytes"), "{m}");
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok()["valid"], true, "a failure that may pass");

    // The endpoint answers normally again: the refresh goes through.
    stub.answer(|_| None);
    assert_eq!(app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.ok().as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_instances_refresh_leaves_one_instances_refresh_single() {
    let app = Arc::new(start().await);
    let stub = Stub::start(&app.keap_base).await;
    let token_url = json!({"oauth.token.url": format!("{}/token", stub.base)});
    let ((_, a), (_, b)) = (app.keap_instance(token_url.clone()).await, app.keap_instance(token_url).await);
    // Token calls take 3 s, so each refresh is still running when the next call comes
    // (which needs one vendor round trip to meet its 401). Were the machine slower than
    // that, the second call for A would find A's new token: the test would pass
    // without proving anything, never fail wrongly.
    stub.set_delay(Duration::from_secs(3));
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 2);
    let hits = stub.hits();
    let call = |auth: String| {
        let app = app.clone();
        tokio::spawn(async move { app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await })
    };
    // A's refresh is under way; then B's starts (this process's refresh locks are looked
    // up again); then a second call for A must wait for A's refresh, not start another.
    let first_a = call(a.clone());
    stub.wait_for_hits(hits + 1).await;
    let first_b = call(b);
    stub.wait_for_hits(hits + 2).await;
    let second_a = call(a);
    for answer in [first_a, first_b, second_a] {
        assert_eq!(answer.await.unwrap().ok().as_array().unwrap().len(), 1);
    }
    assert_eq!(stub.hits() - hits, 2, "one token call per instance");
    assert_eq!(app.keap.token_calls().refresh_token, 2);
}

/// A token endpoint answer without its `refresh_token`.
fn without_refresh_token(body: Bytes) -> Bytes {
    let mut answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(answer.as_object_mut().unwrap().remove("refresh_token").is_some(), "{answer}");
    answer.to_string().into()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_one_in_use() {
    // RFC 6749 section 6: the authorization server *may* issue a new refresh token.
    let app = start().await;
    let stub = Stub::start(&app.keap_base).await;
    let (_, auth) = app.keap_instance(json!({"oauth.token.url": format!("{}/token", stub.base)})).await;
    stub.rewrite(without_refresh_token);
    let forms = Arc::new(Mutex::new(Vec::new()));
    let seen = forms.clone();
    // The first refresh goes to the vendor; the second is answered 503 here: only its form
    // matters (the simulator, which rotates as Keap does, killed that token at the first).
    stub.answer(move |s| {
        let mut forms = seen.lock().unwrap();
        forms.push(String::from_utf8_lossy(&s.body).into_owned());
        (forms.len() > 1).then(|| json_answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"temporarily_unavailable"}"#))
    });

    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    assert_eq!(app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.ok().as_array().unwrap().len(), 1);
    assert_eq!(app.keap.token_calls().refresh_token, 1);
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    app.call(Method::GET, "/hubs/crm/contacts?pageSize=1", &auth, None).await.error(StatusCode::BAD_GATEWAY);

    let forms = forms.lock().unwrap();
    let refresh_token = |form: &str| {
        url::form_urlencoded::parse(form.as_bytes()).find(|(k, _)| k == "refresh_token").map(|(_, v)| v.into_owned()).unwrap()
    };
    assert_eq!(forms.len(), 2);
    assert!(!refresh_token(&forms[0]).is_empty());
    assert_eq!(refresh_token(&forms[1]), refresh_token(&forms[0]), "the refresh token in use is sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_exchange_answered_without_a_refresh_token_creates_nothing() {
    let app = start().await;
    let stub = Stub::start(&app.keap_base).await;
    stub.rewrite(without_refresh_token);
    let body = json!({"element": {"key": "infusionsoftcrm"}, "name": "keap",
        "configuration": {"oauth.api.key": DEMO_CLIENT_ID, "oauth.api.secret": DEMO_CLIENT_SECRET, "oauth.callback.url": CALLBACK,
            "infusionsoft.private.key": DEMO_PRIVATE_KEY, "oauth.token.url": format!("{}/token", stub.base)},
        "providerData": {"code": app.keap_code().await}});
    let (m, _) = app.platform(Method::POST, "/instances", Some(body)).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("without an access and a refresh token"), "{m}");
    assert_eq!(app.instance_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_call_longer_than_the_lease_keeps_the_lease_renewed() {
    // This app's lease lasts 2 s; the token endpoint takes 5 s to answer.
    let app = Arc::new(start().await);
    let stub = Stub::start(&app.keap_base).await;
    let (id, auth) = app.keap_instance(json!({"oauth.token.url": format!("{}/token", stub.base)})).await;
    stub.set_delay(Duration::from_secs(5));
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);
    let hits = stub.hits();
    let call = {
        let app = app.clone();
        tokio::spawn(async move { app.call(Method::GET, "/hubs/crm/ping", &auth, None).await })
    };
    stub.wait_for_hits(hits + 1).await;
    // For 3.5 s (past a lease renewed once, 1.5 s before the answer), another server never
    // gets the lease.
    let until = Instant::now() + Duration::from_millis(3_500);
    while Instant::now() < until {
        assert!(!app.store.take_refresh_lease(id, "another-server", 2_000).await.unwrap(), "the lease lapsed mid-call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call.await.unwrap().ok()["result"], "switchyard");
    assert_eq!(app.keap.token_calls().refresh_token, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_without_a_stored_access_token_is_401_until_a_new_code() {
    let app = start().await;
    let (id, auth) = app.keap_instance(json!({})).await;
    // The access token row is gone (a hand edit, a restore of part of the database).
    let keep: Vec<(String, switchyard_store::NewValue)> = app
        .store
        .configuration(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.key != "oauth.user.token")
        .map(|c| (c.key, switchyard_store::NewValue::Keep))
        .collect();
    struct NoSeal;
    impl switchyard_store::Sealer for NoSeal {
        fn seal(&self, _: i64, _: &str, _: &str) -> (Vec<u8>, u32) {
            unreachable!("nothing is written")
        }
    }
    let update = switchyard_store::InstanceUpdate::default();
    assert!(app.store.update_instance(app.org, id, &update, &keep, true, &NoSeal).await.unwrap());
    app.cache.forget_all();

    let calls = (app.keap.rpc_count(DEMO_CLIENT_ID), app.keap.token_calls().total);
    for path in ["/hubs/crm/ping", "/hubs/crm/contacts/2"] {
        let (m, _) = app.call(Method::GET, path, &auth, None).await.error(StatusCode::UNAUTHORIZED);
        assert!(m.contains(&format!("Instance {id} has no access token")) && m.contains("providerData.code"), "{m}");
    }
    assert_eq!((app.keap.rpc_count(DEMO_CLIENT_ID), app.keap.token_calls().total), calls, "neither the vendor nor the token endpoint was called");

    // A new code brings it back.
    let code = app.keap_code().await;
    app.platform(Method::PATCH, &format!("/instances/{id}"), Some(json!({"providerData": {"code": code}}))).await.ok();
    assert_eq!(app.call(Method::GET, "/hubs/crm/ping", &auth, None).await.ok()["result"], "switchyard");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_lease_another_server_never_gives_up_is_a_503_without_a_token_call() {
    let app = start_with(Options { lease_wait: Some(Duration::from_millis(800)), ..Options::default() }).await;
    let (id, auth) = app.keap_instance(json!({})).await;
    // Another server holds the refresh lease and keeps it (its token call hangs).
    assert!(app.store.take_refresh_lease(id, "another-server", 3_600_000).await.unwrap());
    assert_eq!(app.keap.expire_access_tokens(DEMO_CLIENT_ID), 1);

    let started = Instant::now();
    let (m, _) = app.call(Method::GET, "/hubs/crm/ping", &auth, None).await.error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(m.contains("refreshing") && m.contains("try again"), "{m}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(750) && waited < Duration::from_secs(5), "waited for the lease, then gave up: {waited:?}");
    assert_eq!(app.keap.token_calls().refresh_token, 0, "no token call without the lease");
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok()["valid"], true);

    // Once the other server lets go, the next call refreshes.
    app.store.release_refresh_lease(id, "another-server").await.unwrap();
    assert_eq!(app.call(Method::GET, "/hubs/crm/ping", &auth, None).await.ok()["result"], "switchyard");
    assert_eq!(app.keap.token_calls().refresh_token, 1);

    // The refresh is over, and so is its lease's renewal: for half a lease (past the
    // first renewal, due a third of a lease in), another server can take it at any time.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(app.store.take_refresh_lease(id, "another-server", 2_000).await.unwrap(), "the lease is free after the refresh");
        app.store.release_refresh_lease(id, "another-server").await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// The vendor down while an instance is created or updated.

#[tokio::test(flavor = "multi_thread")]
async fn the_vendor_down_at_creation_or_update_is_refused_and_nothing_is_written() {
    let app = start().await;

    // Creation: every vendor failure is a 400 with the vendor's words (docs/choices.md).
    app.bc.set_faults(HASH, always(503));
    let (m, words) = app.platform(Method::POST, "/instances", Some(json!({"element": {"key": "bigcommerce"}, "name": "x",
        "configuration": App::basic(&app.sim_store_url())}))).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("could not be checked"), "{m}");
    assert!(words.unwrap_or_default().contains("503"), "{m}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (m, words) = app.platform(Method::POST, "/instances", Some(json!({"element": {"key": "bigcommerce"}, "name": "x",
        "configuration": App::basic(&format!("http://{closed}/api/v2"))}))).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("could not be reached"), "{m}");
    assert!(words.is_some());
    assert_eq!(app.instance_count().await, 0);

    // Update: a new password tried while the vendor is down is not stored.
    app.bc.set_faults(HASH, Faults::default());
    let (id, auth) = app.bigcommerce(App::basic(&app.sim_store_url())).await;
    app.bc.set_faults(HASH, always(503));
    let patch = json!({"name": "renamed", "configuration": {"password": "a-new-token"}});
    let (m, _) = app.platform(Method::PATCH, &format!("/instances/{id}"), Some(patch)).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("could not be checked"), "{m}");
    app.bc.set_faults(HASH, Faults::default());
    let instance = app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok();
    assert_eq!((instance["name"].as_str(), instance["valid"].as_bool()), (Some("shop"), Some(true)), "{instance}");
    assert_eq!(app.call(Method::GET, "/hubs/ecommerce/orders?pageSize=1", &auth, None).await.status, StatusCode::OK, "the old password is still the one used");

    // Turning vendor webhooks on while the vendor fails: its 5xx is a 502, nothing stored.
    let (id, _) = app.bigcommerce(app.token_mode(json!({}))).await;
    app.bc.set_faults(HASH, always(503));
    let before = app.bc.request_count(HASH);
    let on = json!({"configuration": App::webhook_events()});
    let (m, words) = app.platform(Method::PATCH, &format!("/instances/{id}"), Some(on)).await.error(StatusCode::BAD_GATEWAY);
    assert!(m.contains("Registering the vendor webhook for orders failed"), "{m}");
    assert!(words.unwrap_or_default().contains("503"));
    assert_eq!(app.bc.request_count(HASH) - before, 1, "a POST is not retried on 503");
    app.bc.set_faults(HASH, Faults::default());
    let instance = app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok();
    assert_eq!(instance["eventsEnabled"], false, "{instance}");
    assert!(instance["configuration"].get("event.notification.enabled").is_none(), "{instance}");
    assert!(app.vendor_hooks().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_registration_the_vendor_refuses_is_a_400_with_its_words_and_nothing_stored() {
    // BigCommerce takes destinations on port 443 only (specs/bigcommerce/webhooks.v3.yml,
    // "Create a Webhook"): a public URL on another port is refused with a 422.
    let app = start_with(Options { public_url: Some("https://switchyard.example:8443".into()), ..Options::default() }).await;
    let config = app.token_mode(App::webhook_events());
    let a = app.platform(Method::POST, "/instances", Some(json!({"element": {"key": "bigcommerce"}, "name": "x", "configuration": config}))).await;
    let (m, words) = a.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("Registering the vendor webhook for orders failed"), "{m}");
    assert!(words.unwrap_or_default().contains("443"), "{}", a.body);
    assert!(!a.body.to_string().contains(DEMO_API_TOKEN));
    assert_eq!(app.instance_count().await, 0);
    assert!(app.vendor_hooks().await.is_empty());

    // The same on an update: the instance stays as it was.
    let (id, _) = app.bigcommerce(app.token_mode(json!({}))).await;
    let (_, words) = app.platform(Method::PATCH, &format!("/instances/{id}"), Some(json!({"configuration": App::webhook_events()})))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(words.unwrap_or_default().contains("443"));
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok()["eventsEnabled"], false);
    assert!(app.vendor_hooks().await.is_empty());
}

// ---------------------------------------------------------------------------
// The webhook intake: calls too large, without an id, with a scope nobody maps.

#[tokio::test(flavor = "multi_thread")]
async fn the_intake_refuses_oversized_and_idless_calls_and_acknowledges_unknown_scopes_storing_nothing() {
    let app = start().await;
    let (id, _) = app.bigcommerce(app.token_mode(App::webhook_events())).await;
    let hooks = app.vendor_hooks().await;
    assert_eq!(hooks.len(), 1);
    let destination = hooks[0]["destination"].as_str().unwrap().to_owned();
    let secret = hooks[0]["headers"][SECRET_HEADER].as_str().unwrap().to_owned();
    let post = |body: Vec<u8>| {
        let r = app.http.post(&destination).header(SECRET_HEADER, &secret).header("Content-Type", "application/json").body(body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // BigCommerce's calls: {"scope", "store_id", "data": {"type", "id"}, "hash", "created_at", "producer"}
    // (specs/bigcommerce/webhooks.v3.yml, "Callback payload").
    let call = |scope: &str, data: Value| json!({"scope": scope, "store_id": "1", "producer": format!("stores/{HASH}"), "created_at": 1_700_000_000, "hash": "h", "data": data});

    // Larger than the intake takes (BigCommerce's calls are a few hundred bytes).
    let big = call("store/order/created", json!({"type": "order", "id": 100, "pad": "x".repeat(300 * 1024)}));
    let (status, body) = post(big.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["message"].as_str().unwrap().contains("262144") && body["requestId"].is_string(), "{body}");

    // No object id (absent, null, empty, an object): 400.
    for data in [json!({"type": "order"}), json!({"type": "order", "id": null}), json!({"type": "order", "id": ""}), json!({"type": "order", "id": {"n": 1}})] {
        let (status, body) = post(call("store/order/created", data.clone()).to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{data}: {body}");
        assert!(body["message"].as_str().unwrap().contains("/data/id"), "{body}");
    }
    // No scope: 400.
    let (status, _) = post(json!({"data": {"type": "order", "id": 1}, "scope": 7}).to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Scopes the element does not turn into events: acknowledged (so the vendor
    // stops), not stored.
    for scope in ["store/cart/created", "store/order/refundIssued", "nonsense"] {
        let (status, body) = post(call(scope, json!({"type": "x", "id": 5})).to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{scope}: {body}");
        assert_eq!(body, json!({"ignored": scope}));
    }
    let log = app.platform(Method::GET, &format!("/instances/{id}/events"), None).await.ok();
    assert_eq!(log, json!([]), "nothing stored");

    // The same hook still takes a proper call.
    let (status, body) = post(call("store/order/created", json!({"type": "order", "id": 100})).to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["eventId"].is_string());
}

// ---------------------------------------------------------------------------
// Wrongly shaped vendor answers.

#[tokio::test(flavor = "multi_thread")]
async fn json_that_is_not_json_or_not_a_list_of_records_is_a_502() {
    let app = start().await;
    let stub = &Stub::start(&app.bc_base).await;
    let (_, auth) = app.bigcommerce(App::basic(&format!("{}/stores/{HASH}/api/v2", stub.base))).await;

    for (body, word) in [
        ("<html>Service temporarily moved</html>", "malformed JSON"),
        (r#"[{"id": 1}, "#, "malformed JSON"),
        (r#"{"id": 1, "status": "Pending"}"#, "no array"),
        ("null", "no array"),
        ("", "no array"),
        (r#"[1, "two", null]"#, "not records"),
        (r#"[{"id": 1}, [2]]"#, "not records"),
    ] {
        let body = body.to_owned();
        stub.answer(past_the_check(move |_| json_answer(StatusCode::OK, &body.clone())));
        // The vendor filters exactly (one vendor call), or the engine does (a scan).
        for query in ["pageSize=5", "pageSize=5&where=status_id%3D1", "pageSize=5&where=staff_notes%20LIKE%20%27%25x%25%27"] {
            let (m, _) = app.call(Method::GET, &format!("/hubs/ecommerce/orders?{query}"), &auth, None).await.error(StatusCode::BAD_GATEWAY);
            assert!(m.contains(word), "{query}: {m}");
        }
    }

    // One record, a count, a write: garbage is a 502 there too.
    stub.answer(past_the_check(|_| json_answer(StatusCode::OK, "not json")));
    for (method, path, body) in [
        (Method::GET, "/hubs/ecommerce/orders/1", None),
        (Method::GET, "/hubs/ecommerce/orders/1?fields=id", None),
        (Method::GET, "/hubs/ecommerce/orders/count", None),
        (Method::POST, "/hubs/ecommerce/products/brands", Some(json!({"name": "x"}))),
        (Method::PATCH, "/hubs/ecommerce/products/brands/1", Some(json!({"name": "x"}))),
    ] {
        let (m, _) = app.call(method.clone(), path, &auth, body).await.error(StatusCode::BAD_GATEWAY);
        assert!(m.contains("malformed JSON"), "{method} {path}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xml_rpc_that_is_not_xml_a_fault_or_the_wrong_type_maps_to_a_status() {
    let app = start().await;
    let stub = &Stub::start(&app.keap_base).await;
    let (_, auth) = app.keap_instance(json!({"base.url": format!("{}/crm", stub.base)})).await;

    // Keap's answers, then others no Keap gives; each for one method of the call.
    type Canned = Box<dyn Fn() -> Response + Send + Sync>;
    let cases: Vec<(&str, Canned, &str, StatusCode, &str)> = vec![
        // Not XML at all (a proxy's error page).
        ("crm/contacts", Box::new(|| (StatusCode::OK, "<html><body>Bad gateway</body></html>").into_response()), "GET", StatusCode::BAD_GATEWAY, "malformed XML-RPC"),
        ("crm/contacts", Box::new(|| (StatusCode::OK, "").into_response()), "GET", StatusCode::BAD_GATEWAY, "malformed XML-RPC"),
        ("crm/contacts/2", Box::new(|| xml_answer("<methodResponse><params><param><value><int>1</int>")), "GET", StatusCode::BAD_GATEWAY, "malformed XML-RPC"),
        // Faults, by kind (the element's xmlRpc.faults), the fault string kept.
        ("crm/contacts/2", Box::new(|| rpc_fault("[RecordNotFound]Record not found: Contact 2")), "GET", StatusCode::NOT_FOUND, "RecordNotFound"),
        ("crm/contacts/2", Box::new(|| rpc_fault("[DatabaseError]Something broke")), "GET", StatusCode::BAD_GATEWAY, "DatabaseError"),
        ("crm/contacts", Box::new(|| rpc_fault("[InvalidKey]Invalid key")), "GET", StatusCode::UNAUTHORIZED, "InvalidKey"),
        // The wrong type: a struct where a list belongs, a list of non-records, a
        // string where a count or a new id belongs.
        ("crm/contacts", Box::new(|| rpc_value("<struct><member><name>Id</name><value><int>1</int></value></member></struct>")), "GET", StatusCode::BAD_GATEWAY, "not an array"),
        ("crm/contacts", Box::new(|| rpc_value("<array><data><value><int>1</int></value><value><string>x</string></value></data></array>")), "GET", StatusCode::BAD_GATEWAY, "not records"),
        ("crm/contacts/count", Box::new(|| rpc_value("<string>many</string>")), "GET", StatusCode::BAD_GATEWAY, "not a number"),
        ("crm/contacts", Box::new(|| rpc_value("<string>new</string>")), "POST", StatusCode::BAD_GATEWAY, "not an id"),
    ];
    for (path, answer, method, status, word) in cases {
        // The credential check and the account's time zone (read before a write) go
        // through to the simulator; the call under test gets the canned answer.
        stub.answer(move |seen| {
            let method = seen.rpc_method();
            (method != "DataService.echo" && method != "DataService.getAppSetting").then(&answer)
        });
        let body = (method == "POST").then(|| json!({"FirstName": "Ada"}));
        let a = app.call(method.parse().unwrap(), &format!("/hubs/{path}"), &auth, body).await;
        let (m, words) = a.error(status);
        assert!(m.contains(word) || words.as_deref().unwrap_or("").contains(word), "{method} {path}: {}", a.body);
        assert!(!a.body.to_string().contains(DEMO_PRIVATE_KEY));
    }
}

// ---------------------------------------------------------------------------
// Bad paging input.

#[tokio::test(flavor = "multi_thread")]
async fn bad_page_and_page_size_values_are_400s_on_hub_lists_and_logs() {
    let app = start().await;
    let (bc_id, bc) = app.bigcommerce(App::basic(&app.sim_store_url())).await;
    let (_, keap) = app.keap_instance(json!({})).await;
    app.call(Method::GET, "/hubs/ecommerce/orders?pageSize=1", &bc, None).await.ok();

    let lists = [
        (bc.clone(), "/hubs/ecommerce/orders"),
        (bc.clone(), "/hubs/ecommerce/orders?where=staff_notes%20LIKE%20%27%25x%25%27"),
        (keap.clone(), "/hubs/crm/contacts"),
        (app.auth.clone(), "/instances/events"),
        (app.auth.clone(), &format!("/instances/{bc_id}/events")),
        (app.auth.clone(), &format!("/instances/{bc_id}/logs")),
    ];
    let (bc_calls, keap_calls) = (app.bc.request_count(HASH), app.keap.rpc_count(DEMO_CLIENT_ID));
    for (auth, path) in &lists {
        let sep = if path.contains('?') { '&' } else { '?' };
        for name in ["page", "pageSize"] {
            for value in ["0", "-1", "abc", "1.5", "1e3", "99999999999999999999999", "0x10", "%201"] {
                let url = format!("{path}{sep}{name}={value}");
                let (m, _) = app.call(Method::GET, &url, auth, None).await.error(StatusCode::BAD_REQUEST);
                assert!(m.contains(name), "{url}: {m}");
            }
        }
    }
    assert_eq!((app.bc.request_count(HASH), app.keap.rpc_count(DEMO_CLIENT_ID)), (bc_calls, keap_calls), "no bad page reached a vendor");

    // Pages far past the end: an empty page where the position can be counted, a
    // 400 where it cannot (past 64 bits of offset, past what Keap's 32-bit page takes,
    // past an i64 in the event log); never an overflow.
    const EMPTY: Option<&str> = None;
    for (page, expected) in [
        // The engine's filter too: the records it would pass over cannot be counted.
        ("18446744073709551615", [Some("page is too large"), Some("page is too large"), Some("page is too large"), Some("page must be"), Some("page must be"), EMPTY]),
        ("100000000000000000", [Some("page is too large"), Some("page is too large"), Some("page is too large"), EMPTY, EMPTY, EMPTY]),
        // The offset fits, the offset of the page's last record does not.
        ("92233720368547759", [Some("page is too large"), EMPTY, Some("page is too large"), EMPTY, EMPTY, EMPTY]),
        ("10000000000000", [EMPTY, EMPTY, Some("page is too large"), EMPTY, EMPTY, EMPTY]),
    ] {
        for ((auth, path), expected) in lists.iter().zip(expected) {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = format!("{path}{sep}page={page}");
            let a = app.call(Method::GET, &url, auth, None).await;
            match expected {
                None => assert_eq!(a.ok(), json!([]), "{url}"),
                Some(words) => assert!(a.error(StatusCode::BAD_REQUEST).0.contains(words), "{url}: {}", a.body),
            }
        }
    }
    let big = app.call(Method::GET, "/hubs/ecommerce/orders?pageSize=100000", &bc, None).await.ok();
    assert_eq!(big.as_array().unwrap().len(), 120, "every order, in one page of the vendor's largest size");
    let log = app.platform(Method::GET, &format!("/instances/{bc_id}/logs?pageSize=100000"), None).await.ok();
    assert!(!log.as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Configuration values that cannot be stored.

#[tokio::test(flavor = "multi_thread")]
async fn configuration_values_that_are_null_lists_objects_too_long_or_masks_are_refused_before_the_vendor() {
    let app = start().await;
    let good = App::basic(&app.sim_store_url());
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let seen = app.bc.request_count(HASH);
    for (config, words) in [
        (with("username", Value::Null), vec!["username", "null"]),
        (with("username", json!(["sandbox"])), vec!["username", "array"]),
        (with("password", json!({"value": DEMO_API_TOKEN})), vec!["password", "object"]),
        (with("username", json!("u".repeat(129))), vec!["username", "128"]),
        (with("store.url", json!(format!("{}?{}", app.sim_store_url(), "q".repeat(1000)))), vec!["store.url", "1000"]),
        (with("password", json!("p".repeat(64 * 1024 + 1))), vec!["password", "65536"]),
        (with("password", json!("********")), vec!["********"]),
        (with("event.notification.enabled", json!("yes")), vec!["event.notification.enabled", "true or false"]),
        (with("store.url", json!("not a url")), vec!["store.url", "URL"]),
    ] {
        for path in ["/instances", "/elements/bigcommerce/instances"] {
            let body = json!({"element": {"key": "bigcommerce"}, "name": "x", "configuration": config});
            let a = app.platform(Method::POST, path, Some(body)).await;
            let (m, _) = a.error(StatusCode::BAD_REQUEST);
            for w in &words {
                assert!(m.contains(w), "{path}: {m}");
            }
            assert!(!m.contains(DEMO_API_TOKEN), "{m}");
            assert!(m.len() < 500, "the value is not quoted back: {m}");
        }
    }
    // providerData belongs to OAuth 2.0 elements; BigCommerce's is a mistake to point out.
    let body = json!({"element": {"key": "bigcommerce"}, "name": "x", "configuration": good, "providerData": {"code": "c"}});
    let (m, _) = app.platform(Method::POST, "/instances", Some(body)).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("does not take providerData"), "{m}");
    assert_eq!(app.bc.request_count(HASH), seen, "refused before any vendor call");
    assert_eq!(app.instance_count().await, 0);

    // The same checks on updates; nothing written.
    let (id, _) = app.bigcommerce(good.clone()).await;
    let before = app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok();
    for (key, value) in [("username", Value::Null), ("username", json!([])), ("username", json!("u".repeat(129))), ("store.url", json!("********"))] {
        for method in [Method::PATCH, Method::PUT] {
            let body = json!({"name": "y", "configuration": with(key, value.clone())});
            let (m, _) = app.platform(method.clone(), &format!("/instances/{id}"), Some(body)).await.error(StatusCode::BAD_REQUEST);
            assert!(m.contains(key) || m.contains("********"), "{method} {key}: {m}");
        }
    }
    // A blank name, and another element (naming its own is allowed).
    for method in [Method::PATCH, Method::PUT] {
        let (m, _) = app.platform(method.clone(), &format!("/instances/{id}"), Some(json!({"name": "  "}))).await.error(StatusCode::BAD_REQUEST);
        assert!(m.contains("name must not be empty"), "{method}: {m}");
        let body = json!({"name": "y", "element": {"key": "infusionsoftcrm"}, "configuration": good});
        let (m, _) = app.platform(method.clone(), &format!("/instances/{id}"), Some(body)).await.error(StatusCode::BAD_REQUEST);
        assert!(m.contains("cannot change its element"), "{method}: {m}");
    }
    assert_eq!(app.platform(Method::GET, &format!("/instances/{id}"), None).await.ok(), before);
    let body = json!({"element": {"key": "bigcommerce"}, "configuration": {"username": good["username"]}});
    assert_eq!(app.platform(Method::PATCH, &format!("/instances/{id}"), Some(body)).await.ok()["id"], id);
}

// ---------------------------------------------------------------------------
// /readyz with the database gone.

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_the_database_is_unreachable_and_healthz_stays_up() {
    let app = start().await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.root)).send();
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready"}));

    app.store.close().await;
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("elements-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Database unreachable");
    assert!(body["requestId"].is_string() && !body.to_string().contains("t.db"), "{body}");
    // The process itself is up (liveness is not readiness).
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    // And a call that needs the database is a 500 in the same shape, not a hang.
    let a = app.platform(Method::GET, "/instances", None).await;
    assert!(a.status.is_server_error(), "{} {}", a.status, a.body);
    assert!(a.body["requestId"].is_string(), "{}", a.body);
}

// ---------------------------------------------------------------------------
// The shape of every error the application sees.

/// Every error the application answers, its extractors and routing included, is
/// the Cloud Elements body `{"message", "requestId"}` (the id that of the
/// `Elements-Request-Id` header) with a message saying what to send instead. Only
/// what hyper refuses before the application runs (an unparseable request line)
/// stays a bare 400 (docs/choices.md).
#[tokio::test(flavor = "multi_thread")]
async fn every_error_the_application_sees_has_the_cloud_elements_shape_and_says_what_to_do() {
    let app = start().await;
    let (id, _) = app.bigcommerce(App::basic(&app.sim_store_url())).await;
    let raw = |method: Method, path: String, content_type: Option<&str>, body: &str| {
        let mut r = app.http.request(method, format!("{}{path}", app.root)).header("Authorization", &app.auth).body(body.to_owned());
        if let Some(t) = content_type {
            r = r.header("Content-Type", t);
        }
        async move {
            let r = r.send().await.unwrap();
            let (status, headers) = (r.status(), r.headers().clone());
            (status, headers, r.text().await.unwrap())
        }
    };
    let json = Some("application/json");
    let api = "/elements/api-v2";
    // (method, path from the root, Content-Type, body, status, words the message holds)
    type Case<'a> = (Method, String, Option<&'a str>, &'a str, StatusCode, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        // Path parameters that do not parse (axum's Path rejection).
        (Method::GET, format!("{api}/instances/abc"), None, "", StatusCode::BAD_REQUEST, &["{id}", "whole number", "'abc'"]),
        (Method::GET, format!("{api}/instances/abc/logs"), None, "", StatusCode::BAD_REQUEST, &["{id}", "whole number"]),
        (Method::GET, format!("{api}/instances/1.5/events/e"), None, "", StatusCode::BAD_REQUEST, &["{id}", "whole number"]),
        (Method::PATCH, format!("{api}/instances/{id}/configuration/x"), json, "{\"propertyValue\": \"a\"}", StatusCode::BAD_REQUEST, &["{configId}", "whole number"]),
        (Method::PUT, format!("{api}/instances/99999999999999999999/enabled"), None, "", StatusCode::BAD_REQUEST, &["{id}", "whole number"]),
        // Invalid UTF-8 once percent-decoded, in a path parameter.
        (Method::GET, format!("{api}/elements/%FF"), None, "", StatusCode::BAD_REQUEST, &["{keyOrId}", "UTF-8"]),
        (Method::GET, format!("{api}/instances/events/%C3%28"), None, "", StatusCode::BAD_REQUEST, &["{eventId}", "UTF-8"]),
        (Method::POST, format!("{api}/events/bigcommerce/%FF"), json, "{}", StatusCode::BAD_REQUEST, &["{instanceKey}", "UTF-8"]),
        // Query values that are not what the parameter takes.
        (Method::GET, format!("{api}/instances/{id}/logs?pageSize=x"), None, "", StatusCode::BAD_REQUEST, &["pageSize", "whole number"]),
        (Method::GET, format!("{api}/instances/{id}/logs?page=-1"), None, "", StatusCode::BAD_REQUEST, &["page", "whole number"]),
        (Method::GET, format!("{api}/instances/{id}/events?pageSize=0"), None, "", StatusCode::BAD_REQUEST, &["pageSize"]),
        (Method::GET, format!("{api}/elements/infusionsoftcrm/oauth/url"), None, "", StatusCode::BAD_REQUEST, &["apiKey", "callbackUrl"]),
        // Bodies: not JSON, malformed, the wrong shape.
        (Method::POST, format!("{api}/instances"), Some("text/plain"), "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE, &["application/json"]),
        (Method::POST, format!("{api}/instances"), None, "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE, &["application/json"]),
        (Method::PATCH, format!("{api}/instances/{id}"), Some("application/xml"), "<a/>", StatusCode::UNSUPPORTED_MEDIA_TYPE, &["application/json"]),
        (Method::POST, format!("{api}/instances"), json, "{\"name\": ", StatusCode::BAD_REQUEST, &["Malformed JSON", "line 1"]),
        (Method::POST, format!("{api}/instances"), json, "{\"nme\": \"x\"}", StatusCode::BAD_REQUEST, &["nme"]),
        (Method::PATCH, format!("{api}/instances/{id}"), json, "[1]", StatusCode::BAD_REQUEST, &["JSON object", "array"]),
        (Method::PATCH, format!("{api}/instances/{id}"), json, "{\"tags\": \"eu\"}", StatusCode::BAD_REQUEST, &["tags", "sequence"]),
        // Routing: no such path, a method the path does not take.
        (Method::GET, "/nowhere".into(), None, "", StatusCode::NOT_FOUND, &["/nowhere", "/elements/api-v2"]),
        (Method::GET, format!("{api}/nowhere"), None, "", StatusCode::NOT_FOUND, &["docs"]),
        (Method::DELETE, format!("{api}/elements"), None, "", StatusCode::METHOD_NOT_ALLOWED, &["DELETE", "docs"]),
        (Method::POST, format!("{api}/instances/{id}"), json, "{}", StatusCode::METHOD_NOT_ALLOWED, &["POST", "docs"]),
        (Method::PUT, "/healthz".into(), None, "", StatusCode::METHOD_NOT_ALLOWED, &["PUT", "/healthz"]),
    ];
    for (method, path, content_type, body, status, words) in cases {
        let what = format!("{method} {path}");
        let (got, headers, text) = raw(method, path, content_type, body).await;
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        let message = body["message"].as_str().unwrap_or_else(|| panic!("{what}: no message: {body}"));
        assert_eq!(body["requestId"].as_str(), headers["elements-request-id"].to_str().ok(), "{what}: {body}");
        for w in words {
            assert!(message.contains(w), "{what}: '{w}' not in: {message}");
        }
        if got == StatusCode::METHOD_NOT_ALLOWED {
            assert!(headers.contains_key(header::ALLOW), "{what}: 405 keeps Allow: {headers:?}");
        }
    }
}
