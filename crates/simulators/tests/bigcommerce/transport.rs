//! Auth, store addressing, paging, rate limits and faults.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchyard_simulators::bigcommerce::{Faults, Quota, StoreConfig, DEMO_API_TOKEN};

use super::common::{demo, start};
use super::spec;

#[tokio::test]
async fn time_and_store_validate_against_the_spec() {
    let s = demo().await;
    let t = s.ok("/time").await;
    spec::check("store_information.v2.yml", "/time", "get", "200", &t);
    let now = chrono::Utc::now().timestamp();
    assert!((t["time"].as_i64().unwrap() - now).abs() < 5);

    let store = s.ok("/store").await;
    spec::check("store_information.v2.yml", "/store", "get", "200", &store);
    assert_eq!(store["id"], "abc123");
    assert_eq!(store["currency"], "USD");
}

#[tokio::test]
async fn legacy_basic_auth() {
    let s = demo().await;
    // No credentials.
    let r = s.client.get(format!("{}/time", s.base("abc123"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["status"], 401);
    // Wrong token, wrong user.
    s.call_as("abc123", "sandbox", "nope", Method::GET, "/time", None).await.error(401);
    s.call_as("abc123", "someone", DEMO_API_TOKEN, Method::GET, "/time", None).await.error(401);
    // Right ones.
    assert_eq!(s.call_as("abc123", "sandbox", DEMO_API_TOKEN, Method::GET, "/time", None).await.status, 200);
    // The token-mode header does not authenticate the legacy base.
    let r = s.client.get(format!("{}/time", s.base("abc123"))).header("X-Auth-Token", DEMO_API_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn token_mode_auth() {
    let s = demo().await;
    let url = s.url("/stores/abc123/v2/orders?limit=1");
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s.client.get(&url).header("X-Auth-Token", "bad").header("X-Auth-Client", "c").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["status"], 401);
    let r = s.client.get(&url).header("X-Auth-Token", DEMO_API_TOKEN).header("X-Auth-Client", "client-id").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // Links name the base the request came through.
    let link = v[0]["products"]["url"].as_str().unwrap();
    assert!(link.starts_with(&s.url("/stores/abc123/v2/orders/")), "{link}");
}

#[tokio::test]
async fn unknown_store_and_path_are_404_arrays() {
    let s = demo().await;
    s.call_as("nope", "sandbox", DEMO_API_TOKEN, Method::GET, "/time", None).await.error(404);
    s.get("/no_such_thing").await.error(404);
    s.get("/orders/999999").await.error(404);
    s.get("/orders/abc").await.error(404);
    let r = s.client.get(s.url("/elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A known path with a verb it does not support.
    s.call(Method::POST, "/order_statuses", Some(serde_json::json!({}))).await.error(405);
}

#[tokio::test]
async fn stores_are_separate_and_seeded_deterministically() {
    let other = StoreConfig { hash: "xyz789".into(), username: "u2".into(), api_token: "t2".into(), seed_orders: 7, seed_customers: 3, seed_products: 4, ..StoreConfig::default() };
    let s = start(vec![StoreConfig::default(), other.clone()]).await;
    let a = s.call_as("xyz789", "u2", "t2", Method::GET, "/orders/count", None).await.json();
    assert_eq!(a["count"], 7);
    // Demo credentials do not open the other store.
    s.call_as("xyz789", "sandbox", DEMO_API_TOKEN, Method::GET, "/time", None).await.error(401);
    assert_eq!(s.count("/orders/count").await, 120);
    assert_eq!(s.count("/customers/count").await, 40);
    assert_eq!(s.count("/products/count").await, 30);

    // The same configuration gives the same data, in another simulator.
    let s2 = start(vec![StoreConfig::default()]).await;
    let one = s.get("/orders?limit=250").await.text;
    let two = s2.get("/orders?limit=250").await.text;
    let strip = |t: &str, addr: &str| t.replace(addr, "HOST");
    assert_eq!(strip(&one, &s.addr.to_string()), strip(&two, &s2.addr.to_string()));
}

#[tokio::test]
async fn paging_limits_and_empty_lists() {
    let s = demo().await;
    let p1 = s.ok("/orders").await;
    assert_eq!(p1.as_array().unwrap().len(), 50, "default limit is 50");
    let p = s.ok("/orders?limit=7&page=2").await;
    let ids: Vec<i64> = p.as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    let first = s.ok("/orders?limit=250").await;
    let all: Vec<i64> = first.as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(all.len(), 120);
    assert_eq!(ids, all[7..14].to_vec());
    // Past the end and empty collections: 204 with no body.
    let r = s.get("/orders?page=99").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    assert!(r.header("content-type").is_none());
    // Over the maximum: 413 in the error array shape.
    s.get("/orders?limit=251").await.error(413);
    s.get("/customers?limit=1000").await.error(413);
    assert_eq!(s.ok("/orders?limit=250").await.as_array().unwrap().len(), 120);
    // Garbage paging is a 400.
    s.get("/orders?page=x").await.error(400);
    // `.json` suffix, as the vendor accepts.
    assert_eq!(s.ok("/orders.json?limit=2").await.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn quota_headers_and_429() {
    let cfg = StoreConfig { quota: Some(Quota { requests: 5, window: Duration::from_millis(1000) }), ..StoreConfig::default() };
    let s = start(vec![cfg]).await;
    let started = Instant::now();
    for left in (0..5).rev() {
        let r = s.get("/time").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-rate-limit-requests-left"), Some(left.to_string().as_str()));
        assert_eq!(r.header("x-rate-limit-requests-quota"), Some("5"));
        assert_eq!(r.header("x-rate-limit-time-window-ms"), Some("1000"));
        let reset: u64 = r.header("x-rate-limit-time-reset-ms").unwrap().parse().unwrap();
        assert!(reset <= 1000);
    }
    let r = s.get("/time").await;
    let e = r.error(429);
    assert!(e["message"].as_str().unwrap().contains("quota"));
    assert_eq!(r.header("x-rate-limit-requests-left"), Some("0"));
    let retry: u64 = r.header("x-retry-after").unwrap().parse().unwrap();
    assert!((1..=1).contains(&retry), "retry after {retry}");
    // A new window opens after the reset; poll with a deadline.
    let deadline = started + Duration::from_secs(5);
    loop {
        let r = s.get("/time").await;
        if r.status == 200 {
            assert_eq!(r.header("x-rate-limit-requests-left"), Some("4"));
            break;
        }
        assert!(Instant::now() < deadline, "quota never reset");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Without a quota: no rate-limit headers.
    s.sim.set_quota("abc123", None);
    assert!(s.get("/time").await.header("x-rate-limit-requests-left").is_none());
}

#[tokio::test]
async fn request_counts() {
    let s = demo().await;
    assert_eq!(s.sim.request_count("abc123"), 0);
    s.get("/time").await;
    s.call_as("abc123", "x", "y", Method::GET, "/time", None).await;
    assert_eq!(s.sim.request_count("abc123"), 2);
    assert_eq!(s.sim.request_count("nope"), 0);
}

#[tokio::test]
async fn fault_errors_and_latency() {
    let s = demo().await;
    s.sim.set_faults("abc123", Faults { error_rate: 1.0, ..Faults::default() });
    let r = s.get("/orders").await;
    assert!(r.status.is_server_error());
    r.error(r.status.as_u16());

    s.sim.set_faults("abc123", Faults { latency: Some(Duration::from_millis(300)), ..Faults::default() });
    let t = Instant::now();
    assert_eq!(s.get("/time").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // About half fail at 0.5.
    s.sim.set_faults("abc123", Faults { error_rate: 0.5, ..Faults::default() });
    let mut failed = 0;
    for _ in 0..60 {
        if s.get("/time").await.status.is_server_error() {
            failed += 1;
        }
    }
    assert!((10..=50).contains(&failed), "{failed} of 60 failed");
}

#[tokio::test]
async fn fault_dropped_connections() {
    let s = demo().await;
    s.sim.set_faults("abc123", Faults { drop_rate: 1.0, ..Faults::default() });
    let r = s.client.get(format!("{}/time", s.base("abc123"))).basic_auth("sandbox", Some(DEMO_API_TOKEN)).send().await;
    let e = r.expect_err("the connection should have been dropped");
    assert!(!e.is_status());
    // Other stores and the control API keep working.
    s.sim.set_faults("abc123", Faults::default());
    assert_eq!(s.get("/time").await.status, 200);
}

#[tokio::test]
async fn fault_slow_body() {
    let s = demo().await;
    s.sim.set_faults("abc123", Faults { slow_body: Some(Duration::from_millis(400)), ..Faults::default() });
    let t = Instant::now();
    let r = s.client.get(format!("{}/orders?limit=20", s.base("abc123"))).basic_auth("sandbox", Some(DEMO_API_TOKEN)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let head = t.elapsed();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 20);
    assert!(t.elapsed() >= Duration::from_millis(350), "body took {:?}", t.elapsed());
    assert!(head < Duration::from_millis(350), "headers took {head:?}");
}

#[tokio::test]
async fn router_mounts_in_another_server() {
    let sim = switchyard_simulators::bigcommerce::BigCommerceSimulator::demo();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().merge(sim.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/stores/abc123/api/v2/orders/count"))
        .basic_auth("sandbox", Some(DEMO_API_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Dropping still fails the request there, by aborting the body.
    sim.set_faults("abc123", Faults { drop_rate: 1.0, ..Faults::default() });
    let r = reqwest::Client::new().get(format!("http://{addr}/stores/abc123/api/v2/time")).basic_auth("sandbox", Some(DEMO_API_TOKEN)).send().await;
    match r {
        Err(_) => {}
        Ok(resp) => assert!(resp.bytes().await.is_err()),
    }
}
