//! Events through the real process: polling the BigCommerce simulator, signed
//! delivery to a receiver, SIGKILL in the middle of 1,000 deliveries, polling
//! across a restart, and the event log API.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{json, Value};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator};

mod common;

use common::{until, Serve, BIN};

fn start(dir: &std::path::Path) -> Serve {
    let args = ["--outbound-allow", "127.0.0.1", "--event-delivery-concurrency", "4", "--event-delivery-timeout", "1", "--event-retry-base", "0.05"];
    Serve::start(dir, &args, &[])
}

/// Every message received: event id, object id, event type.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String, String)>>>);

impl Receiver {
    fn ids(&self) -> HashSet<String> {
        self.0.lock().unwrap().iter().map(|(e, _, _)| e.clone()).collect()
    }
    /// Distinct event ids per object, for objects first seen after message `since`
    /// (late duplicates of older events carry older objects and are left out).
    fn by_object(&self, since: usize) -> HashMap<String, Vec<String>> {
        let all = self.0.lock().unwrap();
        let before: HashSet<&String> = all[..since].iter().map(|(_, o, _)| o).collect();
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for (event, object, _) in all[since..].iter().filter(|(_, o, _)| !before.contains(o)) {
            out.entry(object.clone()).or_default().insert(event.clone());
        }
        out.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect()
    }
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> &'static str {
    // Slow enough that a kill lands in the middle of the deliveries.
    tokio::time::sleep(Duration::from_millis(15)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let m = &v["message"];
    let e = &m["events"][0];
    r.0.lock().unwrap().push((
        m["eventId"].as_str().unwrap().to_owned(),
        e["objectId"].as_str().unwrap().to_owned(),
        e["eventType"].as_str().unwrap().to_owned(),
    ));
    "ok"
}

const POLLER: &str = r#"{"customers":{"url":"/hubs/ecommerce/customers","idField":"id","datesConfiguration":{
  "updatedDateField":"date_modified","updatedDateFormat":"EEE, dd MMM yyyy HH:mm:ss Z",
  "createdDateField":"date_created","createdDateFormat":"EEE, dd MMM yyyy HH:mm:ss Z"}}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_across_sigkill_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();

    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}/stores/{}/api/v2", sim_listener.local_addr().unwrap(), bigcommerce::DEMO_STORE_HASH);
    tokio::spawn(bigcommerce::serve(sim_listener, BigCommerceSimulator::demo()));
    let receiver = Receiver::default();
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", hook_listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });

    let server = start(dir.path());
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let api = format!("{}/elements/api-v2", server.base.trim_end_matches("/elements/api-v2"));
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &auth)
        .json(&json!({"element": {"key": "bigcommerce"}, "name": "shop", "configuration": {
            "username": bigcommerce::DEMO_USERNAME, "password": bigcommerce::DEMO_API_TOKEN, "store.url": store_url,
            "event.notification.enabled": true, "event.notification.callback.url": hook,
            "event.notification.signature.key": "s3cret", "event.poller.refresh_interval": "0.02",
            "event.poller.configuration": POLLER}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let instance = created["id"].as_i64().unwrap_or_else(|| panic!("{created}"));

    let customer = |n: usize| json!({"first_name": "F", "last_name": format!("L{n}"), "email": format!("c{n}@example.com")});
    let vendor = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{store_url}{path}")).basic_auth(bigcommerce::DEMO_USERNAME, Some(bigcommerce::DEMO_API_TOKEN))
    };
    // Polling is live once a first change comes through.
    vendor(reqwest::Method::POST, "/customers").json(&customer(0)).send().await.unwrap().error_for_status().unwrap();
    until(Duration::from_secs(60), "the first event", || receiver.ids().len() == 1).await;

    // 1,000 changes; kill -9 while they are being delivered.
    for chunk in (1..=1000).collect::<Vec<_>>().chunks(50) {
        let calls = chunk.iter().map(|n| vendor(reqwest::Method::POST, "/customers").json(&customer(*n)).send());
        for r in futures::future::join_all(calls).await {
            r.unwrap().error_for_status().unwrap();
        }
    }
    until(Duration::from_secs(120), "deliveries under way", || receiver.ids().len() > 150).await;
    server.signal("-KILL");
    let delivered_before_kill = receiver.ids().len();
    assert!(delivered_before_kill < 1001, "the kill landed mid-delivery");

    let server = start(dir.path());
    until(Duration::from_secs(180), "all 1,001 events after the restart", || receiver.ids().len() == 1001).await;
    let by_object = receiver.by_object(0);
    assert_eq!(by_object.len(), 1001, "one event per object");
    assert!(by_object.values().all(|events| events.len() == 1), "polling made no second event for any object");

    // Polling across a restart: 100 changes while the server is down, one event each.
    server.stop();
    let mark = receiver.0.lock().unwrap().len();
    // The 40 seeded customers (never announced) updated, 60 new ones created.
    let announced: HashSet<String> = receiver.0.lock().unwrap().iter().map(|(_, o, _)| o.clone()).collect();
    let listed: Vec<Value> = vendor(reqwest::Method::GET, "/customers?limit=250").send().await.unwrap().json().await.unwrap();
    let seeded: Vec<&Value> = listed.iter().filter(|c| !announced.contains(&c["id"].to_string())).collect();
    assert_eq!(seeded.len(), 40);
    for n in 2001..=2060 {
        vendor(reqwest::Method::POST, "/customers").json(&customer(n)).send().await.unwrap().error_for_status().unwrap();
    }
    for c in seeded {
        let id = c["id"].as_i64().unwrap();
        vendor(reqwest::Method::PUT, &format!("/customers/{id}")).json(&json!({"company": "changed"})).send().await.unwrap().error_for_status().unwrap();
    }
    let server = start(dir.path());
    until(Duration::from_secs(120), "the 100 changes", || receiver.by_object(mark).len() >= 100).await;
    // One more change, so at least one further poll ran over the same window.
    let sentinel: Value = vendor(reqwest::Method::POST, "/customers").json(&customer(3000)).send().await.unwrap().json().await.unwrap();
    let sentinel = sentinel["id"].to_string();
    until(Duration::from_secs(60), "the sentinel", || receiver.by_object(mark).contains_key(&sentinel)).await;
    let changes = receiver.by_object(mark);
    assert_eq!(changes.len(), 101, "the 100 changes and the sentinel, nothing else");
    assert!(changes.values().all(|events| events.len() == 1), "exactly one event per change");
    let kinds: HashMap<String, usize> = {
        let all = receiver.0.lock().unwrap();
        let firsts: HashMap<&String, &String> = all[mark..].iter().filter(|(_, o, _)| changes.contains_key(o)).map(|(e, _, k)| (e, k)).collect();
        firsts.values().fold(HashMap::new(), |mut m, k| {
            *m.entry((*k).clone()).or_default() += 1;
            m
        })
    };
    assert_eq!((kinds.get("CREATED").copied(), kinds.get("UPDATED").copied()), (Some(61), Some(40)), "{kinds:?}");

    // The event log: paged like hub lists, newest first, organization-scoped.
    let api = format!("{}/elements/api-v2", server.base.trim_end_matches("/elements/api-v2"));
    let mut seen = HashSet::new();
    let mut next: Option<String> = None;
    loop {
        let mut req = http.get(format!("{api}/instances/{instance}/events")).header("Authorization", &auth);
        req = match &next {
            Some(t) => req.query(&[("nextPage", t)]),
            None => req.query(&[("pageSize", "400")]),
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        next = r.headers().get("elements-next-page-token").map(|v| v.to_str().unwrap().to_owned());
        let count: usize = r.headers()["elements-returned-count"].to_str().unwrap().parse().unwrap();
        let page: Vec<Value> = r.json().await.unwrap();
        assert_eq!(page.len(), count);
        for e in &page {
            assert!(seen.insert(e["id"].as_str().unwrap().to_owned()), "no event on two pages");
        }
        if next.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 1102);
    let all: Vec<Value> = http.get(format!("{api}/instances/events?pageSize=5")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.len(), 5);
    let one = all[0]["id"].as_str().unwrap();
    let event: Value = http.get(format!("{api}/instances/events/{one}")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(event["instanceId"], instance);
    assert!(event["providerData"].is_string() && event["notifiedData"].is_array(), "{event}");
    assert!(["pending", "delivered"].contains(&event["delivery"]["state"].as_str().unwrap()), "{event}");
    let same: Value = http.get(format!("{api}/instances/{instance}/events/{one}")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(same["id"], event["id"]);
    let r = http.post(format!("{api}/instances/events/{one}/redeliver")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.post(format!("{api}/instances/{instance}/events/redeliver")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Another organization sees none of it.
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["orgs", "create", "other", "--json"])
        .env_remove("SWITCHYARD_MASTER_KEY")
        .output()
        .unwrap();
    let other: Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = other["authorization"].as_str().unwrap();
    for url in [
        format!("{api}/instances/events/{one}"),
        format!("{api}/instances/{instance}/events/{one}"),
        format!("{api}/instances/{instance}/events"),
    ] {
        let r = http.get(&url).header("Authorization", other).send().await.unwrap();
        assert_eq!(r.status(), 404, "{url}");
        let body: Value = r.json().await.unwrap();
        assert!(body["requestId"].is_string() && body["message"].is_string());
    }
    let r = http.post(format!("{api}/instances/events/{one}/redeliver")).header("Authorization", other).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let listed: Vec<Value> = http.get(format!("{api}/instances/events")).header("Authorization", other).send().await.unwrap().json().await.unwrap();
    assert!(listed.is_empty());
    let r = http.get(format!("{api}/instances/events?nextPage=forged.token")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 400);
    server.stop();
}

/// A vendor webhook call is answered only once its event is committed: every call
/// acknowledged before a SIGKILL is delivered after the restart (the receiver is
/// not even up before the kill, so nothing can have gone out before it).
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_webhook_calls_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/stores/{}/v2", sim_listener.local_addr().unwrap(), bigcommerce::DEMO_STORE_HASH);
    tokio::spawn(bigcommerce::serve(sim_listener, BigCommerceSimulator::demo()));
    // The receiver's address exists from the start; it answers only after the restart.
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", hook_listener.local_addr().unwrap());

    let server = start(dir.path());
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let api = format!("{}/elements/api-v2", server.base.trim_end_matches("/elements/api-v2"));
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &auth)
        .json(&json!({"element": {"key": "bigcommerce"}, "name": "hooked", "configuration": {
            "authentication.type": "custom", "oauth.api.key": "c", "oauth.user.token": bigcommerce::DEMO_API_TOKEN,
            "store.url": token_url, "event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.objects": "orders", "event.notification.callback.url": hook}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["id"].is_i64(), "{created}");
    // The vendor's side of the registration: where to call, and the header to echo.
    let hooks: Value = http
        .get(format!("{}/hooks", token_url.replace("/v2", "/v3")))
        .header("X-Auth-Token", bigcommerce::DEMO_API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let destination = hooks["data"][0]["destination"].as_str().unwrap().to_owned();
    let (header, secret) = hooks["data"][0]["headers"].as_object().unwrap().iter().next().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).unwrap();

    let calls = (0..300).map(|n| {
        let body = json!({"scope": "store/order/updated", "store_id": "1", "data": {"type": "order", "id": 100 + n % 20}});
        http.post(&destination).header(&header, &secret).json(&body).send()
    });
    let mut acknowledged = HashSet::new();
    for answer in futures::future::join_all(calls).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        let v: Value = answer.json().await.unwrap();
        acknowledged.insert(v["eventId"].as_str().unwrap().to_owned());
    }
    assert_eq!(acknowledged.len(), 300);
    server.signal("-KILL");

    let receiver = Receiver::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });
    let server = start(dir.path());
    until(Duration::from_secs(120), "every acknowledged call delivered", || receiver.ids().is_superset(&acknowledged)).await;
    server.stop();
}
