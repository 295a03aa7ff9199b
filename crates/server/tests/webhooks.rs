//! BigCommerce token mode and vendor webhooks over HTTP: the router and the event
//! delivery worker run in this process, the BigCommerce simulator (which registers
//! v3 hooks and calls them on every change) on another loopback port, and a
//! receiver on a third.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::client::VendorClient;
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_server::caller::hash_secret;
use switchyard_server::webhooks::SECRET_HEADER;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator};

mod common;

/// What the receiver got: the message bodies, in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

async fn receive(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    r.0.lock().unwrap().push((headers, serde_json::from_slice(&body).unwrap()));
    "ok"
}

struct World {
    state: AppState,
    simulator: BigCommerceSimulator,
    api: String,
    auth: String,
    http: reqwest::Client,
    sim: String,
    received: Received,
    callback: String,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    let simulator = BigCommerceSimulator::demo();
    tokio::spawn(bigcommerce::serve(sim_listener, simulator.clone()));

    let received = Received::default();
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/hook", hook_listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(received.clone());
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (new_secret(), new_secret());
    store.create_organization("t", &hash_secret(&org_secret), "t@localhost", &hash_secret(&user_secret)).await.unwrap();
    let vault = switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate());
    let catalog = Catalog::builtin();
    let mut state = AppState::new(
        store.clone(),
        vault.clone(),
        VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
        catalog,
        vec![9u8; 32],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    state.engine.public_url = format!("http://{addr}");
    let ctx = switchyard_events::Context { store, vault, catalog: state.engine.catalog.clone() };
    let settings = switchyard_events::DeliverySettings {
        retry: switchyard_events::RetryPolicy { base: Duration::from_millis(20), ..Default::default() },
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let deliverer = switchyard_events::Deliverer::new(ctx, OutboundPolicy::allow_loopback(), settings)
        .enriching_with(Arc::new(state.engine.clone()));
    state.set_event_waker(deliverer.waker());
    tokio::spawn(deliverer.run(std::future::pending()));
    tokio::spawn(switchyard_server::serve(listener, state.clone(), std::future::pending()));

    World {
        state,
        simulator,
        api: format!("http://{addr}/elements/api-v2"),
        auth: format!("User {user_secret}, Organization {org_secret}"),
        http: reqwest::Client::new(),
        sim,
        received,
        callback,
        _dir: dir,
    }
}

const HASH: &str = bigcommerce::DEMO_STORE_HASH;

impl World {
    /// Token mode on the demo store, over `extra`.
    fn token_mode(&self, extra: Value) -> Value {
        let mut config = json!({
            "authentication.type": "custom",
            "oauth.api.key": "client-1",
            "oauth.user.token": bigcommerce::DEMO_API_TOKEN,
            "store.url": format!("{}/stores/{HASH}/v2", self.sim),
        });
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config
    }

    fn with_events(&self, extra: Value) -> Value {
        let mut events = json!({
            "event.notification.enabled": true,
            "event.vendor.type": "webhook",
            "event.notification.callback.url": self.callback,
            "event.notification.signature.key": "k3y",
        });
        events.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.token_mode(events)
    }

    async fn send(&self, method: reqwest::Method, path: &str, auth: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn create(&self, config: Value) -> (StatusCode, Value) {
        let body = json!({"element": {"key": "bigcommerce"}, "name": "shop", "configuration": config});
        self.send(reqwest::Method::POST, "/instances", &self.auth, Some(body)).await
    }

    /// The hooks the simulated store has, as the vendor lists them.
    async fn vendor_hooks(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/stores/{HASH}/v3/hooks", self.sim))
            .header("X-Auth-Token", bigcommerce::DEMO_API_TOKEN)
            .header("X-Auth-Client", "client-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["data"].as_array().unwrap().clone()
    }

    async fn until_received(&self, n: usize) -> Vec<(HeaderMap, Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received.0.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages arrived", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn token_mode_needs_its_own_credentials_and_reaches_the_vendor() {
    let w = world().await;
    // Basic mode (the default) still needs the legacy account.
    let (status, body) = w.create(json!({"store.url": format!("{}/stores/{HASH}/api/v2", w.sim)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let m = body["message"].as_str().unwrap();
    assert!(m.contains("username") && m.contains("password") && !m.contains("oauth.user.token"), "{m}");
    // Token mode needs the client id and token, and not the legacy account.
    let (status, body) = w.create(json!({"authentication.type": "custom", "store.url": format!("{}/stores/{HASH}/v2", w.sim)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let m = body["message"].as_str().unwrap();
    assert!(m.contains("oauth.api.key") && m.contains("oauth.user.token") && !m.contains("username"), "{m}");
    let (status, body) = w.create(w.token_mode(json!({"authentication.type": "token"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("authentication.type"), "{body}");
    // A token the vendor refuses is a 400 with the vendor's words.
    let (status, body) = w.create(w.token_mode(json!({"oauth.user.token": "wrong"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["providerMessage"].as_str().unwrap().contains("X-Auth-Token"), "{body}");

    let (status, created) = w.create(w.token_mode(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["configuration"]["oauth.user.token"], "********");
    assert_eq!(created["configuration"]["authentication.type"], "custom");
    assert_eq!(created["element"]["authentication"]["type"], "custom");
    let auth = format!("{}, Element {}", w.auth, created["token"].as_str().unwrap());
    let (status, orders) = w.send(reqwest::Method::GET, "/hubs/ecommerce/orders?pageSize=3", &auth, None).await;
    assert_eq!(status, StatusCode::OK, "{orders}");
    assert_eq!(orders.as_array().unwrap().len(), 3);
    // The secret never comes back.
    assert!(!created.to_string().contains(bigcommerce::DEMO_API_TOKEN));
}

#[tokio::test]
async fn webhooks_need_token_mode_and_watchable_objects() {
    let w = world().await;
    let basic = json!({"username": bigcommerce::DEMO_USERNAME, "password": bigcommerce::DEMO_API_TOKEN,
        "store.url": format!("{}/stores/{HASH}/api/v2", w.sim), "event.notification.enabled": true,
        "event.vendor.type": "webhook", "event.notification.callback.url": w.callback});
    let (status, body) = w.create(basic).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("authentication.type=custom"), "{body}");
    let (status, body) = w.create(w.with_events(json!({"event.objects": "orders,coupons"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("coupons"), "{body}");
    // Nothing was registered by the refused attempts.
    assert!(w.vendor_hooks().await.is_empty());
}

#[tokio::test]
async fn vendor_changes_arrive_enriched_and_signed() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let auth = format!("{}, Element {}", w.auth, created["token"].as_str().unwrap());

    let hooks = w.vendor_hooks().await;
    let mut scopes: Vec<&str> = hooks.iter().map(|h| h["scope"].as_str().unwrap()).collect();
    scopes.sort();
    assert_eq!(scopes, ["store/customer/*", "store/order/*", "store/product/*"]);
    for h in &hooks {
        let destination = h["destination"].as_str().unwrap();
        assert!(destination.starts_with(&format!("{}/events/bigcommerce/", w.api)), "{destination}");
        assert!(h["headers"][SECRET_HEADER].is_string(), "{h}");
        assert_eq!(h["is_active"], true);
    }

    // A change at the vendor (through the hub) comes back as a signed, enriched event.
    let order = json!({"customer_id": 0, "billing_address": {"first_name": "Ada", "last_name": "L", "street_1": "1 Main",
        "city": "Austin", "state": "Texas", "zip": "78701", "country": "United States", "email": "ada@example.com"},
        "products": [{"name": "Widget", "quantity": 1, "price_inc_tax": 10, "price_ex_tax": 10}]});
    let (status, made) = w.send(reqwest::Method::POST, "/hubs/ecommerce/orders", &auth, Some(order)).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let order_id = made["id"].as_i64().unwrap();
    let got = w.until_received(1).await;
    let (headers, body) = &got[0];
    let message = &body["message"];
    assert_eq!(message["instanceId"], id);
    assert_eq!(message["elementKey"], "bigcommerce");
    assert_eq!(message["events"][0]["eventType"], "CREATED");
    assert_eq!(message["events"][0]["objectType"], "orders");
    assert_eq!(message["events"][0]["objectId"], order_id.to_string());
    assert_eq!(message["raw"]["id"], order_id, "the record, read through the hub: {message}");
    assert_eq!(message["raw"]["objectType"], "orders");
    assert_eq!(message["raw"]["billing_address"]["email"], "ada@example.com");
    assert!(headers.get("elements-webhook-signature").unwrap().to_str().unwrap().starts_with("sha256="));
    assert!(headers.get("webhook-signature").unwrap().to_str().unwrap().starts_with("v1,"));

    let (status, _) =
        w.send(reqwest::Method::PATCH, &format!("/hubs/ecommerce/orders/{order_id}"), &auth, Some(json!({"staff_notes": "rush"}))).await;
    assert_eq!(status, StatusCode::OK);
    let got = w.until_received(2).await;
    assert_eq!(got[1].1["message"]["events"][0]["eventType"], "UPDATED");
    assert_eq!(got[1].1["message"]["raw"]["staff_notes"], "rush");

    // The log keeps the vendor's call as it came and the record as it was sent. An
    // event is NOTIFIED once the receiver's answer is back, just after the receiver
    // has recorded the message: wait for that.
    let log = common::until_some(Duration::from_secs(20), "both events NOTIFIED", || async {
        let (status, log) = w.send(reqwest::Method::GET, &format!("/instances/{id}/events"), &w.auth, None).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let log = log.as_array().unwrap().clone();
        (log.len() >= 2 && log.iter().all(|e| e["status"] == "NOTIFIED")).then_some(log)
    })
    .await;
    assert_eq!(log.len(), 2);
    for e in &log {
        assert_eq!(e["status"], "NOTIFIED", "{e}");
        assert!(e["providerData"].as_str().unwrap().contains("store/order/"), "{e}");
    }

    // The record read for the first attempt is kept with the event: a redelivery sends
    // the same record, not the vendor's thin call again.
    let first = log.iter().find(|e| e["notifiedData"].to_string().contains("CREATED")).unwrap()["id"].as_str().unwrap().to_owned();
    let (status, _) = w.send(reqwest::Method::POST, &format!("/instances/events/{first}/redeliver"), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);
    let got = w.until_received(3).await;
    assert_eq!(got[2].1["message"]["raw"]["billing_address"]["email"], "ada@example.com", "{}", got[2].1);
}

#[tokio::test]
async fn the_intake_refuses_strangers_and_stores_nothing_for_them() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "customers"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let hooks = w.vendor_hooks().await;
    assert_eq!(hooks.len(), 1);
    let destination = hooks[0]["destination"].as_str().unwrap().to_owned();
    let secret = hooks[0]["headers"][SECRET_HEADER].as_str().unwrap().to_owned();
    let call = json!({"scope": "store/customer/updated", "store_id": "1", "producer": format!("stores/{HASH}"),
        "created_at": 1_700_000_000, "hash": "x", "data": {"type": "customer", "id": 1}});
    let post = |url: String, secret: Option<&str>, body: String| {
        let mut r = w.http.post(url).header("Content-Type", "application/json").body(body);
        if let Some(s) = secret {
            r = r.header(SECRET_HEADER, s);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(post(destination.clone(), None, call.to_string()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(destination.clone(), Some("wrong"), call.to_string()).await, StatusCode::UNAUTHORIZED);
    let (base, key) = destination.rsplit_once('/').unwrap();
    assert_eq!(post(format!("{base}/{key}x"), Some(&secret), call.to_string()).await, StatusCode::NOT_FOUND);
    let other_element = destination.replace("/bigcommerce/", "/infusionsoftcrm/");
    assert_eq!(post(other_element, Some(&secret), call.to_string()).await, StatusCode::NOT_FOUND);
    assert_eq!(post(destination.clone(), Some(&secret), "not json".into()).await, StatusCode::BAD_REQUEST);
    assert_eq!(post(destination.clone(), Some(&secret), json!({"data": {"id": 1}}).to_string()).await, StatusCode::BAD_REQUEST);
    let (_, log) = w.send(reqwest::Method::GET, &format!("/instances/{id}/events"), &w.auth, None).await;
    assert_eq!(log, json!([]), "nothing stored for refused calls");

    // A disabled instance's calls are acknowledged and dropped.
    let (status, _) = w.send(reqwest::Method::DELETE, &format!("/instances/{id}/enabled"), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(post(destination.clone(), Some(&secret), call.to_string()).await, StatusCode::OK);
    let (_, log) = w.send(reqwest::Method::GET, &format!("/instances/{id}/events"), &w.auth, None).await;
    assert_eq!(log, json!([]), "nothing stored for a disabled instance");
    let (status, _) = w.send(reqwest::Method::PUT, &format!("/instances/{id}/enabled"), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(post(destination, Some(&secret), call.to_string()).await, StatusCode::OK);
    let got = w.until_received(1).await;
    assert_eq!(got[0].1["message"]["events"][0]["objectType"], "customers");
    assert_eq!(got[0].1["message"]["raw"]["id"], 1);
    assert!(got[0].1["message"]["raw"]["email"].is_string(), "enriched: {}", got[0].1);
}

#[tokio::test]
async fn hooks_follow_the_configuration_and_go_with_the_instance() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let first = w.vendor_hooks().await;
    assert_eq!(first.len(), 1);
    let old_destination = first[0]["destination"].as_str().unwrap().to_owned();
    let old_secret = first[0]["headers"][SECRET_HEADER].as_str().unwrap().to_owned();

    // A change that leaves the wanted hooks as they are keeps them (no churn at the vendor).
    let rename = json!({"name": "renamed"});
    let (status, body) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(rename)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.vendor_hooks().await, first, "the same hook, untouched");

    // Watching more: registered anew, the old hook removed, its address dead.
    let patch = json!({"configuration": {"event.objects": "orders,products"}});
    let (status, body) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hooks = w.vendor_hooks().await;
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|h| h["destination"] != old_destination.as_str()));
    let call = json!({"scope": "store/order/created", "data": {"type": "order", "id": 100}});
    let r = w.http.post(&old_destination).header(SECRET_HEADER, &old_secret).json(&call).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Events off: no hooks. On again: back.
    let off = json!({"configuration": {"event.notification.enabled": false}});
    let (status, _) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(off)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(w.vendor_hooks().await.is_empty());
    let on = json!({"configuration": {"event.notification.enabled": true}});
    let (status, _) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(on)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.vendor_hooks().await.len(), 2);

    // Deleting the instance removes them at the vendor.
    let (status, _) = w.send(reqwest::Method::DELETE, &format!("/instances/{id}"), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(w.vendor_hooks().await.is_empty());
}

#[tokio::test]
async fn hooks_the_vendor_deactivated_or_lost_are_mended() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders,customers"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 0, "all is well");
    let vendor = |method: reqwest::Method, path: String| {
        w.http.request(method, format!("{}/stores/{HASH}/v3/hooks{path}", w.sim)).header("X-Auth-Token", bigcommerce::DEMO_API_TOKEN)
    };
    let hooks = w.vendor_hooks().await;
    let (first, second) = (hooks[0]["id"].as_i64().unwrap(), hooks[1]["id"].as_i64().unwrap());

    // The vendor turned one off (as BigCommerce does after failed calls): turned back on.
    let r = vendor(reqwest::Method::PUT, format!("/{first}")).json(&json!({"is_active": false})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 1);
    let hooks = w.vendor_hooks().await;
    assert!(hooks.iter().all(|h| h["is_active"] == true), "{hooks:?}");
    assert_eq!(hooks.len(), 2);

    // One is gone: both registered anew at a new address, the survivor removed.
    let r = vendor(reqwest::Method::DELETE, format!("/{second}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let old_destination = hooks[0]["destination"].as_str().unwrap().to_owned();
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 1);
    let hooks = w.vendor_hooks().await;
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert!(hooks.iter().all(|h| h["id"] != first && h["id"] != second && h["destination"] != old_destination.as_str()));
    let mut scopes: Vec<&str> = hooks.iter().map(|h| h["scope"].as_str().unwrap()).collect();
    scopes.sort();
    assert_eq!(scopes, ["store/customer/*", "store/order/*"]);
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 0, "mended for good");

    // Vendor trouble while reading a hook (one 500) is not a lost hook: nothing is
    // registered anew, and the next check finds all well.
    let faults = json!({"error_rate": 1.0, "error_status": 500, "max_errors": 1});
    let r = w.http.put(format!("{}/_sim/stores/{HASH}/faults", w.sim)).json(&faults).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 0);
    assert_eq!(w.vendor_hooks().await, hooks, "the same hooks");
    assert_eq!(switchyard_engine::webhooks::check_hooks_once(&w.state.engine).await, 0);
}

#[tokio::test]
async fn a_new_token_registers_the_hooks_with_it() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let old = w.vendor_hooks().await;
    // The store's token is rotated at the vendor (the old one stops working)...
    w.simulator.add_store(bigcommerce::StoreConfig { api_token: "rotated-token".into(), ..Default::default() });
    // ...and given to the instance: checked, and the hooks registered with it.
    let patch = json!({"configuration": {"oauth.user.token": "rotated-token"}});
    let (status, body) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = w.http.get(format!("{}/stores/{HASH}/v3/hooks", w.sim)).header("X-Auth-Token", "rotated-token").send().await.unwrap();
    let hooks: Value = r.json().await.unwrap();
    let hooks = hooks["data"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_ne!(hooks[0]["destination"], old[0]["destination"]);
}

impl World {
    /// The database as another node opens it (its own pool and node id).
    async fn other_node(&self) -> switchyard_store::Store {
        let url = format!("sqlite://{}?mode=rwc", self._dir.path().join("t.db").display());
        switchyard_store::Store::open(&url).await.unwrap()
    }

    /// Another server on the same database, as a second process would be: its own
    /// pool, intake and group commit. Answers its API base.
    async fn second_server(&self) -> String {
        let store = self.other_node().await;
        let state = AppState::new(
            store,
            self.state.engine.vault.clone(),
            VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
            Catalog::builtin(),
            vec![9u8; 32],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
        format!("http://{addr}/elements/api-v2")
    }
}

/// BigCommerce may call a hook twice with one change (at-least-once delivery): the
/// repeat is recognised by the values the element's `events.webhooks.digest` names
/// (scope, data.type, data.id, created_at, producer; the callback fields of
/// /work/shared/specs/bigcommerce/webhooks.v3.yml, info.description) and answered
/// with the first call's eventId, storing nothing, also when both arrive at once and
/// at two servers sharing the database.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_vendor_sends_again_is_answered_with_the_first_event() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "customers"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let hooks = w.vendor_hooks().await;
    let destination = hooks[0]["destination"].as_str().unwrap().to_owned();
    let secret = hooks[0]["headers"][SECRET_HEADER].as_str().unwrap().to_owned();
    let call = |created_at: i64, hash: &str| {
        json!({"producer": format!("stores/{HASH}"), "hash": hash, "created_at": created_at, "store_id": "1",
            "scope": "store/customer/updated", "data": {"type": "customer", "id": 1}})
    };
    let post = |url: String, body: Value| {
        let r = w.http.post(url).header(SECRET_HEADER, &secret).json(&body);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            body["eventId"].as_str().unwrap_or_else(|| panic!("no eventId: {body}")).to_owned()
        }
    };

    // Sent again, one after the other; `hash` is not part of what identifies a call.
    let first = post(destination.clone(), call(1_700_000_000, "a")).await;
    assert_eq!(post(destination.clone(), call(1_700_000_000, "a")).await, first);
    assert_eq!(post(destination.clone(), call(1_700_000_000, "b")).await, first);
    // Another second is another change of the record.
    let second = post(destination.clone(), call(1_700_000_001, "a")).await;
    assert_ne!(second, first);
    // The same call three times at once: twice to this server, once to another on
    // the same database (as a second process would be). Several changes, since which
    // calls share a commit depends on timing.
    let other = destination.replace(&w.api, &w.second_server().await);
    assert_ne!(other, destination);
    let mut at_once = Vec::new();
    for created_at in 1_700_000_002..1_700_000_010 {
        let answers = futures::future::join_all([
            post(destination.clone(), call(created_at, "a")),
            post(destination.clone(), call(created_at, "a")),
            post(other.clone(), call(created_at, "a")),
        ])
        .await;
        assert!(answers.iter().all(|a| *a == answers[0]), "identical calls at once are one event: {answers:?}");
        at_once.push(answers[0].clone());
    }

    let (status, log) = w.send(reqwest::Method::GET, &format!("/instances/{id}/events"), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let mut ids: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = vec![first.as_str(), second.as_str()];
    want.extend(at_once.iter().map(String::as_str));
    want.sort_unstable();
    assert_eq!(ids, want, "one event per change: {log}");
}

/// The intake checks the address, the secret and the declared size before it reads
/// a body: a stranger's (or an oversize) call is answered without its body ever
/// being sent, so nobody can make the server read and hold megabytes (before, every
/// body up to the API's 10 MiB was read first). Ids that cannot name a record are
/// refused at once rather than failing every delivery attempt.
#[tokio::test]
async fn the_intake_answers_before_reading_bodies_it_will_not_take() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "customers"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let hooks = w.vendor_hooks().await;
    let destination = url::Url::parse(hooks[0]["destination"].as_str().unwrap()).unwrap();
    let secret = hooks[0]["headers"][SECRET_HEADER].as_str().unwrap().to_owned();
    let addr = destination.socket_addrs(|| None).unwrap()[0];

    // Only the head: a 5 MB body is declared and never sent.
    let head_only = |secret: Option<&str>| {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n{}\r\n",
            destination.path(),
            secret.map(|s| format!("{SECRET_HEADER}: {s}\r\n")).unwrap_or_default()
        );
        async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(head.as_bytes()).await.unwrap();
            let mut answer = [0u8; 12];
            tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut answer)).await.expect("answered before the body").unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    assert_eq!(head_only(None).await, "HTTP/1.1 401");
    assert_eq!(head_only(Some("wrong")).await, "HTTP/1.1 401");
    assert_eq!(head_only(Some(&secret)).await, "HTTP/1.1 413");

    // A chunked body (no length declared) that runs past 256 KiB.
    let padding = "x".repeat(300 * 1024);
    let big = format!(r#"{{"scope":"store/customer/updated","data":{{"type":"customer","id":1}},"pad":"{padding}"}}"#);
    let chunks = futures::stream::iter(big.into_bytes().chunks(8192).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = w.http.post(destination.as_str()).header(SECRET_HEADER, &secret).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Ids that are not one path segment.
    for bad in [json!(".."), json!("a/b"), json!(".")] {
        let call = json!({"scope": "store/customer/updated", "data": {"type": "customer", "id": bad}});
        let r = w.http.post(destination.as_str()).header(SECRET_HEADER, &secret).json(&call).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("cannot name a record"), "{body}");
    }
    let (_, log) = w.send(reqwest::Method::GET, &format!("/instances/{id}/events"), &w.auth, None).await;
    assert_eq!(log, json!([]), "nothing stored");
}

/// A node's hold on an instance's hooks lasts five minutes unless given back
/// (longer than any registration), so another node takes over only from a dead
/// holder, and only then.
#[tokio::test]
async fn a_hold_on_an_instances_hooks_runs_out_after_five_minutes() {
    let w = world().await;
    let other_node = w.other_node().await;
    let before = chrono::Utc::now().timestamp_millis();
    let held = switchyard_engine::webhooks::try_hold(&w.state.engine, 42).await.unwrap().expect("nobody holds it");
    let after = chrono::Utc::now().timestamp_millis();
    const FIVE_MINUTES: i64 = 5 * 60 * 1000;
    let take = |at: i64| other_node.take_lease("webhooks:42", at, at + 1000);
    assert!(!take(before + FIVE_MINUTES - 1).await.unwrap(), "held until five minutes after it was taken");
    assert!(take(after + FIVE_MINUTES).await.unwrap(), "free from then");
    // The first holder's drop gives back only its own lease: the other node keeps it.
    drop(held);
    assert!(switchyard_engine::webhooks::try_hold(&w.state.engine, 42).await.unwrap().is_none());

    // A hold dropped (its change done) is given back at once, not left to run out.
    let held = switchyard_engine::webhooks::try_hold(&w.state.engine, 43).await.unwrap().expect("nobody holds it");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(!other_node.take_lease("webhooks:43", now, now + 1000).await.unwrap(), "held");
    drop(held);
    common::until_some(Duration::from_secs(10), "the dropped hold given back", || async {
        let now = chrono::Utc::now().timestamp_millis();
        other_node.take_lease("webhooks:43", now, now + 1000).await.unwrap().then_some(())
    })
    .await;
}

/// A change of an instance's hooks while another node holds them (registering,
/// checking) waits for that hold to end, rather than failing at once.
#[tokio::test]
async fn a_change_waits_for_another_nodes_brief_hold_on_the_hooks() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().unwrap();
    let other_node = w.other_node().await;
    let now = chrono::Utc::now().timestamp_millis();
    assert!(other_node.take_lease(&format!("webhooks:{id}"), now, now + 1500).await.unwrap());
    let patch = json!({"configuration": {"event.objects": "orders,products"}});
    let started = Instant::now();
    let (status, body) = w.send(reqwest::Method::PATCH, &format!("/instances/{id}"), &w.auth, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(1000), "it waited for the hold: {:?}", started.elapsed());
    assert_eq!(w.vendor_hooks().await.len(), 2);
}

/// What the server logs, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// What this thread logs from now until the guard drops: on a test's one-thread
    /// runtime, everything the server does.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A hook the vendor cannot remove when its instance goes is logged for the
/// operator (the instance is deleted all the same); one the vendor no longer has
/// (404) is what removing wanted, and is not.
#[tokio::test]
async fn a_hook_the_vendor_cannot_remove_is_logged_and_one_already_gone_is_not() {
    let (logs, _logging) = Logs::capture();
    let w = world().await;
    const FAILED: &str = "removing a vendor webhook failed";

    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let hook = w.vendor_hooks().await[0]["id"].as_i64().unwrap();
    let r = w
        .http
        .delete(format!("{}/stores/{HASH}/v3/hooks/{hook}", w.sim))
        .header("X-Auth-Token", bigcommerce::DEMO_API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = w.send(reqwest::Method::DELETE, &format!("/instances/{}", created["id"]), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!logs.text().contains(FAILED), "{}", logs.text());

    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let faults = json!({"error_rate": 1.0, "error_status": 500});
    let r = w.http.put(format!("{}/_sim/stores/{HASH}/faults", w.sim)).json(&faults).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = w.send(reqwest::Method::DELETE, &format!("/instances/{}", created["id"]), &w.auth, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = logs.text();
    let line = text.lines().find(|l| l.contains(FAILED)).unwrap_or_else(|| panic!("no warning in {text}"));
    assert!(line.contains("WARN") && line.contains("bigcommerce"), "{line}");
}

/// The periodic check mends hooks by itself (and says so, once), on one node per
/// period: the node that checks holds the period, another takes over only once it
/// has run out (a dead node's).
#[tokio::test]
async fn the_periodic_check_mends_hooks_holding_the_period() {
    let (logs, _logging) = Logs::capture();
    const MENDED: &str = "vendor webhooks turned back on or registered anew";
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let hook = w.vendor_hooks().await[0]["id"].as_i64().unwrap();
    let r = w
        .http
        .put(format!("{}/stores/{HASH}/v3/hooks/{hook}", w.sim))
        .header("X-Auth-Token", bigcommerce::DEMO_API_TOKEN)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let period = Duration::from_secs(1);
    tokio::spawn(switchyard_engine::webhooks::check_hooks(w.state.engine.clone(), period, std::future::pending()));
    common::until_some(Duration::from_secs(10), "the hook turned back on by the periodic check", || async {
        (w.vendor_hooks().await[0]["is_active"] == true).then_some(())
    })
    .await;
    let mended_at = Instant::now();
    let other_node = w.other_node().await;
    let now = chrono::Utc::now().timestamp_millis();
    let take = |at: i64| other_node.take_lease(switchyard_engine::webhooks::CHECK_LEASE, at, at + 1000);
    assert!(!take(now).await.unwrap(), "the period is the checking node's");
    // Two more periods with nothing to mend: said once.
    common::until(Duration::from_secs(5), "two more periods", || mended_at.elapsed() > period * 2 + period / 2).await;
    assert_eq!(logs.text().matches(MENDED).count(), 1, "{}", logs.text());
    // Its hold ends with its period (here as if the node had died): another node takes over.
    let now = chrono::Utc::now().timestamp_millis();
    assert!(take(now + 2 * period.as_millis() as i64 + 100).await.unwrap());
}

/// The intake takes a call of exactly its 256 KiB limit (one byte more is a 413),
/// refuses an empty object id, and a change it does not read back through the hub
/// (a deletion) goes out with the vendor's own object of the call.
#[tokio::test]
async fn the_intake_takes_calls_up_to_its_limit_and_sends_deletions_as_called() {
    let w = world().await;
    let (status, created) = w.create(w.with_events(json!({"event.objects": "orders"}))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let hook = w.vendor_hooks().await.remove(0);
    let (destination, secret) = (hook["destination"].as_str().unwrap().to_owned(), hook["headers"][SECRET_HEADER].as_str().unwrap().to_owned());
    let post = |body: Vec<u8>| {
        w.http.post(&destination).header(SECRET_HEADER, &secret).header("content-type", "application/json").body(body).send()
    };
    const LIMIT: usize = 256 * 1024;
    let sized = |id: i64, len: usize| {
        let mut body = json!({"scope": "store/order/deleted", "data": {"type": "order", "id": id}}).to_string().into_bytes();
        body.resize(len, b' ');
        body
    };
    assert_eq!(post(sized(7, LIMIT + 1)).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    let empty_id = json!({"scope": "store/order/deleted", "data": {"type": "order", "id": ""}}).to_string().into_bytes();
    let r = post(empty_id).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let refused = r.text().await.unwrap();
    assert!(refused.contains("No object id at /data/id"), "{refused}");
    assert_eq!(post(sized(424242, LIMIT)).await.unwrap().status(), StatusCode::OK);
    let got = w.until_received(1).await;
    let message = &got[0].1["message"];
    assert_eq!(message["events"][0]["eventType"], "DELETED", "{message}");
    assert_eq!(message["raw"], json!({"type": "order", "id": 424242, "objectType": "orders"}), "{message}");
}
