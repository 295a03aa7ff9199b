//! Event settings over HTTP: every `event.*` value is checked when it is saved
//! (create, PUT, PATCH, PATCH of one configuration value) and nothing is stored
//! when a check fails; the callback URL is judged at save by what it says by
//! itself and at delivery after DNS; the latest poll shows on the instance and
//! in `/metrics`. The router, the poller and the delivery worker run in this
//! process, the BigCommerce simulator on another loopback port.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::client::VendorClient;
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_engine::{Dispatcher, InstanceLimits, RetryPolicy};
use switchyard_server::caller::hash_secret;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator, Faults};

mod common;

const HASH: &str = bigcommerce::DEMO_STORE_HASH;

struct World {
    state: AppState,
    simulator: BigCommerceSimulator,
    api: String,
    auth: String,
    http: reqwest::Client,
    store_url: String,
    ctx: switchyard_events::Context,
    _dir: tempfile::TempDir,
}

/// The platform's outbound policy is the default one (nothing private, loopback or
/// plain-http), as on a production server; only the vendor calls (to the
/// simulator on loopback) go through a dispatcher that allows loopback.
async fn world() -> World {
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    let simulator = BigCommerceSimulator::demo();
    tokio::spawn(bigcommerce::serve(sim_listener, simulator.clone()));

    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (new_secret(), new_secret());
    store.create_organization("t", &hash_secret(&org_secret), "t@localhost", &hash_secret(&user_secret)).await.unwrap();
    let vault = switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate());
    let mut state = AppState::new(
        store.clone(),
        vault.clone(),
        VendorClient::new(OutboundPolicy::default(), Duration::from_secs(10)),
        Catalog::builtin(),
        vec![9u8; 32],
    );
    // Fast vendor retries: a failing poll fails in milliseconds.
    let retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_vendor_wait: Duration::from_secs(1),
        call_budget: Duration::from_secs(10),
    };
    let vendor_client = VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(10));
    state.engine.vendors = Dispatcher::new(vendor_client, retry, InstanceLimits::new(4));
    let ctx = switchyard_events::Context { store, vault, catalog: state.engine.catalog.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state.clone(), std::future::pending()));
    World {
        state,
        simulator,
        api: format!("http://{addr}/elements/api-v2"),
        auth: format!("User {user_secret}, Organization {org_secret}"),
        http: reqwest::Client::new(),
        store_url: format!("{sim}/stores/{HASH}/api/v2"),
        ctx,
        _dir: dir,
    }
}

impl World {
    fn config(&self, events: Value) -> Value {
        let mut config = json!({
            "username": bigcommerce::DEMO_USERNAME,
            "password": bigcommerce::DEMO_API_TOKEN,
            "store.url": self.store_url,
        });
        config.as_object_mut().unwrap().extend(events.as_object().unwrap().clone());
        config
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", &self.auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn create(&self, events: Value) -> (StatusCode, Value) {
        let body = json!({"element": {"key": "bigcommerce"}, "name": "shop", "configuration": self.config(events)});
        self.send(Method::POST, "/instances", Some(body)).await
    }

