//! The v3 hooks API and the webhook deliveries, received by a local axum server on
//! 127.0.0.1; answers are validated against `webhooks.v3.yml`, callbacks against the
//! payload schemas `_all.yml` lists.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::any;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_simulators::bigcommerce::{Delivery, StoreConfig, DEMO_API_TOKEN};

use super::common::{answer, demo, past_second, start, until, Answer, Sim};
use super::spec;

const SPEC: &str = "webhooks.v3.yml";

/// One callback as the receiver saw it.
#[derive(Clone)]
struct Hit {
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct RxState {
    hits: Vec<Hit>,
    /// Statuses to answer, in order; 200 once they run out (or `fallback`).
    script: VecDeque<u16>,
    fallback: Option<u16>,
    /// Hold each request until this many have arrived (0: answer at once).
    hold_until: usize,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<RxState>>,
}

impl Receiver {
    async fn start(state: RxState) -> Receiver {
        let state = Arc::new(Mutex::new(state));
        let app = axum::Router::new().route("/{*path}", any(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    async fn ok() -> Receiver {
        Receiver::start(RxState::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    /// Waits (up to 20 s) until `n` callbacks arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(Instant::now() < deadline, "expected {n} callbacks, got {}", hits.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(State(state): State<Arc<Mutex<RxState>>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let (status, hold) = {
        let mut s = state.lock().unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        s.hits.push(Hit { headers, body });
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let fallback = s.fallback.unwrap_or(200);
        (s.script.pop_front().unwrap_or(fallback), s.hold_until)
    };
    // Holding a request open until others arrive shows whether deliveries overlap.
    let deadline = Instant::now() + Duration::from_secs(3);
    while state.lock().unwrap().hits.len() < hold && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    state.lock().unwrap().in_flight -= 1;
    AxumStatus::from_u16(status).unwrap()
}

/// The store's delivery log once it holds at least `n` attempts. An attempt is logged
/// when the receiver's answer is back, just after the receiver has counted the hit.
async fn logged(s: &Sim, hash: &str, n: usize) -> Vec<Delivery> {
    until(Duration::from_secs(20), &format!("{n} attempts in the log of {hash}"), || s.sim.webhook_deliveries(hash).len() >= n).await;
    s.sim.webhook_deliveries(hash)
}

/// Before checking that nothing (more) was delivered: fires one event at a store of
/// its own (own hook, receiver and log) and waits until that delivery is logged.
/// Each delivery is a task spawned by the write that fires it, so one fired earlier
/// has had at least that long to be sent and logged.
async fn settle(s: &Sim) {
    const HASH: &str = "settle";
    const TOKEN: &str = "t-settle";
    s.sim.add_store(StoreConfig { hash: HASH.into(), api_token: TOKEN.into(), seed_orders: 0, seed_customers: 0, seed_products: 0, ..StoreConfig::default() });
    let rx = Receiver::ok().await;
    let hook = answer(
        s.client
            .post(s.url(&format!("/stores/{HASH}/v3/hooks")))
            .header("X-Auth-Token", TOKEN)
            .json(&json!({ "scope": "store/customer/created", "destination": rx.url("/settle") })),
    )
    .await;
    assert_eq!(hook.status, StatusCode::OK, "{}", hook.text);
    let customer = json!({ "first_name": "Settle", "last_name": "Marker", "email": "settle@example.com" });
    let made = s.call_as(HASH, "sandbox", TOKEN, Method::POST, "/customers", Some(customer)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    logged(s, HASH, 1).await;
}

async fn v3(s: &Sim, method: Method, path: &str, body: Option<Value>) -> Answer {
    s.token_call("v3", method, path, body).await
}

/// Creates a hook on the demo store; returns its `data`.
async fn hook(s: &Sim, scope: &str, destination: &str, extra: Value) -> Value {
    let mut body = json!({ "scope": scope, "destination": destination, "is_active": true });
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let a = v3(s, Method::POST, "/hooks", Some(body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.json()["data"].clone()
}

/// Asserts a v3 error: status, spec shape, and the `errors` object.
fn v3_error(a: &Answer, status: u16, path: &str, method: &str) -> Value {
    assert_eq!(a.status.as_u16(), status, "{}", a.text);
    let v = a.json();
    assert_eq!(v["status"], status, "{v}");
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["type"].as_str().is_some(), "{v}");
    spec::check(SPEC, path, method, &status.to_string(), &v);
    v
}

fn sha1_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a callback: the vendor's schema, the producer, store id, hash and time.
fn check_payload(s: &Sim, hit: &Hit, scope: &str, kind: &str, id: u64) {
    let p = &hit.body;
    spec::check_callback(p);
    assert_eq!(p["scope"], scope, "{p}");
    assert_eq!(p["data"]["type"], kind, "{p}");
    assert_eq!(p["data"]["id"], id, "{p}");
    assert_eq!(p["producer"], "stores/abc123");
    assert_eq!(p["store_id"].as_str(), s.sim.store_id("abc123").as_deref());
    assert!(p["store_id"].as_str().unwrap().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(p["hash"], sha1_hex(p["data"].to_string().as_bytes()), "{p}");
    let now = UNIX_EPOCH.elapsed().unwrap().as_secs() as i64;
    assert!((now - p["created_at"].as_i64().unwrap()).abs() < 600, "{p}");
    assert_eq!(hit.headers.get("content-type").unwrap(), "application/json");
}

fn order_body() -> Value {
    json!({
        "status_id": 1,
        "billing_address": {
            "first_name": "Jane", "last_name": "Doe", "street_1": "123 Main Street", "city": "Austin",
            "state": "Texas", "zip": "78751", "country": "United States", "country_iso2": "US",
            "email": "janedoe@example.com"
        },
        "products": [{ "product_id": 77, "quantity": 1 }]
    })
}

#[tokio::test]
async fn hook_crud_answers_follow_the_spec() {
    let s = demo().await;
    let created = v3(
        &s,
        Method::POST,
        "/hooks",
        Some(json!({ "scope": "store/order/created", "destination": "https://hooks.example.com/bc", "is_active": true, "headers": { "X-Custom": "v1" } })),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let v = created.json();
    spec::check(SPEC, "/hooks", "post", "200", &v);
    let h = &v["data"];
    assert_eq!(v["meta"], json!({}));
    assert_eq!(h["scope"], "store/order/created");
    assert_eq!(h["destination"], "https://hooks.example.com/bc");
    assert_eq!(h["is_active"], true);
    assert_eq!(h["headers"], json!({ "X-Custom": "v1" }));
    assert_eq!(h["store_hash"], "abc123");
    assert!(h["client_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(h["created_at"], h["updated_at"]);
    let id = h["id"].as_u64().unwrap();

    // Defaults: active, no headers (null).
    let second = hook(&s, "store/product/*", "http://127.0.0.1:9/x", json!({})).await;
    assert_eq!(second["is_active"], true);
    assert_eq!(second["headers"], Value::Null);
    assert_ne!(second["id"], id);
    let third = hook(&s, "store/customer/deleted", "https://hooks.example.com/c", json!({ "is_active": false })).await;
    assert_eq!(third["is_active"], false);

    let one = v3(&s, Method::GET, &format!("/hooks/{id}"), None).await;
    assert_eq!(one.status, StatusCode::OK);
    spec::check(SPEC, "/hooks/{webhook_id}", "get", "200", &one.json());
    assert_eq!(one.json()["data"], *h);

    // The list, its paging and filters.
    let list = v3(&s, Method::GET, "/hooks", None).await.json();
    spec::check(SPEC, "/hooks", "get", "200", &list);
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert_eq!(list["meta"]["pagination"]["total"], 3);
    let page = v3(&s, Method::GET, "/hooks?limit=1&page=2", None).await.json();
    spec::check(SPEC, "/hooks", "get", "200", &page);
    let p = &page["meta"]["pagination"];
    assert_eq!((p["count"].as_u64(), p["per_page"].as_u64(), p["current_page"].as_u64(), p["total_pages"].as_u64()), (Some(1), Some(1), Some(2), Some(3)));
    assert_eq!(p["links"]["previous"], "?page=1&limit=1");
    assert_eq!(p["links"]["next"], "?page=3&limit=1");
    assert_eq!(page["data"][0]["id"], second["id"]);
    let inactive = v3(&s, Method::GET, "/hooks?is_active=false", None).await.json();
    assert_eq!(inactive["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive["data"][0]["id"], third["id"]);
    let by_scope = v3(&s, Method::GET, "/hooks?scope=store/product/*", None).await.json();
    assert_eq!(by_scope["data"][0]["id"], second["id"]);
    assert_eq!(by_scope["data"].as_array().unwrap().len(), 1);
    let by_dest = v3(&s, Method::GET, "/hooks?destination=https://hooks.example.com/bc&limit=5", None).await.json();
    assert_eq!(by_dest["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_dest["meta"]["pagination"]["links"]["current"], "?destination=https%3A%2F%2Fhooks.example.com%2Fbc&page=1&limit=5");

    // Update: only what is sent changes.
    past_second(h["created_at"].as_i64().unwrap()).await;
    let put = v3(&s, Method::PUT, &format!("/hooks/{id}"), Some(json!({ "is_active": false, "headers": { "X-Other": "v2" } }))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let u = put.json();
    spec::check(SPEC, "/hooks/{webhook_id}", "put", "200", &u);
    assert_eq!(u["data"]["is_active"], false);
    assert_eq!(u["data"]["headers"], json!({ "X-Other": "v2" }));
    assert_eq!(u["data"]["scope"], "store/order/created");
    assert!(u["data"]["updated_at"].as_i64() > u["data"]["created_at"].as_i64());
    let put = v3(&s, Method::PUT, &format!("/hooks/{id}"), Some(json!({ "scope": "store/order/*", "headers": null }))).await;
    assert_eq!(put.json()["data"]["scope"], "store/order/*");
    assert_eq!(put.json()["data"]["headers"], Value::Null);

    // Delete answers the hook; then it is gone.
    let del = v3(&s, Method::DELETE, &format!("/hooks/{id}"), None).await;
    assert_eq!(del.status, StatusCode::OK);
    spec::check(SPEC, "/hooks/{webhook_id}", "delete", "200", &del.json());
    assert_eq!(del.json()["data"]["id"], id);
    v3_error(&v3(&s, Method::GET, &format!("/hooks/{id}"), None).await, 404, "/hooks/{webhook_id}", "get");
    assert_eq!(v3(&s, Method::DELETE, &format!("/hooks/{id}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(v3(&s, Method::GET, "/hooks", None).await.json()["meta"]["pagination"]["total"], 2);
}

#[tokio::test]
async fn bad_hooks_are_refused_in_the_v3_error_shape() {
    let s = demo().await;
    let post = |body: Value| {
        let s = &s;
        async move { v3(s, Method::POST, "/hooks", Some(body)).await }
    };
    let e = v3_error(&post(json!({ "is_active": true })).await, 422, "/hooks", "post");
    assert_eq!(e["errors"]["scope"], "error.path.missing");
    assert_eq!(e["errors"]["destination"], "error.path.missing");
    let ok_dest = "https://hooks.example.com/x";
    for (body, field) in [
        (json!({ "scope": "store/cart/created", "destination": ok_dest }), "scope"),
        (json!({ "scope": 5, "destination": ok_dest }), "scope"),
        (json!({ "scope": "store/order/created", "destination": "http://hooks.example.com/x" }), "destination"),
        (json!({ "scope": "store/order/created", "destination": "https://hooks.example.com:8443/x" }), "destination"),
        (json!({ "scope": "store/order/created", "destination": "ftp://127.0.0.1/x" }), "destination"),
        (json!({ "scope": "store/order/created", "destination": "no url" }), "destination"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "is_active": "yes" }), "is_active"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "headers": ["X: y"] }), "headers"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "headers": { "X-N": 5 } }), "headers"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "headers": { "Host": "evil" } }), "headers"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "headers": { "Bad Name": "v" } }), "headers"),
        (json!({ "scope": "store/order/created", "destination": ok_dest, "headers": { "X-V": "line\nbreak" } }), "headers"),
    ] {
        let e = v3_error(&post(body.clone()).await, 422, "/hooks", "post");
        assert!(e["errors"][field].as_str().is_some_and(|m| !m.is_empty()), "{body} -> {e}");
    }
    let many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    v3_error(&post(json!({ "scope": "store/order/created", "destination": ok_dest, "headers": many })).await, 422, "/hooks", "post");

    // Malformed JSON is a 400.
    let req = s.client.post(s.url("/stores/abc123/v3/hooks")).header("X-Auth-Token", DEMO_API_TOKEN).body("{nope");
    v3_error(&answer(req).await, 400, "/hooks", "post");
    // Nothing was created.
    assert_eq!(v3(&s, Method::GET, "/hooks", None).await.json()["meta"]["pagination"]["total"], 0);

    let h = hook(&s, "store/order/created", ok_dest, json!({})).await;
    let path = format!("/hooks/{}", h["id"]);
    let e = v3(&s, Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(e.status.as_u16(), 422, "{}", e.text);
    let e = v3(&s, Method::PUT, &path, Some(json!({ "destination": "http://example.com/" }))).await;
    assert_eq!(e.status.as_u16(), 422, "{}", e.text);
    assert_eq!(v3(&s, Method::GET, &path, None).await.json()["data"]["destination"], ok_dest);
    assert_eq!(v3(&s, Method::PUT, "/hooks/999999", Some(json!({ "is_active": true }))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(v3(&s, Method::GET, "/hooks/abc", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(v3(&s, Method::GET, "/hooks?page=0", None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(v3(&s, Method::GET, "/hooks?is_active=maybe", None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(v3(&s, Method::DELETE, "/hooks", None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    let other = v3(&s, Method::GET, "/catalog/products", None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.json()["status"], 404);
}

#[tokio::test]
async fn hooks_need_token_mode_and_the_right_token() {
    let s = demo().await;
    let body = json!({ "scope": "store/order/created", "destination": "https://hooks.example.com/x" });
    // Legacy Basic mode has no v3 API.
    let legacy = answer(s.client.get(s.url("/stores/abc123/api/v3/hooks")).basic_auth("sandbox", Some(DEMO_API_TOKEN))).await;
    assert_eq!(legacy.status, StatusCode::NOT_FOUND);
    // Basic credentials on the token path are no credentials.
    let basic = answer(s.client.post(s.url("/stores/abc123/v3/hooks")).basic_auth("sandbox", Some(DEMO_API_TOKEN)).json(&body)).await;
    v3_error(&basic, 401, "/hooks", "post");
    let wrong = answer(s.client.get(s.url("/stores/abc123/v3/hooks")).header("X-Auth-Token", "nope")).await;
    v3_error(&wrong, 401, "/hooks", "get");
    assert!(!wrong.text.contains(DEMO_API_TOKEN));
    let unknown = answer(s.client.get(s.url("/stores/nope/v3/hooks")).header("X-Auth-Token", DEMO_API_TOKEN)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["status"], 404);
    // X-Auth-Token alone is enough; X-Auth-Client is accepted beside it.
    let alone = answer(s.client.get(s.url("/stores/abc123/v3/hooks")).header("X-Auth-Token", DEMO_API_TOKEN)).await;
    assert_eq!(alone.status, StatusCode::OK);
    assert_eq!(v3(&s, Method::GET, "/hooks", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn order_writes_deliver_payloads_with_custom_headers() {
    let s = demo().await;
    let rx = Receiver::ok().await;
    let created = hook(&s, "store/order/created", &rx.url("/created"), json!({ "headers": { "X-Secret": "s3cret", "X-Team": "ops" } })).await;
    let all = hook(&s, "store/order/*", &rx.url("/all"), json!({})).await;

    // Created through the legacy API.
    let o = s.post("/orders", order_body()).await;
    assert_eq!(o.status, StatusCode::CREATED, "{}", o.text);
    let oid = o.json()["id"].as_u64().unwrap();
    let hits = rx.wait_for(2).await;
    let mine: Vec<&Hit> = hits.iter().filter(|h| h.headers.get("x-secret").is_some()).collect();
    assert_eq!(mine.len(), 1, "one callback carries the custom headers");
    assert_eq!(mine[0].headers.get("x-secret").unwrap(), "s3cret");
    assert_eq!(mine[0].headers.get("x-team").unwrap(), "ops");
    for h in &hits {
        check_payload(&s, h, "store/order/created", "order", oid);
    }
    assert_eq!(hits[0].body, hits[1].body, "both hooks get the same event");

    // Updated through the token API, with a status change: updated + statusUpdated for
    // the wildcard hook, nothing for the created-only hook.
    let u = s.token_call("v2", Method::PUT, &format!("/orders/{oid}"), Some(json!({ "status_id": 11 }))).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    let hits = rx.wait_for(4).await;
    let later = &hits[2..];
    let updated = later.iter().find(|h| h.body["scope"] == "store/order/updated").expect("store/order/updated");
    check_payload(&s, updated, "store/order/updated", "order", oid);
    let status = later.iter().find(|h| h.body["scope"] == "store/order/statusUpdated").expect("store/order/statusUpdated");
    check_payload(&s, status, "store/order/statusUpdated", "order", oid);
    assert_eq!(status.body["data"]["status"], json!({ "previous_status_id": 1, "new_status_id": 11 }));
    assert!(later.iter().all(|h| h.headers.get("x-secret").is_none()));

    // An update that keeps the status sends no statusUpdated; a shipment moves it.
    s.put(&format!("/orders/{oid}"), json!({ "staff_notes": "gift" })).await;
    let hits = rx.wait_for(5).await;
    assert_eq!(hits[4].body["scope"], "store/order/updated");
    let line = s.ok(&format!("/orders/{oid}/products")).await[0]["id"].as_u64().unwrap();
    let address = s.ok(&format!("/orders/{oid}/shipping_addresses")).await[0]["id"].as_u64().unwrap();
    let sh = s.post(&format!("/orders/{oid}/shipments"), json!({ "order_address_id": address, "items": [{ "order_product_id": line, "quantity": 1 }] })).await;
    assert_eq!(sh.status, StatusCode::CREATED, "{}", sh.text);
    let hits = rx.wait_for(7).await;
    let shipped = hits[5..].iter().find(|h| h.body["scope"] == "store/order/statusUpdated").expect("statusUpdated on shipping");
    assert_eq!(shipped.body["data"]["status"], json!({ "previous_status_id": 11, "new_status_id": 2 }));

    // Deleting archives.
    assert_eq!(s.delete(&format!("/orders/{oid}")).await.status, StatusCode::NO_CONTENT);
    let hits = rx.wait_for(8).await;
    check_payload(&s, &hits[7], "store/order/archived", "order", oid);

    // Failed writes fire nothing; the log shows every acknowledged attempt.
    s.put("/orders/100", json!({ "status_id": 99 })).await.error(422);
    s.post("/orders", json!({ "products": [] })).await.error(400);
    logged(&s, "abc123", 8).await;
    settle(&s).await;
    let log = s.sim.webhook_deliveries("abc123");
    assert_eq!(log.len(), 8, "{log:?}");
    assert!(log.iter().all(|d| d.acknowledged() && d.attempt == 1 && d.error.is_none()));
    assert_eq!(log.iter().filter(|d| d.hook_id == created["id"].as_u64().unwrap()).count(), 1);
    assert_eq!(log.iter().filter(|d| d.hook_id == all["id"].as_u64().unwrap()).count(), 7);
    assert_eq!(rx.hits().len(), 8);
}

#[tokio::test]
async fn product_and_customer_changes_fire_their_hooks() {
    let s = demo().await;
    let rx = Receiver::ok().await;
    hook(&s, "store/product/*", &rx.url("/p"), json!({})).await;
    hook(&s, "store/customer/*", &rx.url("/c"), json!({})).await;

    let p = s.post("/products", json!({ "name": "Hook Spoon", "price": "3", "categories": [19], "type": "physical", "availability": "available", "weight": 1 })).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let pid = p.json()["id"].as_u64().unwrap();
    check_payload(&s, &rx.wait_for(1).await[0], "store/product/created", "product", pid);
    assert_eq!(s.token_call("v2", Method::PUT, &format!("/products/{pid}"), Some(json!({ "price": 4 }))).await.status, StatusCode::OK);
    check_payload(&s, &rx.wait_for(2).await[1], "store/product/updated", "product", pid);
    assert_eq!(s.delete(&format!("/products/{pid}")).await.status, StatusCode::NO_CONTENT);
    check_payload(&s, &rx.wait_for(3).await[2], "store/product/deleted", "product", pid);

    let c = s.post("/customers", json!({ "first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com" })).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let cid = c.json()["id"].as_u64().unwrap();
    check_payload(&s, &rx.wait_for(4).await[3], "store/customer/created", "customer", cid);
    assert_eq!(s.put(&format!("/customers/{cid}"), json!({ "company": "Navy" })).await.status, StatusCode::OK);
    check_payload(&s, &rx.wait_for(5).await[4], "store/customer/updated", "customer", cid);
    assert_eq!(s.token_call("v2", Method::DELETE, &format!("/customers/{cid}"), None).await.status, StatusCode::NO_CONTENT);
    check_payload(&s, &rx.wait_for(6).await[5], "store/customer/deleted", "customer", cid);

    // Reads and writes to other resources fire nothing.
    s.get("/products/77").await;
    s.post("/brands", json!({ "name": "Hooked" })).await;
    logged(&s, "abc123", 6).await;
    settle(&s).await;
    assert_eq!(s.sim.webhook_deliveries("abc123").len(), 6);
    assert_eq!(rx.hits().len(), 6);
}

#[tokio::test]
async fn inactive_hooks_do_not_fire_and_other_stores_are_separate() {
    let other = StoreConfig { hash: "other1".into(), api_token: "t-other".into(), ..StoreConfig::default() };
    let s = start(vec![StoreConfig::default(), other]).await;
    let rx = Receiver::ok().await;
    let quiet = Receiver::ok().await;
    let off = hook(&s, "store/order/created", &quiet.url("/off"), json!({ "is_active": false })).await;
    hook(&s, "store/order/created", &rx.url("/on"), json!({})).await;
    // A hook of another store on the same receiver.
    let a = answer(
        s.client
            .post(s.url("/stores/other1/v3/hooks"))
            .header("X-Auth-Token", "t-other")
            .json(&json!({ "scope": "store/order/created", "destination": quiet.url("/other") })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["store_hash"], "other1");

    s.post("/orders", order_body()).await;
    rx.wait_for(1).await;
    logged(&s, "abc123", 1).await;
    settle(&s).await;
    assert!(quiet.hits().is_empty());
    let log = s.sim.webhook_deliveries("abc123");
    assert_eq!(log.len(), 1);
    assert_ne!(log[0].hook_id, off["id"].as_u64().unwrap());
    assert!(s.sim.webhook_deliveries("other1").is_empty());

    // Switched on, it fires.
    let on = v3(&s, Method::PUT, &format!("/hooks/{}", off["id"]), Some(json!({ "is_active": true }))).await;
    assert_eq!(on.status, StatusCode::OK);
    s.post("/orders", order_body()).await;
    quiet.wait_for(1).await;
    rx.wait_for(2).await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_three_attempts_on_the_scaled_schedule() {
    let s = demo().await;
    let r = s.client.put(s.url("/_sim/stores/abc123/webhooks")).json(&json!({ "time_scale": 0.001 })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["webhook_time_scale"], 0.001);
    let rx = Receiver::start(RxState { script: [500, 503].into(), ..RxState::default() }).await;
    let h = hook(&s, "store/order/created", &rx.url("/flaky"), json!({})).await;
    let o = s.post("/orders", order_body()).await.json();
    let hits = rx.wait_for(3).await;
    assert!(hits.iter().all(|h| h.body == hits[0].body), "retries carry the same payload (and hash)");
    check_payload(&s, &hits[0], "store/order/created", "order", o["id"].as_u64().unwrap());

    logged(&s, "abc123", 3).await;
    let log: Vec<Value> = s.client.get(s.url("/_sim/stores/abc123/webhooks/deliveries")).send().await.unwrap().json().await.unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    for (i, (d, status)) in log.iter().zip([500, 503, 200]).enumerate() {
        assert_eq!(d["hook_id"], h["id"]);
        assert_eq!(d["scope"], "store/order/created");
        assert_eq!(d["object_id"], o["id"]);
        assert_eq!(d["attempt"], i + 1);
        assert_eq!(d["status"], status);
        assert_eq!(d["error"], Value::Null);
    }
    // Retries go out 60 s and 180 s (scaled: 60 ms, 180 ms) after the first attempt, not
    // before (a millisecond of slack for the log's rounding).
    let at = |i: usize| log[i]["at"].as_i64().unwrap();
    assert!(at(1) - at(0) >= 59, "{log:?}");
    assert!(at(2) - at(0) >= 179, "{log:?}");
    // Still active after a success.
    assert_eq!(v3(&s, Method::GET, &format!("/hooks/{}", h["id"]), None).await.json()["data"]["is_active"], true);
}

#[tokio::test]
async fn a_receiver_always_failing_deactivates_the_hook_after_twelve_attempts() {
    let s = demo().await;
    assert!(s.sim.set_webhook_time_scale("abc123", 0.00002));
    assert!(!s.sim.set_webhook_time_scale("abc123", -1.0));
    assert!(!s.sim.set_webhook_time_scale("nope", 1.0));
    let rx = Receiver::start(RxState { fallback: Some(500), ..RxState::default() }).await;
    // A destination nobody listens on: connection errors count as failures too. The
    // port is held (bound, not listening: connections refused) so nothing takes it.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let closed = held.local_addr().unwrap();
    let failing = hook(&s, "store/customer/created", &rx.url("/down"), json!({})).await;
    let refused = hook(&s, "store/customer/*", &format!("http://{closed}/gone"), json!({})).await;
    let c = s.post("/customers", json!({ "first_name": "Al", "last_name": "Turing", "email": "al@example.com" })).await;
    assert_eq!(c.status, StatusCode::CREATED);

    let deadline = Instant::now() + Duration::from_secs(30);
    for h in [&failing, &refused] {
        loop {
            let now = v3(&s, Method::GET, &format!("/hooks/{}", h["id"]), None).await.json();
            if now["data"]["is_active"] == false {
                assert!(now["data"]["updated_at"].as_i64() >= now["data"]["created_at"].as_i64());
                break;
            }
            assert!(Instant::now() < deadline, "hook {} still active: {:?}", h["id"], s.sim.webhook_deliveries("abc123"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let log = s.sim.webhook_deliveries("abc123");
    for (h, what) in [(&failing, "status"), (&refused, "error")] {
        let mine: Vec<_> = log.iter().filter(|d| d.hook_id == h["id"].as_u64().unwrap()).collect();
        assert_eq!(mine.iter().map(|d| d.attempt).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>(), "{mine:?}");
        assert!(mine.iter().all(|d| !d.acknowledged()));
        if what == "status" {
            assert!(mine.iter().all(|d| d.status == Some(500)));
        } else {
            assert!(mine.iter().all(|d| d.status.is_none() && d.error.as_deref() == Some("connection failed")), "{mine:?}");
        }
        // The last retry waited 86,400 s (scaled) after the first attempt.
        let span = mine[11].at.duration_since(mine[0].at).unwrap();
        assert!(span >= Duration::from_millis(1727), "{span:?}");
    }
    assert_eq!(rx.hits().len(), 12);

    // Inactive now: a new customer fires nothing (the next one, to a new hook, is the
    // marker that the first had its chance).
    let n = s.sim.webhook_deliveries("abc123").len();
    s.post("/customers", json!({ "first_name": "B", "last_name": "C", "email": "bc@example.com" })).await;
    let rx2 = Receiver::ok().await;
    hook(&s, "store/customer/created", &rx2.url("/sync"), json!({})).await;
    s.post("/customers", json!({ "first_name": "D", "last_name": "E", "email": "de@example.com" })).await;
    rx2.wait_for(1).await;
    logged(&s, "abc123", n + 1).await;
    assert_eq!(s.sim.webhook_deliveries("abc123").len(), n + 1);
    assert_eq!(rx.hits().len(), 12);
}

#[tokio::test]
async fn deliveries_to_one_slow_receiver_overlap() {
    let s = demo().await;
    // Each callback is held open until the second one arrives: serial deliveries could
    // never get there.
    let rx = Receiver::start(RxState { hold_until: 2, ..RxState::default() }).await;
    hook(&s, "store/product/created", &rx.url("/slow"), json!({})).await;
    for name in ["Slow One", "Slow Two"] {
        let p = s.post("/products", json!({ "name": name, "price": "3", "categories": [19], "type": "physical", "availability": "available", "weight": 1 })).await;
        assert_eq!(p.status, StatusCode::CREATED);
    }
    rx.wait_for(2).await;
    let log = logged(&s, "abc123", 2).await;
    assert_eq!(rx.state.lock().unwrap().max_in_flight, 2);
    assert!(log.iter().all(|d| d.acknowledged()));
}

#[tokio::test]
async fn control_api_store_id_time_scale_and_deliveries() {
    let s = demo().await;
    let c = &s.client;
    let r = c.post(s.url("/_sim/stores")).json(&json!({ "hash": "ids1", "api_token": "t1", "store_id": "1025646", "webhook_time_scale": 0.5 })).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["store_id"], "1025646");
    assert_eq!(v["webhook_time_scale"], 0.5);
    assert_eq!(v["hooks_path"], "/stores/ids1/v3/hooks");
    assert_eq!(s.sim.store("ids1").unwrap().store_id, Some(1025646));
    let info = answer(c.get(s.url("/stores/ids1/v2/store")).header("X-Auth-Token", "t1")).await.json();
    assert_eq!(info["store_id"], 1025646);
    // The seeded id of the demo store is the one `/store` shows.
    let demo_info = s.ok("/store").await;
    assert_eq!(Some(demo_info["store_id"].to_string()), s.sim.store_id("abc123"));

    for bad in [json!({ "hash": "ids2", "store_id": "12a" }), json!({ "hash": "ids2", "store_id": 0 }), json!({ "hash": "ids2", "webhook_time_scale": -1 })] {
        assert_eq!(c.post(s.url("/_sim/stores")).json(&bad).send().await.unwrap().status(), 400, "{bad}");
    }
    for bad in [json!({ "time_scale": -0.5 }), json!({ "time_scale": "fast" }), json!({})] {
        assert_eq!(c.put(s.url("/_sim/stores/ids1/webhooks")).json(&bad).send().await.unwrap().status(), 400, "{bad}");
    }
    assert_eq!(c.put(s.url("/_sim/stores/nope/webhooks")).json(&json!({ "time_scale": 1 })).send().await.unwrap().status(), 404);
    assert_eq!(c.get(s.url("/_sim/stores/nope/webhooks/deliveries")).send().await.unwrap().status(), 404);
    let empty: Value = c.get(s.url("/_sim/stores/ids1/webhooks/deliveries")).send().await.unwrap().json().await.unwrap();
    assert_eq!(empty, json!([]));

    // The configured id is the payload's; hooks survive a data reset.
    let rx = Receiver::ok().await;
    let a = answer(c.post(s.url("/stores/ids1/v3/hooks")).header("X-Auth-Token", "t1").json(&json!({ "scope": "store/order/*", "destination": rx.url("/ids") }))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(c.post(s.url("/_sim/stores/ids1/reset")).send().await.unwrap().status(), 200);
    let o = answer(c.post(s.url("/stores/ids1/v2/orders")).header("X-Auth-Token", "t1").json(&order_body())).await;
    assert_eq!(o.status, StatusCode::CREATED, "{}", o.text);
    let hit = &rx.wait_for(1).await[0];
    assert_eq!(hit.body["store_id"], "1025646");
    assert_eq!(hit.body["producer"], "stores/ids1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log: Value = c.get(s.url("/_sim/stores/ids1/webhooks/deliveries")).send().await.unwrap().json().await.unwrap();
        if !log.as_array().unwrap().is_empty() {
            break log;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["object_id"], o.json()["id"]);
    assert!(log[0]["at"].as_u64().unwrap() > 1_700_000_000_000);
}
