//! `switchyard migrate-db`: an installation built on SQLite through the running
//! server (tenant, instances with sealed secrets, webhook events and their
//! deliveries, call logs, an idempotency key) is copied into a new PostgreSQL
//! database, and `serve` on PostgreSQL with the same key file answers the same
//! API: the same caller authenticates, secrets still open (hub calls work), events
//! and logs are listed, new rows get ids past the copied ones. A second copy into
//! the now non-empty database is refused. And every table of either schema is
//! either copied or explicitly left out.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{json, Value};
use switchyard_store::{Store, COPIED_TABLES, NOT_COPIED_TABLES};

mod common;

use common::{create_instance, until, PgDatabase, Sandbox, Serve, BIN};

#[tokio::test(flavor = "multi_thread")]
async fn every_table_is_either_copied_or_explicitly_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
    let db = PgDatabase::create("migrate_schema").await;
    let postgres = Store::open(&db.url).await.unwrap();
    for (backend, store) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let tables = store.table_names().await.unwrap();
        for table in &tables {
            assert!(
                COPIED_TABLES.contains(&table.as_str()) || NOT_COPIED_TABLES.contains(&table.as_str()),
                "the {backend} schema has a table {table} that migrate-db neither copies (COPIED_TABLES) \
                 nor leaves out on purpose (NOT_COPIED_TABLES): list it in crates/store/src/copy.rs"
            );
        }
        for table in COPIED_TABLES {
            assert!(tables.iter().any(|t| t == table), "{table} is copied but not in the {backend} schema");
        }
    }
    postgres.close().await;
}

/// Every delivery the callback receives: (eventId, the whole message).
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>);

async fn receive(State(r): State<Receiver>, body: Bytes) -> &'static str {
    let v: Value = serde_json::from_slice(&body).unwrap();
    r.0.lock().unwrap().push(v["message"]["eventId"].as_str().unwrap().to_owned());
    "ok"
}

async fn get(http: &reqwest::Client, url: &str, auth: &str) -> Value {
    let r = http.get(url).header("Authorization", auth).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "GET {url}: {status} {body}");
    body
}

