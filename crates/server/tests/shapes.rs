//! Element shapes beyond the built-in vendors (issue 16: envelopes, item paths,
//! credential placements, a second base URL), each against a small test vendor
//! written here (axum on 127.0.0.1:0) and defined by a YAML file of
//! `tests/elements_shapes/`, loaded the way `serve --elements-dir` loads files.
//! The server runs in this process; every vendor call goes through the real
//! outbound client (loopback allowed explicitly).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use switchyard_elements::Catalog;

/// One request as a test vendor saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
}

/// What a test vendor saw, in order.
#[derive(Clone, Default)]
struct Seens(Arc<Mutex<Vec<Seen>>>);

impl Seens {
    fn push(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        self.0.lock().unwrap().push(Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    fn last(&self) -> Seen {
        self.0.lock().unwrap().last().cloned().expect("the vendor saw a request")
    }
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

fn query_of(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// Serves `app` on a loopback port; answers `http://127.0.0.1:PORT`.
async fn serve_vendor(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

struct Platform {
    api: String,
    auth: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: reqwest::StatusCode,
    text: String,
    body: Value,
}

impl Answer {
    fn ok(self) -> Value {
        assert_eq!(self.status, reqwest::StatusCode::OK, "{}", self.text);
        self.body
    }
}

/// The server with one organization, the built-in elements and those of
/// `tests/elements_shapes/`.
async fn platform() -> Platform {
    let mut catalog = Catalog::builtin();
    let loaded = catalog.load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elements_shapes")).unwrap();
    assert_eq!(loaded, 4);
    let (api, auth, dir) = common::serve_catalog(catalog).await;
    Platform { api, auth, http: reqwest::Client::new(), _dir: dir }
}

impl Platform {
    async fn request(&self, auth: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, body }
    }

    /// `POST /instances`; answers the answer as is.
    async fn create(&self, element: &str, configuration: Value, provider_data: Option<Value>) -> Answer {
        let mut body = json!({"element": {"key": element}, "name": "t", "configuration": configuration});
        if let Some(p) = provider_data {
            body["providerData"] = p;
        }
        self.request(&self.auth, reqwest::Method::POST, "/instances", Some(body)).await
    }

    /// A new instance: its id and the authorization of its hub calls.
    async fn instance(&self, element: &str, configuration: Value, provider_data: Option<Value>) -> (i64, String) {
        let created = self.create(element, configuration, provider_data).await.ok();
        let token = created["token"].as_str().unwrap_or_else(|| panic!("{created}"));
        (created["id"].as_i64().unwrap(), format!("{}, Element {token}", self.auth))
    }

    async fn hub(&self, auth: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        self.request(auth, method, &format!("/hubs{path}"), body).await
    }
}

// ---------------------------------------------------------------------------
// shapestore: records in envelopes, `.json` item paths, an API key in the query,
// reports on a second base URL.

const KEY: &str = "KEY-s3cr3t-0042";

#[derive(Clone, Default)]
struct Shop {
    seen: Seens,
    orders: Arc<Mutex<BTreeMap<u64, Value>>>,
}

/// The record under `key` of a write body that holds nothing else (`{"order": {...}}`).
fn wrapped(body: &Bytes, key: &str) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(mut outer) if outer.len() == 1 => match outer.remove(key)? {
            Value::Object(inner) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

async fn shop(State(s): State<Shop>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    s.seen.push(&method, &uri, &headers, &body);
    let query = query_of(&uri);
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if q("api_key").as_deref() != Some(KEY) {
        // As careless vendors do: the request, key included, in the refusal.
        return reply(401, json!({"errors": format!("[API] Invalid API key for {uri}")}));
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let missing = || reply(404, json!({"errors": "Not Found"}));
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1", "shop.json"]) => reply(200, json!({"shop": {"name": "test"}})),
        ("GET", ["v1", "orders.json"]) => {
            let orders: Vec<Value> = s.orders.lock().unwrap().values().cloned().collect();
            let page: usize = q("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let limit: usize = q("limit").and_then(|p| p.parse().ok()).unwrap_or(50);
            let slice: Vec<Value> = orders.into_iter().skip((page - 1) * limit).take(limit).collect();
            reply(200, json!({"orders": slice}))
        }
        ("POST", ["v1", "orders.json"]) => {
            let Some(mut order) = wrapped(&body, "order") else {
                return reply(422, json!({"errors": {"order": "Required parameter missing or invalid"}}));
            };
            let mut orders = s.orders.lock().unwrap();
            let id = orders.keys().last().copied().unwrap_or(0) + 1;
            order.insert("id".into(), id.into());
            orders.insert(id, Value::Object(order.clone()));
            reply(201, json!({"order": order}))
        }
        (method, ["v1", "orders", file]) => {
            let Some(id) = file.strip_suffix(".json") else { return missing() };
            match id {
                "leak" => return reply(400, json!({"errors": format!("Bad request {uri}")})),
                "broken" => return (StatusCode::INTERNAL_SERVER_ERROR, format!("upstream failed for {uri}")).into_response(),
                "bare" => return reply(200, json!({"id": 5, "email": "bare@example.com"})),
                _ => {}
            }
            let Ok(id) = id.parse::<u64>() else { return missing() };
            let mut orders = s.orders.lock().unwrap();
            match method {
                "GET" => orders.get(&id).map_or_else(missing, |o| reply(200, json!({"order": o}))),
                "PUT" => {
                    let Some(changes) = wrapped(&body, "order") else {
                        return reply(422, json!({"errors": {"order": "Required parameter missing or invalid"}}));
                    };
                    let Some(Value::Object(order)) = orders.get_mut(&id) else { return missing() };
                    order.extend(changes);
                    reply(200, json!({"order": order}))
                }
                "DELETE" => orders.remove(&id).map_or_else(missing, |_| reply(200, json!({}))),
                _ => missing(),
            }
        }
        (method @ ("GET" | "PUT"), ["v1", "customers", customer, "addresses", file]) => {
            let Some(id) = file.strip_suffix(".json").and_then(|i| i.parse::<u64>().ok()) else { return missing() };
            let mut address = json!({"id": id, "customer_id": customer, "city": "Lyon"});
            if method == "PUT" {
                let Some(changes) = wrapped(&body, "address") else {
                    return reply(422, json!({"errors": {"address": "Required parameter missing or invalid"}}));
                };
                address.as_object_mut().unwrap().extend(changes);
            }
            reply(200, json!({"address": address}))
        }
        ("GET", ["v2", "reports"]) => reply(200, json!({"data": [{"id": 1, "name": "sales"}, {"id": 2, "name": "stock"}]})),
        ("GET", ["v2", "reports", id]) => reply(200, json!({"data": {"report": {"id": id, "name": "sales"}}, "meta": {}})),
        _ => missing(),
    }
}

async fn shop_vendor() -> (Shop, String) {
    let s = Shop::default();
    let base = serve_vendor(Router::new().fallback(shop).with_state(s.clone())).await;
    (s, base)
}

#[tokio::test]
async fn single_records_travel_in_envelopes_on_their_item_paths() {
    let (vendor, base) = shop_vendor().await;
    let p = platform().await;
    let (_, auth) = p.instance("shapestore", json!({"base.url": base, "api.key": KEY}), None).await;
    use reqwest::Method as M;

    // Create: the caller's plain record goes out wrapped, the answer comes back plain.
    let created = p.hub(&auth, M::POST, "/ecommerce/orders", Some(json!({"email": "ada@example.com", "total": "12.50"}))).await.ok();
    assert_eq!(created, json!({"email": "ada@example.com", "total": "12.50", "id": 1}));
    let seen = vendor.seen.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/v1/orders.json"));
    assert_eq!(seen.json(), json!({"order": {"email": "ada@example.com", "total": "12.50"}}));

    // Get, on the item path template.
    let got = p.hub(&auth, M::GET, "/ecommerce/orders/1", None).await.ok();
    assert_eq!(got, created);
    let seen = vendor.seen.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str(), seen.query.as_str()), ("GET", "/v1/orders/1.json", "api_key=KEY-s3cr3t-0042"));
    // `fields` cuts the unwrapped record.
    let cut = p.hub(&auth, M::GET, "/ecommerce/orders/1?fields=email", None).await.ok();
    assert_eq!(cut, json!({"email": "ada@example.com"}));
    let unknown = p.hub(&auth, M::GET, "/ecommerce/orders/1?fields=colour", None).await;
    assert_eq!(unknown.status, reqwest::StatusCode::BAD_REQUEST, "{}", unknown.text);

    // Update: wrapped the same way, sent with the resource's method to the item path.
    let updated = p.hub(&auth, M::PATCH, "/ecommerce/orders/1", Some(json!({"note": "gift"}))).await.ok();
    assert_eq!(updated, json!({"email": "ada@example.com", "total": "12.50", "id": 1, "note": "gift"}));
    let seen = vendor.seen.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("PUT", "/v1/orders/1.json"));
    assert_eq!(seen.json(), json!({"order": {"note": "gift"}}));

    // The list keeps using recordsPath and the list path.
    let list = p.hub(&auth, M::GET, "/ecommerce/orders", None).await.ok();
    assert_eq!(list, json!([updated]));
    assert_eq!(vendor.seen.last().path, "/v1/orders.json");

    // Delete, then the record is gone.
    let deleted = p.hub(&auth, M::DELETE, "/ecommerce/orders/1", None).await;
    assert_eq!(deleted.status, reqwest::StatusCode::OK, "{}", deleted.text);
    let seen = vendor.seen.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("DELETE", "/v1/orders/1.json"));
    assert_eq!(p.hub(&auth, M::GET, "/ecommerce/orders/1", None).await.status, reqwest::StatusCode::NOT_FOUND);

    // An answer without the envelope is the vendor's fault, named.
    let bare = p.hub(&auth, M::GET, "/ecommerce/orders/bare", None).await;
    assert_eq!(bare.status, reqwest::StatusCode::BAD_GATEWAY, "{}", bare.text);
    assert!(bare.body["message"].as_str().unwrap().contains("no record at 'order'"), "{}", bare.text);

    // Nested: the parent's id and the record's both fill the item path.
    let address = p.hub(&auth, M::GET, "/ecommerce/customers/9/addresses/3", None).await.ok();
    assert_eq!(address, json!({"id": 3, "customer_id": "9", "city": "Lyon"}));
    assert_eq!(vendor.seen.last().path, "/v1/customers/9/addresses/3.json");
    let moved = p.hub(&auth, M::PATCH, "/ecommerce/customers/9/addresses/3", Some(json!({"city": "Oslo"}))).await.ok();
    assert_eq!(moved["city"], "Oslo");
    assert_eq!(vendor.seen.last().json(), json!({"address": {"city": "Oslo"}}));

    // The element's listing shows the item path as the vendor path of item operations.
    let element = p.request(&p.auth, M::GET, "/elements/shapestore", None).await.ok();
    let vendor_path = |method: &str, path: &str| {
        element["resources"].as_array().unwrap().iter().find(|r| r["method"] == method && r["path"] == path).unwrap()["vendorPath"].clone()
    };
    assert_eq!(vendor_path("GET", "/hubs/ecommerce/orders/{id}"), "/orders/{id}.json");
    assert_eq!(vendor_path("GET", "/hubs/ecommerce/orders"), "/orders.json");
}

/// An element's own keys are checked by their declared type and format before
/// anything is stored or sent (a COMBO without options takes any value).
#[tokio::test]
async fn configuration_values_are_checked_by_type_and_format() {
    let (_vendor, base) = shop_vendor().await;
    let p = platform().await;
    let with = |key: &str, value: &str| json!({"base.url": base, "api.key": KEY, key: value});
    let (at_limit, over_limit) = ("1".repeat(32), "1".repeat(33)); // TEXTFIELD_32
    for (key, value, expected) in [
        ("shop.flag", "yes", "must be true or false"),
        ("shop.limit", "ten", "must be a number"),
        ("shop.limit", "inf", "must be a number"),
        ("shop.limit", over_limit.as_str(), "longer than 32 characters"),
        ("shop.extras", "{not json", "must be JSON"),
        ("shop.region", "mars", "must be one of eu, us"),
    ] {
        let refused = p.create("shapestore", with(key, value), None).await;
        assert_eq!(refused.status, reqwest::StatusCode::BAD_REQUEST, "{key}={value}: {}", refused.text);
        let message = refused.body["message"].as_str().unwrap();
        assert!(message.contains(key) && message.contains(expected), "{key}={value}: {message}");
    }
    for (key, value) in [
        ("shop.flag", "false"),
        ("shop.limit", "-12.5"),
        ("shop.limit", at_limit.as_str()),
        ("shop.extras", r#"{"a": [1]}"#),
        ("shop.region", "us"),
        ("shop.label", "anything at all"),
    ] {
        let created = p.create("shapestore", with(key, value), None).await;
        assert_eq!(created.status, reqwest::StatusCode::OK, "{key}={value}: {}", created.text);
    }
}

#[tokio::test]
async fn a_resource_lives_on_a_second_base_url() {
    let (vendor, base) = shop_vendor().await;
    let p = platform().await;
    let (_, auth) = p.instance("shapestore", json!({"base.url": base, "api.key": KEY}), None).await;
    let list = p.hub(&auth, reqwest::Method::GET, "/ecommerce/reports", None).await.ok();
    assert_eq!(list, json!([{"id": 1, "name": "sales"}, {"id": 2, "name": "stock"}]));
    let seen = vendor.seen.last();
    assert_eq!(seen.path, "/v2/reports");
    assert!(seen.query.contains("api_key=KEY-s3cr3t-0042"), "credentials go to every base: {}", seen.query);
    let one = p.hub(&auth, reqwest::Method::GET, "/ecommerce/reports/4", None).await.ok();
    assert_eq!(one, json!({"id": "4", "name": "sales"}), "recordPath data.report");
    assert_eq!(vendor.seen.last().path, "/v2/reports/4");
    // The main base is untouched by it.
    p.hub(&auth, reqwest::Method::GET, "/ecommerce/orders", None).await.ok();
    assert_eq!(vendor.seen.last().path, "/v1/orders.json");
}

#[tokio::test]
async fn an_api_key_in_the_query_stays_out_of_errors_and_the_call_log() {
    let (vendor, base) = shop_vendor().await;
    let p = platform().await;
    use reqwest::Method as M;

    // A wrong key at creation: the vendor's refusal echoes it, the answer does not.
    let refused = p.create("shapestore", json!({"base.url": base, "api.key": "KEY-wrong-7731"}), None).await;
    assert_eq!(refused.status, reqwest::StatusCode::BAD_REQUEST, "{}", refused.text);
    assert!(vendor.seen.last().query.contains("KEY-wrong-7731"), "the vendor saw the key");
    assert!(!refused.text.contains("KEY-wrong-7731"), "{}", refused.text);
    assert!(refused.text.contains("Invalid API key"), "the vendor's words are kept: {}", refused.text);

    let (id, auth) = p.instance("shapestore", json!({"base.url": base, "api.key": KEY}), None).await;
    for (path, status) in [("/ecommerce/orders/leak", reqwest::StatusCode::BAD_REQUEST), ("/ecommerce/orders/broken", reqwest::StatusCode::BAD_GATEWAY)] {
        let a = p.hub(&auth, M::GET, path, None).await;
        assert_eq!(a.status, status, "{}", a.text);
        assert!(!a.text.contains(KEY), "{path}: {}", a.text);
        assert!(a.body["providerMessage"].as_str().unwrap().contains("api_key=********"), "{path}: {}", a.text);
    }
    // The instance as read back shows the key masked (a PASSWORD).
    let read = p.request(&p.auth, M::GET, &format!("/instances/{id}"), None).await;
    assert!(!read.text.contains(KEY), "{}", read.text);

    let logs = common::until_some(Duration::from_secs(10), "both calls in the call log", || async {
        let a = p.request(&p.auth, M::GET, &format!("/instances/{id}/logs"), None).await;
        let paths: Vec<String> = a.body.as_array()?.iter().filter_map(|c| c["path"].as_str().map(str::to_owned)).collect();
        (paths.contains(&"/orders/leak.json".to_owned()) && paths.contains(&"/orders/broken.json".to_owned())).then_some(a)
    })
    .await;
    assert!(!logs.text.contains(KEY), "{}", logs.text);
    for call in logs.body.as_array().unwrap() {
        assert_eq!(call["queryParameters"], json!([]), "the credential's name is not a query the caller sent: {call}");
    }
}

// ---------------------------------------------------------------------------
// shapeauth: one credential placement per mode.

const TOKEN: &str = "tok-9f8e7d";
const EMAIL: &str = "ada@example.com";

async fn who(State(seen): State<Seens>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    seen.push(&method, &uri, &headers, &body);
    reply(200, json!({"id": uri.path().rsplit('/').next()}))
}

#[tokio::test]
async fn each_credential_placement_reaches_the_vendor_as_declared() {
    let seen = Seens::default();
    let base = serve_vendor(Router::new().fallback(who).with_state(seen.clone())).await;
    let p = platform().await;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}/token:{TOKEN}")));
    let bearer = format!("Bearer {TOKEN}");
    let query = format!("token={TOKEN}");
    // mode -> (Authorization, X-Api-Key, query) as the vendor must see them.
    let expected: [(&str, Option<&str>, Option<&str>, &str); 4] = [
        ("basic", Some(&basic), None, ""),
        ("bearer", Some(&bearer), None, ""),
        ("header", None, Some(TOKEN), ""),
        ("query", None, None, &query),
    ];
    for (mode, authorization, api_key, query) in expected {
        let (_, auth) =
            p.instance("shapeauth", json!({"auth.mode": mode, "base.url": base, "email": EMAIL, "api.token": TOKEN}), None).await;
        let check = seen.last();
        assert_eq!(check.path, "/me", "{mode}: the check call");
        let got = p.hub(&auth, reqwest::Method::GET, "/crm/contacts/7", None).await.ok();
        assert_eq!(got, json!({"id": "7"}));
        for call in [check, seen.last()] {
            assert_eq!(call.header("authorization"), authorization, "{mode} {}", call.path);
            assert_eq!(call.header("x-api-key"), api_key, "{mode} {}", call.path);
            assert_eq!(call.query, query, "{mode} {}", call.path);
        }
    }
    // `email` renders only the basic mode's user: another mode needs no e-mail.
    let no_email = p.create("shapeauth", json!({"auth.mode": "bearer", "base.url": base, "api.token": TOKEN}), None).await;
    assert_eq!(no_email.status, reqwest::StatusCode::OK, "{}", no_email.text);
    let basic_without = p.create("shapeauth", json!({"auth.mode": "basic", "base.url": base, "api.token": TOKEN}), None).await;
    assert_eq!(basic_without.status, reqwest::StatusCode::BAD_REQUEST, "{}", basic_without.text);
    assert!(basic_without.text.contains("email"), "{}", basic_without.text);
}

// ---------------------------------------------------------------------------
// shapeoauth*: the token endpoint's client authentication, per token call.

const CLIENT_ID: &str = "client-abc";
const CLIENT_SECRET: &str = "secret-xyz";

/// How one token call presented the client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenCall {
    grant: String,
    /// `Authorization: Basic` decoded as (id, secret).
    basic: Option<(String, String)>,
    /// `client_id` and `client_secret` form fields.
    form: (Option<String>, Option<String>),
}

#[derive(Clone, Default)]
struct Oauth {
    calls: Arc<Mutex<Vec<TokenCall>>>,
    /// Whether the first access token has been revoked (the vendor then answers 401).
    revoked: Arc<std::sync::atomic::AtomicBool>,
}

async fn oauth_vendor(State(s): State<Oauth>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if (method.as_str(), uri.path()) == ("POST", "/token") {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let basic = headers.get("authorization").and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_owned)).map(|b| {
            let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap();
            let (id, secret) = text.split_once(':').unwrap();
            (id.to_owned(), secret.to_owned())
        });
        let call = TokenCall { grant: field("grant_type").unwrap_or_default(), basic, form: (field("client_id"), field("client_secret")) };
        let presented = call.basic.clone().or_else(|| Some((call.form.0.clone()?, call.form.1.clone()?)));
        s.calls.lock().unwrap().push(call.clone());
        if presented != Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())) {
            return reply(401, json!({"error": "invalid_client"}));
        }
        return match (call.grant.as_str(), field("code"), field("refresh_token")) {
            ("authorization_code", Some(code), _) if code == "code-1" => {
                reply(200, json!({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600, "token_type": "bearer"}))
            }
            ("refresh_token", _, Some(rt)) if rt == "rt-1" => {
                reply(200, json!({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600, "token_type": "bearer"}))
            }
            _ => reply(400, json!({"error": "invalid_grant"})),
        };
    }
    let revoked = s.revoked.load(std::sync::atomic::Ordering::SeqCst);
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer at-2") => reply(200, json!({"id": 1})),
        Some("Bearer at-1") if !revoked => reply(200, json!({"id": 1})),
        _ => reply(401, json!({"message": "token expired"})),
    }
}