    async fn instance(&self, id: i64) -> Value {
        let (status, body) = self.send(Method::GET, &format!("/instances/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn count(&self) -> usize {
        self.send(Method::GET, "/instances", None).await.1.as_array().unwrap().len()
    }
}

/// A 400 in the Cloud Elements shape whose message names `key` and says `allowed`.
#[track_caller]
fn refused(answer: &(StatusCode, Value), key: &str, allowed: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("no message: {body}"));
    assert!(message.contains(key) && message.contains(allowed), "{message}");
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
}

const RANGE: &str = "greater than 0 and at most 1440";

#[tokio::test]
async fn a_poll_interval_out_of_range_is_refused_on_every_save_and_nothing_is_stored() {
    let w = world().await;
    let interval = "event.poller.refresh_interval";
    for bad in [json!("0"), json!(0), json!("-1"), json!(-1), json!("1441"), json!("soon"), json!("NaN")] {
        refused(&w.create(json!({"event.notification.enabled": true, interval: bad})).await, interval, RANGE);
    }
    assert_eq!(w.count().await, 0, "nothing was created");

    // Fractions and the whole range are accepted.
    let (status, created) = w.create(json!({"event.notification.enabled": true, interval: "0.5"})).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let path = format!("/instances/{id}");
    let before = w.instance(id).await;

    refused(&w.send(Method::PATCH, &path, Some(json!({"configuration": {interval: "0"}}))).await, interval, RANGE);
    let put = json!({"name": "shop", "configuration": w.config(json!({"event.notification.enabled": true, interval: -1}))});
    refused(&w.send(Method::PUT, &path, Some(put)).await, interval, RANGE);
    // One configuration value, by its id.
    let (_, values) = w.send(Method::GET, &format!("{path}/configuration"), None).await;
    let config_id = values.as_array().unwrap().iter().find(|c| c["key"] == interval).unwrap()["id"].as_i64().unwrap();
    let one = format!("{path}/configuration/{config_id}");
    refused(&w.send(Method::PATCH, &one, Some(json!({"propertyValue": 0}))).await, interval, RANGE);
    refused(&w.send(Method::PATCH, &one, Some(json!({"propertyValue": "1440.01"}))).await, interval, RANGE);
    let after = w.instance(id).await;
    assert_eq!(after["configuration"], before["configuration"], "nothing was stored");
    assert_eq!(after["updatedDate"], before["updatedDate"]);

    let (status, value) = w.send(Method::PATCH, &one, Some(json!({"propertyValue": 1440}))).await;
    assert_eq!((status, &value["propertyValue"]), (StatusCode::OK, &json!("1440")), "{value}");
    let (status, body) = w.send(Method::PATCH, &path, Some(json!({"configuration": {interval: "0.02"}}))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_event_setting_is_checked_when_saved() {
    let w = world().await;
    // Platform API reference (platform-api.md, "Events"): event.objects chooses among
    // the hub resources the element can watch; event.poller.configuration maps each
    // to a hub list `url`.
    let cases = [
        (json!({"event.poller.configuration": "{\"orders\": 1}"}), "event.poller.configuration", "not valid"),
        (
            json!({"event.poller.configuration": "{\"orders\":{\"url\":\"/v2/orders\"}}"}),
            "event.poller.configuration",
            "hub path",
        ),
        (json!({"event.objects": "orders,coupons"}), "event.objects", "customers, orders, products"),
        (
            json!({"event.objects": "coupons",
                "event.poller.configuration": "{\"orders\":{\"url\":\"/hubs/ecommerce/orders\"}}"}),
            "event.objects",
            "these are: orders",
        ),
        (json!({"event.notification.enabled": "yes"}), "event.notification.enabled", "true or false"),
        (json!({"event.vendor.type": "push"}), "event.vendor.type", "polling or webhook"),
        (json!({"event.notification.callback.url": "not a url"}), "event.notification.callback.url", "URL"),
    ];
    for (events, key, allowed) in &cases {
        refused(&w.create(events.clone()).await, key, allowed);
    }
    assert_eq!(w.count().await, 0, "nothing was created");

    let (status, created) = w.create(json!({})).await;
    assert_eq!(status, 200, "{created}");
    let path = format!("/instances/{}", created["id"]);
    for (events, key, allowed) in &cases {
        refused(&w.send(Method::PATCH, &path, Some(json!({"configuration": events}))).await, key, allowed);
    }
    let after = w.send(Method::GET, &format!("{path}/configuration"), None).await.1;
    assert!(after.as_array().unwrap().iter().all(|c| !c["key"].as_str().unwrap().starts_with("event.")), "{after}");

    // A poller configuration of its own, and objects among its resources.
    let own = json!({"event.poller.configuration": "{\"coupons\":{\"url\":\"/hubs/ecommerce/coupons\"}}", "event.objects": "coupons"});
    let (status, body) = w.send(Method::PATCH, &path, Some(json!({"configuration": own}))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn callback_urls_are_judged_at_save_by_what_they_say_and_at_delivery_after_dns() {
    let w = world().await;
    let url = "event.notification.callback.url";
    let on = |callback: &str| json!({"event.notification.enabled": true, url: callback, "event.vendor.type": "polling"});
    // Wrong by themselves: refused at save.
    for (callback, why) in [
        ("http://127.0.0.1:9/hook", "127.0.0.1 is a private, loopback"),
        ("https://169.254.169.254/latest", "169.254.169.254 is a private, loopback"),
        ("https://[::1]:9/hook", "::1 is a private, loopback"),
        ("http://hooks.example.com/hook", "plain http"),
        ("https://user:pw@hooks.example.com/hook", "credentials"),
    ] {
        refused(&w.create(on(callback)).await, url, why);
    }
    assert_eq!(w.count().await, 0);

    // A name is not resolved at save: where it points now (here, loopback, which this
    // server refuses) may change before the first event.
    let (status, created) = w.create(on("https://localhost:9/hook")).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let patch = json!({"configuration": {url: "https://localhost:10/other"}});
    let (status, body) = w.send(Method::PATCH, &format!("/instances/{id}"), Some(patch)).await;
    assert_eq!(status, 200, "{body}");

    // At delivery the name is resolved and the policy applied: a refusal is a failed
    // attempt, retried on the schedule, and the event log says why.
    let settings = switchyard_events::DeliverySettings {
        retry: switchyard_events::RetryPolicy { base: Duration::from_millis(10), max_attempts: 3, ..Default::default() },
        idle_poll: Duration::from_millis(50),
        ..Default::default()
    };
    let deliverer = switchyard_events::Deliverer::new(w.ctx.clone(), w.state.engine.client.policy().clone(), settings);
    tokio::spawn(deliverer.run(std::future::pending()));
    // An event to deliver: the instance's health message.
    w.state.engine.announce_health(id, false, Some("the vendor refused the credentials")).await;
    let log = format!("/instances/{id}/events");
    let event = common::until_some(Duration::from_secs(20), "every attempt", || async {
        let (_, events) = w.send(Method::GET, &log, None).await;
        events.as_array().and_then(|e| e.first().cloned()).filter(|e| e["delivery"]["state"] == "failed")
    })
    .await;
    assert_eq!(event["delivery"]["attempts"], 3, "retried like any failed attempt: {event}");
    let error = event["delivery"]["lastError"].as_str().unwrap();
    assert!(error.contains("outbound policy") && error.contains("`localhost`"), "{error}");
}

#[tokio::test]
async fn the_latest_poll_shows_on_the_instance_and_in_the_metrics() {
    let w = world().await;
    let events = json!({"event.notification.enabled": true, "event.poller.refresh_interval": "0.005", "event.objects": "orders"});
    let (status, created) = w.create(events).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let nothing_yet = json!({"lastPollAt": null, "lastPollOutcome": null, "lastPollMessage": null});
    assert_eq!(created["events"], nothing_yet);
    assert_eq!(w.instance(id).await["events"], nothing_yet);

    let settings = switchyard_events::PollerSettings { tick: Duration::from_millis(20), ..Default::default() };
    let poller = switchyard_events::Poller::new(w.ctx.clone(), Arc::new(w.state.engine.clone()), settings, None);
    tokio::spawn(poller.run(std::future::pending()));
    let outcome = |wanted: &'static str| {
        let w = &w;
        async move {
            common::until_some(Duration::from_secs(20), &format!("a poll that ended {wanted}"), || async move {
                let events = w.instance(id).await["events"].clone();
                (events["lastPollOutcome"] == wanted).then_some(events)
            })
            .await
        }
    };
    let ok = outcome("ok").await;
    assert!(ok["lastPollMessage"].is_null(), "{ok}");
    let at = ok["lastPollAt"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");

    // The vendor fails every call: the instance says so, with the hub's words.
    w.simulator.set_faults(HASH, Faults { error_rate: 1.0, error_status: Some(503), ..Default::default() });
    let failed = outcome("failed").await;
    let message = failed["lastPollMessage"].as_str().unwrap();
    assert!(message.contains("orders") && message.contains("503"), "{message}");
    assert!(!message.contains(bigcommerce::DEMO_API_TOKEN));

    // It recovers, and the next poll says so.
    w.simulator.set_faults(HASH, Faults::default());
    assert!(outcome("ok").await["lastPollMessage"].is_null());

    let metrics = w.http.get(format!("{}/metrics", w.api.trim_end_matches("/elements/api-v2"))).send().await.unwrap().text().await.unwrap();
    for outcome in ["ok", "failed"] {
        assert!(
            metrics.lines().any(|l| l.starts_with("switchyard_event_polls_total{")
                && l.contains("element=\"bigcommerce\"")
                && l.contains(&format!("outcome=\"{outcome}\""))),
            "{outcome}: {metrics}"
        );
    }
}