fn migrate(from: &str, to: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["migrate-db", "--from", from, "--to", to, "--batch", "7"])
        .env_remove("SWITCHYARD_DATABASE_URL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_installation_moved_to_postgres_answers_the_same() {
    let sandbox = Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let allow = ["--outbound-allow", "127.0.0.0/8"];

    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The installation, on SQLite.
    let server = Serve::start(dir.path(), &allow, &[]);
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let api = server.base.clone();
    let basic: Value = create_instance(&http, &api, &auth, &json!({"element": {"key": "bigcommerce"}, "name": "basic", "tags": ["a"], "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}})).await;
    let store_url = bc["tokenStoreUrl"].as_str().unwrap();
    let api_token = bc["apiToken"].as_str().unwrap();
    let hooked: Value = create_instance(&http, &api, &auth, &json!({"element": {"key": "bigcommerce"}, "name": "hooked", "configuration": {
            "authentication.type": "custom", "oauth.api.key": "k", "oauth.user.token": api_token,
            "store.url": store_url, "event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.objects": "orders", "event.notification.callback.url": callback,
            "event.notification.signature.key": "sig-key"}})).await;
    let basic_auth = format!("{auth}, Element {}", basic["token"].as_str().unwrap_or_else(|| panic!("{basic}")));
    let hooked_id = hooked["id"].as_i64().unwrap_or_else(|| panic!("{hooked}"));

    // Call logs and an idempotency key.
    let orders = get(&http, &format!("{api}/hubs/ecommerce/orders?pageSize=2"), &basic_auth).await;
    let created = http
        .post(format!("{api}/hubs/ecommerce/customers"))
        .header("Authorization", &basic_auth)
        .header("Idempotency-Key", "create-once")
        .json(&json!({"first_name": "Ada", "last_name": "L", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let created: Value = created.json().await.unwrap();

    // Vendor webhook calls: events and deliveries (and webhook digests).
    let hooks: Value = http
        .get(format!("{}/hooks", store_url.replace("/v2", "/v3")))
        .header("X-Auth-Token", api_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook = &hooks["data"][0];
    let destination = hook["destination"].as_str().unwrap_or_else(|| panic!("{hooks}"));
    let (header, secret) = hook["headers"].as_object().unwrap().iter().next().unwrap();
    let order_id = orders[0]["id"].as_i64().unwrap();
    let mut event_ids = Vec::new();
    for n in 0..5u64 {
        let body = json!({"created_at": 1_700_000_000 + n, "store_id": "1", "producer": "stores/abc123",
            "scope": "store/order/updated", "hash": format!("{n:040x}"), "data": {"type": "order", "id": order_id}});
        let r = http.post(destination).header(header, secret.as_str().unwrap()).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        event_ids.push(v["eventId"].as_str().unwrap().to_owned());
    }
    until(Duration::from_secs(60), "the five deliveries", || receiver.0.lock().unwrap().len() >= 5).await;

    // Common resources, of the organization and of an instance.
    let contact = json!({"fields": [{"path": "id", "type": "string"}, {"path": "address.city", "type": "string"}]});
    for path in ["/organizations/objects/myContact/definitions".to_owned(), format!("/instances/{hooked_id}/objects/myContact/definitions")] {
        let r = http.post(format!("{api}{path}")).header("Authorization", &auth).json(&contact).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let before_definitions = get(&http, &format!("{api}/organizations/objects/definitions"), &auth).await;
    let before_instance_definitions = get(&http, &format!("{api}/instances/{hooked_id}/objects/definitions"), &auth).await;

    // A Connect session, with a sealed signature key.
    let connect = json!({"elements": ["bigcommerce"], "name": "moved", "callbackUrl": "https://hooks.example.com/x", "signatureKey": "sig"});
    let r = http.post(format!("{api}/connect/sessions")).header("Authorization", &auth).json(&connect).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let session_id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let before_session = get(&http, &format!("{api}/connect/sessions/{session_id}"), &auth).await;

    let before_instances = get(&http, &format!("{api}/instances"), &auth).await;
    let before_events = get(&http, &format!("{api}/instances/events"), &auth).await;
    // The call log is written in batches by its own task: wait for both calls.
    let logs_url = format!("{api}/instances/{}/logs", basic["id"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let before_logs = loop {
        let logs = get(&http, &logs_url, &auth).await;
        if logs.as_array().is_some_and(|calls| calls.len() >= 2) {
            break logs;
        }
        assert!(std::time::Instant::now() < deadline, "the two vendor calls in the log: {logs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let before_config = get(&http, &format!("{api}/instances/{hooked_id}/configuration"), &auth).await;
    server.stop();

    // The move.
    let db = PgDatabase::create("migrate").await;
    let from = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    let out = migrate(&from, &db.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "migrate-db failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    for table in COPIED_TABLES {
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap_or_else(|| panic!("no count for {table}: {stdout}"));
        let n: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(n[1], n[2], "{line}");
    }
    let count = |table: &str| -> i64 {
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(count("instances"), 2);
    assert_eq!(count("events"), 5);
    assert_eq!(count("event_deliveries"), 5);
    assert!(count("instance_configuration") > 0 && count("vendor_calls") >= 2 && count("idempotency_keys") == 1);
    assert!(count("meta") >= 2, "the paging key and the key canary");
    assert_eq!(count("event_webhooks"), 1);
    assert_eq!(count("object_definitions"), 2);
    assert_eq!(count("connect_sessions"), 1);

    // A second copy into the filled database is refused, and changes nothing.
    let again = migrate(&from, &db.url);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("not empty"), "{err}");

    // The same API on PostgreSQL, with the same key file (serve's working directory).
    let server = Serve::start(dir.path(), &[&["--database", db.url.as_str()][..], &allow[..]].concat(), &[]);
    assert!(server.stdout.is_empty(), "no new tenant on a copied installation: {:?}", server.stdout);
    let api = server.base.clone();
    assert_eq!(get(&http, &format!("{api}/instances"), &auth).await, before_instances);
    assert_eq!(get(&http, &format!("{api}/instances/events"), &auth).await, before_events);
    assert_eq!(get(&http, &format!("{api}/instances/{}/logs", basic["id"]), &auth).await, before_logs);
    assert_eq!(get(&http, &format!("{api}/instances/{hooked_id}/configuration"), &auth).await, before_config);
    assert_eq!(get(&http, &format!("{api}/organizations/objects/definitions"), &auth).await, before_definitions);
    assert_eq!(get(&http, &format!("{api}/instances/{hooked_id}/objects/definitions"), &auth).await, before_instance_definitions);
    assert_eq!(get(&http, &format!("{api}/connect/sessions/{session_id}"), &auth).await, before_session);
    // The identity sequence follows the copied ids.
    let r = http.post(format!("{api}/connect/sessions")).header("Authorization", &auth).json(&connect).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["id"].as_i64(), Some(session_id + 1));
    // Sealed secrets open: the hub signs in at the vendor with the copied password.
    assert_eq!(get(&http, &format!("{api}/hubs/ecommerce/orders?pageSize=2"), &basic_auth).await, orders);
    // The idempotency key came along: the same create answers the same record.
    let replay: Value = http
        .post(format!("{api}/hubs/ecommerce/customers"))
        .header("Authorization", &basic_auth)
        .header("Idempotency-Key", "create-once")
        .json(&json!({"first_name": "Ada", "last_name": "L", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay, created);
    for id in &event_ids {
        get(&http, &format!("{api}/instances/events/{id}"), &auth).await;
    }
    // Ids continue past the copied ones.
    let third: Value = create_instance(&http, &api, &auth, &json!({"element": {"key": "bigcommerce"}, "name": "third", "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}})).await;
    assert!(third["id"].as_i64().unwrap_or_else(|| panic!("{third}")) > hooked_id);
    // A new vendor call on the moved installation is stored and delivered.
    let body = json!({"created_at": 1_800_000_000, "store_id": "1", "producer": "stores/abc123",
        "scope": "store/order/updated", "hash": "f".repeat(40), "data": {"type": "order", "id": order_id}});
    let hook_on_pg = destination.replace(
        destination.split("/elements/api-v2").next().unwrap(),
        api.split("/elements/api-v2").next().unwrap(),
    );
    let r = http.post(&hook_on_pg).header(header, secret.as_str().unwrap()).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    until(Duration::from_secs(60), "the delivery on PostgreSQL", || receiver.0.lock().unwrap().len() >= 6).await;
    server.stop();
}
