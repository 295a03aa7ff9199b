//! The `/_sim` control API.

use reqwest::Method;
use serde_json::{json, Value};

use super::common::demo;

#[tokio::test]
async fn add_store_set_faults_quota_and_read_counts() {
    let s = demo().await;
    let c = &s.client;
    assert_eq!(c.get(s.url("/_sim/health")).send().await.unwrap().status(), 200);

    let r = c
        .post(s.url("/_sim/stores"))
        .json(&json!({ "hash": "qa1", "username": "qa", "api_token": "qa-token", "seed_orders": 3, "seed_customers": 2, "seed_products": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["legacy_base_path"], "/stores/qa1/api/v2");
    assert_eq!(s.sim.store("qa1").unwrap().seed_orders, 3);
    let a = s.call_as("qa1", "qa", "qa-token", Method::GET, "/orders/count", None).await;
    assert_eq!(a.json()["count"], 3);

    let list: Value = c.get(s.url("/_sim/stores")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Quota through the control API.
    let r = c.put(s.url("/_sim/stores/qa1/quota")).json(&json!({ "requests": 2, "window_ms": 60000 })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..2 {
        assert_eq!(s.call_as("qa1", "qa", "qa-token", Method::GET, "/time", None).await.status, 200);
    }
    let a = s.call_as("qa1", "qa", "qa-token", Method::GET, "/time", None).await;
    a.error(429);
    assert!(a.header("x-retry-after").unwrap().parse::<u64>().unwrap() > 1);
    let r = c.put(s.url("/_sim/stores/qa1/quota")).json(&Value::Null).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.call_as("qa1", "qa", "qa-token", Method::GET, "/time", None).await.status, 200);

    // Faults.
    let r = c.put(s.url("/_sim/stores/qa1/faults")).json(&json!({ "error_rate": 1.0 })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.call_as("qa1", "qa", "qa-token", Method::GET, "/time", None).await.status.is_server_error());
    assert_eq!(s.sim.store("qa1").unwrap().faults.error_rate, 1.0);
    let r = c.put(s.url("/_sim/stores/qa1/faults")).json(&json!({ "error_rate": 3 })).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c.put(s.url("/_sim/stores/qa1/faults")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Request counts.
    let v: Value = c.get(s.url("/_sim/stores/qa1/requests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["count"], s.sim.request_count("qa1"));
    assert_eq!(v["count"], 6);

    // Reset puts the seed back.
    s.call_as("qa1", "qa", "qa-token", Method::DELETE, "/orders", None).await;
    assert_eq!(s.call_as("qa1", "qa", "qa-token", Method::GET, "/orders", None).await.status, 204);
    assert_eq!(c.post(s.url("/_sim/stores/qa1/reset")).send().await.unwrap().status(), 200);
    assert_eq!(s.call_as("qa1", "qa", "qa-token", Method::GET, "/orders/count", None).await.json()["count"], 3);

    assert_eq!(c.delete(s.url("/_sim/stores/qa1")).send().await.unwrap().status(), 204);
    assert_eq!(c.get(s.url("/_sim/stores/qa1")).send().await.unwrap().status(), 404);
    assert_eq!(c.post(s.url("/_sim/stores")).json(&json!({ "hash": "" })).send().await.unwrap().status(), 400);
}
