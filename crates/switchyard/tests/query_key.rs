//! An API key the element places in the query string (`authentication: {type:
//! custom, query: {...}}`) is a secret: through the real process, with an element
//! loaded by `--elements-dir` and the most verbose log there is, no log line, no
//! answer and no call log entry holds it, whatever the vendor does with it.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

mod common;

use common::Serve;

const KEY: &str = "KEY-q7Zx-5521";

/// The vendor: answers with the request line in its words (key included, as careless
/// vendors do), fails, or redirects to the same URL it was asked.
async fn vendor(State(seen): State<Arc<Mutex<Vec<String>>>>, method: Method, uri: Uri) -> Response {
    seen.lock().unwrap().push(uri.to_string());
    let key_given = uri.query().unwrap_or("").contains(&format!("api_key={KEY}"));
    match (key_given, uri.path()) {
        (false, _) => (StatusCode::UNAUTHORIZED, Json(json!({"errors": format!("Invalid API key: {method} {uri}")}))).into_response(),
        (true, "/v1/shop.json") => Json(json!({"shop": {}})).into_response(),
        (true, "/v1/orders.json") => Json(json!({"orders": [{"id": 1}]})).into_response(),
        (true, "/v1/orders/1.json") => Json(json!({"order": {"id": 1}})).into_response(),
        (true, "/v1/orders/2.json") => (StatusCode::BAD_REQUEST, Json(json!({"errors": format!("Bad request {uri}")}))).into_response(),
        (true, "/v1/orders/3.json") => (StatusCode::SERVICE_UNAVAILABLE, format!("down for {uri}")).into_response(),
        (true, "/v1/orders/4.json") => (StatusCode::FOUND, [("location", format!("http://10.255.255.1{uri}"))]).into_response(),
        (true, _) => (StatusCode::NOT_FOUND, Json(json!({"errors": format!("No {uri}")}))).into_response(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_api_key_is_in_no_log_answer_or_call_log() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(vendor).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let elements = dir.path().join("elements");
    std::fs::create_dir(&elements).unwrap();
    std::fs::write(elements.join("shapestore.yaml"), include_str!("../../server/tests/elements_shapes/shapestore.yaml")).unwrap();
    let server = Serve::start(
        dir.path(),
        &["--elements-dir", elements.to_str().unwrap(), "--outbound-allow", "127.0.0.1", "--log-format", "json"],
        &[("SWITCHYARD_LOG", "trace")],
    );
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, auth: &str, body: Option<Value>| {
        let mut r = http.request(method, format!("{}{path}", server.base)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let mut answers = Vec::new();

    let config = |key: &str| json!({"element": {"key": "shapestore"}, "name": "q", "configuration": {"base.url": base, "api.key": key}});
    let wrong = call(reqwest::Method::POST, "/instances", &auth, Some(config("KEY-wrong-0000"))).await;
    assert_eq!(wrong.0, reqwest::StatusCode::BAD_REQUEST, "{}", wrong.1);
    answers.push(wrong);
    let (status, created) = call(reqwest::Method::POST, "/instances", &auth, Some(config(KEY))).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_i64().unwrap();
    let hub_auth = format!("{auth}, Element {}", created["token"].as_str().unwrap());
    for (path, status) in [
        ("/hubs/ecommerce/orders", 200),
        ("/hubs/ecommerce/orders/1", 200),
        ("/hubs/ecommerce/orders/2", 400),
        ("/hubs/ecommerce/orders/3", 502),
        ("/hubs/ecommerce/orders/4", 502),
        ("/hubs/ecommerce/orders/5", 404),
    ] {
        let answer = call(reqwest::Method::GET, path, &hub_auth, None).await;
        assert_eq!(answer.0.as_u16(), status, "{path}: {}", answer.1);
        answers.push(answer);
    }
    answers.push(call(reqwest::Method::GET, &format!("/instances/{id}"), &auth, None).await);
    // The call log: every hub call is in it (read until it is; the check call at
    // creation has no instance to be logged under), none with the key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let (_, text) = call(reqwest::Method::GET, &format!("/instances/{id}/logs"), &auth, None).await;
        let entries = serde_json::from_str::<Value>(&text).ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0);
        if entries >= 6 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the call log holds {entries} entries: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let log = server.stop();

    // The vendor did see the key on every call (so there was something to leak).
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 8 && seen.iter().filter(|u| u.contains(KEY)).count() >= 7, "{seen:?}");
    for (status, text) in &answers {
        assert!(!text.contains(KEY), "an answer ({status}) holds the key: {text}");
    }
    assert!(answers.iter().any(|(_, t)| t.contains("api_key=********")), "the vendor's words are kept, masked");
    assert!(!logs.contains(KEY), "the call log holds the key: {logs}");
    // The server log at trace level names the vendor calls, never the key.
    assert!(log.contains("/orders/3.json") || log.contains(&base), "the log shows vendor traffic at all");
    assert!(!log.contains(KEY), "the server log holds the key:\n{}", log.lines().filter(|l| l.contains(KEY)).collect::<Vec<_>>().join("\n"));
    assert!(!log.contains("KEY-wrong-0000"), "the server log holds the refused key");
}