/// Creates an instance of `element` (code exchange), revokes its first token and
/// makes a hub call (refresh after the vendor's 401): the token calls in order.
async fn exchange_and_refresh(element: &str) -> Vec<TokenCall> {
    let s = Oauth::default();
    let base = serve_vendor(Router::new().fallback(oauth_vendor).with_state(s.clone())).await;
    let p = platform().await;
    let config = json!({
        "oauth.api.key": CLIENT_ID, "oauth.api.secret": CLIENT_SECRET, "oauth.callback.url": "http://127.0.0.1:9/callback",
        "oauth.authorization.url": format!("{base}/authorize"), "oauth.token.url": format!("{base}/token"), "base.url": base,
    });
    let (_, auth) = p.instance(element, config, Some(json!({"code": "code-1"}))).await;
    s.revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    p.hub(&auth, reqwest::Method::GET, "/crm/contacts/1", None).await.ok();
    let calls = s.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.grant.as_str()).collect::<Vec<_>>(), ["authorization_code", "refresh_token"], "{calls:?}");
    calls
}

#[tokio::test]
async fn oauth_client_authentication_is_declared_apart_for_exchange_and_refresh() {
    let by_basic = || Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()));
    let by_form = || (Some(CLIENT_ID.to_owned()), Some(CLIENT_SECRET.to_owned()));

    // exchangeAuth: client_secret_basic, refreshAuth: client_secret_post.
    let calls = exchange_and_refresh("shapeoauthbasic").await;
    assert_eq!((calls[0].basic.clone(), calls[0].form.clone()), (by_basic(), (None, None)), "exchange by HTTP Basic only");
    assert_eq!((calls[1].basic.clone(), calls[1].form.clone()), (None, by_form()), "refresh by form fields only");

    // Nothing declared: the defaults as before (Keap's): exchange by form, refresh by Basic.
    let calls = exchange_and_refresh("shapeoauthdefault").await;
    assert_eq!((calls[0].basic.clone(), calls[0].form.clone()), (None, by_form()), "exchange by form fields only");
    assert_eq!((calls[1].basic.clone(), calls[1].form.clone()), (by_basic(), (None, None)), "refresh by HTTP Basic only");
}
