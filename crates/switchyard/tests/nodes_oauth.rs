//! OAuth refresh across three `serve` nodes on one PostgreSQL database: 200
//! concurrent hub calls, spread round-robin over the nodes, on a Keap instance
//! whose access token has expired make exactly one call to the Keap simulator's
//! token endpoint, all answer 200, and the instance stays valid.

mod common;

use common::{create_instance, PgDatabase, Serve};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A call to the Keap simulator's control API (`/_sim...`).
async fn control(http: &reqwest::Client, root: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut r = http.request(method, format!("{root}/_sim{path}"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// Refresh-token grants the simulator's token endpoint has answered.
async fn refreshes(http: &reqwest::Client, root: &str) -> u64 {
    control(http, root, reqwest::Method::GET, "/token-calls", None).await["refresh_token"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_refresh_an_expired_keap_token_once() {
    let sandbox = common::Sandbox::start(&[]);
    let keap = sandbox.credentials["keap"].clone();
    let root = keap["baseUrl"].as_str().unwrap().trim_end_matches("/crm").to_owned();
    let db = PgDatabase::create("nodes_oauth").await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();

    // One key file (in the shared working directory) for all three nodes.
    let args = ["--database", db.url.as_str(), "--outbound-allow", "127.0.0.0/8"];
    let nodes: Vec<Serve> = (0..3).map(|_| Serve::start(dir.path(), &args, &[])).collect();
    let caller = nodes[0].stdout.iter().find_map(|v| v["authorization"].as_str()).expect("the first node made the tenant").to_owned();
    assert!(nodes[1..].iter().all(|n| n.stdout.is_empty()), "the later nodes found the tenant in the database");
    let apis: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // Authorize the demo app at the simulator and make the instance through node 0.
    control(&http, &root, reqwest::Method::PUT, "/settings", Some(json!({"auto_approve": true}))).await;
    let client_id = keap["clientId"].as_str().unwrap();
    let authorize = reqwest::Url::parse_with_params(
        keap["authorizeUrl"].as_str().unwrap(),
        &[("client_id", client_id), ("redirect_uri", CALLBACK), ("response_type", "code"), ("scope", "full"), ("state", "s")],
    )
    .unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(authorize).send().await.unwrap();
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let created: Value = create_instance(&http, &apis[0], &caller, &json!({"element": {"key": "infusionsoftcrm"}, "name": "keap", "providerData": {"code": code}, "configuration": {
            "oauth.api.key": client_id,
            "oauth.api.secret": keap["clientSecret"],
            "oauth.callback.url": CALLBACK,
            "infusionsoft.private.key": keap["privateKey"],
            "oauth.token.url": keap["tokenUrl"],
            "base.url": keap["baseUrl"],
        }})).await;
    let instance_id = created["id"].as_i64().unwrap_or_else(|| panic!("{created}"));
    let auth = format!("{caller}, Element {}", created["token"].as_str().unwrap());
    // Every node has read the instance (and its token) once before the expiry.
    for api in &apis {
        let r = http.get(format!("{api}/hubs/crm/ping")).header("Authorization", &auth).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(refreshes(&http, &root).await, 0);

    control(&http, &root, reqwest::Method::POST, &format!("/apps/{client_id}/expire-tokens"), None).await;
    let calls = (0..200).map(|i| {
        let request = http.get(format!("{}/hubs/crm/users?pageSize=1", apis[i % 3])).header("Authorization", &auth);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.text().await.unwrap_or_default())
        }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(refreshes(&http, &root).await, 1, "one refresh for three nodes and 200 calls");

    for api in &apis {
        let instance: Value = http
            .get(format!("{api}/instances/{instance_id}"))
            .header("Authorization", &caller)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(instance["valid"], true, "{instance}");
    }
    for node in nodes {
        node.stop();
    }
}
