//! `switchyard serve` as a process: first start, callers, elements, health,
//! the sandbox, and a graceful stop on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{Serve, BIN};

/// Starts `serve` on a free loopback port and waits until it listens.
fn start(dir: &std::path::Path, extra: &[&str]) -> Serve {
    Serve::start(dir, extra, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_credentials_and_the_api_answers_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox"]);
    let tenant = server.stdout.iter().find(|v| v.get("authorization").is_some()).expect("first tenant printed").clone();
    let auth = tenant["authorization"].as_str().unwrap().to_owned();
    let sandbox = server.stdout.iter().find(|v| v.get("sandbox").is_some()).expect("sandbox credentials printed").clone();
    let api = format!("{}/elements/api-v2", server.base.trim_end_matches('/').trim_end_matches("/elements/api-v2"));
    let http = reqwest::Client::new();

    // No or wrong credentials: 401 in the Cloud Elements shape, with a request id.
    let r = http.get(format!("{api}/elements")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["elements-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["requestId"], id);
    assert!(body["message"].is_string() && body.get("providerMessage").is_none());
    let wrong = auth.replace("User ", "User x");
    let r = http.get(format!("{api}/elements")).header("Authorization", wrong).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // The catalog.
    let r = http.get(format!("{api}/elements")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("elements-request-id"));
    let list: Value = r.json().await.unwrap();
    let bc = list.as_array().unwrap().iter().find(|e| e["key"] == "bigcommerce").unwrap();
    assert_eq!(bc["id"], 274);
    assert_eq!(bc["authentication"]["type"], "basic");

    for key in ["bigcommerce", "274"] {
        let def: Value = http.get(format!("{api}/elements/{key}")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
        let param = |k: &str| def["configuration"].as_array().unwrap().iter().find(|p| p["key"] == k).unwrap().clone();
        assert_eq!(param("password")["name"], "API Token");
        assert_eq!(param("password")["type"], "PASSWORD");
        assert_eq!(param("store.url")["name"], "API Path");
        // Under --sandbox the simulator is the element's default store.
        assert_eq!(param("store.url")["defaultValue"], sandbox["sandbox"]["bigcommerce"]["storeUrl"]);
        let resources = def["resources"].as_array().unwrap();
        assert!(resources.iter().any(|r| r["method"] == "PATCH" && r["path"] == "/hubs/ecommerce/orders/{id}" && r["vendorMethod"] == "PUT"));
    }
    let meta: Value = http.get(format!("{api}/elements/bigcommerce/metadata")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["events"]["supported"], true);

    let r = http.get(format!("{api}/elements/nope")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{api}/no/such/route")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("elements-request-id"));

    // Sandbox credentials for authenticated callers only.
    let r = http.get(format!("{api}/sandbox")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let creds: Value = http.get(format!("{api}/sandbox")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(creds, sandbox["sandbox"]);
    // The Keap simulator runs in the process too, and its app is in the credentials.
    let keap_base = creds["keap"]["baseUrl"].as_str().unwrap().to_owned();
    assert!(keap_base.starts_with("http://127.0.0.1:") && keap_base.ends_with("/crm"));
    assert_eq!(creds["keap"]["clientId"], "sandbox-keap-client");
    let keap_health = http.get(format!("{}/_sim/health", keap_base.trim_end_matches("/crm"))).send().await.unwrap();
    assert_eq!(keap_health.status(), 200);

    // The platform API's own OpenAPI document, public like any API reference.
    let doc: Value = http.get(format!("{api}/docs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], "/elements/api-v2");
    assert!(doc["paths"]["/instances/{id}/configuration/{configId}"]["patch"].is_object());

    // Health.
    let root = api.trim_end_matches("/elements/api-v2");
    assert_eq!(http.get(format!("{root}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{root}/readyz")).send().await.unwrap().status(), 200);

    let log = server.stop();
    let secrets = [tenant["organization"]["secret"].as_str().unwrap(), tenant["user"]["secret"].as_str().unwrap()];
    for s in secrets {
        assert!(!log.contains(s), "a secret reached the log");
    }

    // A restart on the same database prints no new tenant and keeps the old one working.
    let server = start(dir.path(), &[]);
    assert!(server.stdout.iter().all(|v| v.get("authorization").is_none()));
    let r = http.get(format!("{}/elements/api-v2/elements", server.base.trim_end_matches("/elements/api-v2"))).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{}/elements/api-v2/sandbox", server.base.trim_end_matches("/elements/api-v2"))).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 404, "no sandbox without --sandbox");
    let log = server.stop();
    for s in secrets {
        assert!(!log.contains(s), "a secret reached the log of a later start");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_validate_in_order_store_secrets_sealed_and_stay_in_their_organization() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox"]);
    let tenant = server.stdout.iter().find(|v| v.get("authorization").is_some()).unwrap().clone();
    let auth = tenant["authorization"].as_str().unwrap().to_owned();
    let bc = server.stdout.iter().find(|v| v.get("sandbox").is_some()).unwrap()["sandbox"]["bigcommerce"].clone();
    let api = server.base.clone();
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let (http, api, auth) = (http.clone(), api.clone(), auth.clone());
        async move { http.post(format!("{api}/instances")).header("Authorization", auth).json(&body).send().await.unwrap() }
    };
    let good = |name: &str, tags: &[&str]| {
        serde_json::json!({"element": {"key": "bigcommerce"}, "name": name, "tags": tags, "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}})
    };

    // Every bad input is a 400 (or 404/415/413) and stores nothing.
    let missing = post(serde_json::json!({"element": {"key": "bigcommerce"}, "name": "x",
        "configuration": {"username": "", "password": "", "store.url": ""}})).await;
    assert_eq!(missing.status(), 400);
    let msg = missing.json::<Value>().await.unwrap()["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("username") && msg.contains("password") && msg.contains("store.url"), "{msg}");

    let mut bad = good("x", &[]);
    bad["configuration"]["store.url"] = "not a url".into();
    assert_eq!(post(bad).await.status(), 400);
    let mut bad = good("x", &[]);
    bad["configuration"]["event.notification.enabled"] = "maybe".into();
    assert_eq!(post(bad).await.status(), 400);

    let mut private = good("x", &[]);
    private["configuration"]["store.url"] = "http://10.1.2.3/stores/abc123/api/v2".into();
    let r = post(private).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("not allowed"));

    let mut wrong = good("x", &[]);
    wrong["configuration"]["password"] = "wrong-token".into();
    let r = post(wrong).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["providerMessage"].is_string(), "the vendor's words: {body}");
    assert!(!body.to_string().contains("wrong-token"));

    let r = post(serde_json::json!({"element": {"key": "nope"}, "name": "x"})).await;
    assert_eq!(r.status(), 404);
    let r = http.post(format!("{api}/instances")).header("Authorization", &auth)
        .header("Content-Type", "application/json").body("{\"name\": ").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("line 1"));
    let r = http.post(format!("{api}/instances")).header("Authorization", &auth).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let big = vec![b' '; 11 * 1024 * 1024];
    // Its own client: the server answers 413 without reading the body and then
    // closes that connection, which a pooled client could otherwise pick up again.
    let r = reqwest::Client::new().post(format!("{api}/instances")).header("Authorization", &auth)
        .header("Content-Type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);

    let list: Value = http.get(format!("{api}/instances")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing half-written");

    // A good one: token once, secrets masked, the configuration listed.
    let r = post(good("shop", &["eu", "big"])).await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["configuration"]["password"], "********");
    assert_eq!(created["configuration"]["username"], bc["username"]);
    assert_eq!(created["element"]["key"], "bigcommerce");
    assert_eq!(created["valid"], true);
    assert_eq!(created["disabled"], false);
    assert_eq!(created["user"]["emailAddress"], tenant["user"]["emailAddress"]);
    assert!(created["user"]["firstName"].is_string() && created["user"]["lastName"].is_string());
    let got: Value = http.get(format!("{api}/instances/{id}")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["configuration"]["password"], "********");
    assert!(got.get("token").is_none(), "the token is shown once");
    let config: Value = http.get(format!("{api}/instances/{id}/configuration")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    let password = config.as_array().unwrap().iter().find(|c| c["key"] == "password").unwrap();
    assert_eq!(password["propertyValue"], "********");
    assert!(password["id"].is_i64());

    // Tags filter; the Element token names the instance.
    post(good("other", &["us"])).await;
    let eu: Value = http.get(format!("{api}/instances?tags[]=eu")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(eu.as_array().unwrap().len(), 1);
    assert_eq!(eu[0]["id"], id);
    let by_token: Value = http.get(format!("{api}/instances")).header("Authorization", format!("{auth}, Element {token}"))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(by_token["id"], id);

    // Another organization: the id is not found, the token is not accepted.
    let other = Command::new(BIN).current_dir(dir.path()).args(["orgs", "create", "Other", "--json"]).output().unwrap();
    let other: Value = serde_json::from_slice(&other.stdout).unwrap();
    let other_auth = other["authorization"].as_str().unwrap();
    let r = http.get(format!("{api}/instances/{id}")).header("Authorization", other_auth).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{api}/instances")).header("Authorization", format!("{other_auth}, Element {token}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.delete(format!("{api}/instances/{id}")).header("Authorization", other_auth).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Disable and enable.
    let d: Value = http.delete(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["disabled"], true);
    let e: Value = http.put(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(e["disabled"], false);

    // 50 concurrent creations: none lost.
    let before = http.get(format!("{api}/instances")).header("Authorization", &auth).send().await.unwrap().json::<Value>().await.unwrap().as_array().unwrap().len();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let p = post(good(&format!("c{i}"), &["burst"]));
        tasks.push(tokio::spawn(async move { p.await.status() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let after: Value = http.get(format!("{api}/instances")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(after.as_array().unwrap().len(), before + 50);

    // Delete: gone, and its token dies with it.
    assert_eq!(http.delete(format!("{api}/instances/{id}")).header("Authorization", &auth).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{api}/instances/{id}")).header("Authorization", &auth).send().await.unwrap().status(), 404);
    let r = http.get(format!("{api}/instances")).header("Authorization", format!("{auth}, Element {token}")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let log = server.stop();
    // The API token is in no log line and in no database byte.
    let api_token = bc["apiToken"].as_str().unwrap();
    assert!(!log.contains(api_token));
    for file in ["switchyard.db", "switchyard.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!contains(&bytes, api_token.as_bytes()), "{file} holds the API token in clear");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_calls_reach_the_bigcommerce_simulator_with_exact_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox", "--log-format", "json"]);
    let auth = server.stdout.iter().find(|v| v.get("authorization").is_some()).unwrap()["authorization"].as_str().unwrap().to_owned();
    let api = server.base.clone();
    let http = reqwest::Client::new();
    // Under --sandbox the simulator is the default: no configuration needed.
    let created: Value = http.post(format!("{api}/instances")).header("Authorization", &auth)
        .json(&serde_json::json!({"element": {"key": "bigcommerce"}, "name": "demo"}))
        .send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_i64().expect("instance created from the sandbox defaults");
    let hub_auth = format!("{auth}, Element {}", created["token"].as_str().unwrap());
    let get = |path: String| {
        let (http, hub_auth) = (http.clone(), hub_auth.clone());
        async move { http.get(path).header("Authorization", hub_auth).send().await.unwrap() }
    };
    let hub = format!("{api}/hubs/ecommerce");

    let ping = get(format!("{hub}/ping")).await;
    assert_eq!(ping.status(), 200);
    assert!(ping.json::<Value>().await.unwrap()["time"].is_i64());

    // Three pages of two, by token, equal one page of six.
    let mut ids = Vec::new();
    let mut url = format!("{hub}/orders?pageSize=2");
    for _ in 0..3 {
        let r = get(url.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["elements-returned-count"], "2");
        let token = r.headers()["elements-next-page-token"].to_str().unwrap().to_owned();
        let page: Value = r.json().await.unwrap();
        ids.extend(page.as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()));
        url = format!("{hub}/orders?pageSize=2&nextPage={token}");
    }
    let six: Value = get(format!("{hub}/orders?pageSize=6")).await.json().await.unwrap();
    let six: Vec<i64> = six.as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, six);
    let page3: Value = get(format!("{hub}/orders?pageSize=2&page=3")).await.json().await.unwrap();
    assert_eq!(page3[0]["id"].as_i64(), Some(six[4]));

    // The token appears only when another page exists.
    let count: Value = get(format!("{hub}/orders/count")).await.json().await.unwrap();
    let total = count["count"].as_u64().unwrap();
    assert!(total > 0 && total < 250);
    let all = get(format!("{hub}/orders?pageSize=250")).await;
    assert!(!all.headers().contains_key("elements-next-page-token"));
    assert_eq!(all.headers()["elements-returned-count"], total.to_string().as_str());
    let last = get(format!("{hub}/orders?pageSize={total}")).await;
    assert!(!last.headers().contains_key("elements-next-page-token"), "a page ending exactly at the end has no token");
    let before_last = get(format!("{hub}/orders?pageSize={}", total - 1)).await;
    assert!(before_last.headers().contains_key("elements-next-page-token"));

    // A forged or altered token is a 400.
    let r = get(format!("{hub}/orders?nextPage=forged.token")).await;
    assert_eq!(r.status(), 400);

    // Retrieve; a missing order is the vendor's 404 with its words.
    let order: Value = get(format!("{hub}/orders/{}", six[0])).await.json().await.unwrap();
    assert_eq!(order["id"].as_i64(), Some(six[0]));
    let r = get(format!("{hub}/orders/999999")).await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["providerMessage"].is_string());

    // Unsupported: another hub, an unknown resource, a field orders lack. CEQL works.
    assert_eq!(get(format!("{api}/hubs/crm/contacts")).await.status(), 404);
    assert_eq!(get(format!("{hub}/nothing")).await.status(), 404);
    assert_eq!(get(format!("{hub}/orders?where=colour%3D1")).await.status(), 400);
    let found: Value = get(format!("{hub}/orders?where=id%3D{}", six[0])).await.json().await.unwrap();
    assert_eq!(found[0]["id"].as_i64(), Some(six[0]));

    // Callers: no Element token 401; a disabled instance 403.
    let r = http.get(format!("{hub}/orders")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 401);
    http.delete(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(get(format!("{hub}/orders")).await.status(), 403);
    http.put(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(get(format!("{hub}/orders?pageSize=1")).await.status(), 200);

    // Metrics: requests by route template and status, latency histograms, vendor calls.
    let root = api.trim_end_matches("/elements/api-v2");
    let r = http.get(format!("{root}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let has = |needle: &[&str]| text.lines().any(|l| needle.iter().all(|n| l.contains(n)));
    assert!(has(&["switchyard_http_requests_total{", "route=\"/elements/api-v2/hubs/{hub}/{*path}\"", "status=\"403\""]), "{text}");
    assert!(has(&["switchyard_http_requests_total{", "route=\"/elements/api-v2/instances\"", "method=\"POST\"", "status=\"200\""]), "{text}");
    assert!(has(&["switchyard_http_request_duration_seconds_bucket{", "le=\"0.005\""]), "{text}");
    assert!(has(&["switchyard_vendor_calls_total{", "element=\"bigcommerce\"", "outcome=\"200\""]), "{text}");
    assert!(has(&["switchyard_vendor_calls_total{", "outcome=\"404\""]), "{text}");
    assert!(has(&["switchyard_vendor_call_duration_seconds_count{", "element=\"bigcommerce\""]), "{text}");
    assert!(!text.contains(&format!("/instances/{id}/enabled")), "series are per route template, not per id");

    // --log-format json: every log line is one JSON object, from the first to the stop.
    let log = server.stop();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["message"], "stopped", "the drain is logged");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_update_by_put_patch_and_configuration_id_checking_the_vendor_on_credential_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox"]);
    let auth = server.stdout.iter().find(|v| v.get("authorization").is_some()).unwrap()["authorization"].as_str().unwrap().to_owned();
    let bc = server.stdout.iter().find(|v| v.get("sandbox").is_some()).unwrap()["sandbox"]["bigcommerce"].clone();
    let api = server.base.clone();
    let http = reqwest::Client::new();
    let created: Value = http.post(format!("{api}/instances")).header("Authorization", &auth)
        .json(&serde_json::json!({"element": {"key": "bigcommerce"}, "name": "shop", "tags": ["a"], "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}}))
        .send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let hub_auth = format!("{auth}, Element {}", created["token"].as_str().unwrap());
    let send = |method: reqwest::Method, path: &str, body: Value| {
        let (http, url, auth) = (http.clone(), format!("{api}{path}"), auth.clone());
        async move { http.request(method, url).header("Authorization", auth).json(&body).send().await.unwrap() }
    };
    let hub_works = || {
        let (http, url, hub_auth) = (http.clone(), format!("{api}/hubs/ecommerce/orders?pageSize=1"), hub_auth.clone());
        async move { http.get(url).header("Authorization", hub_auth).send().await.unwrap().status() == 200 }
    };
    let patch = reqwest::Method::PATCH;
    let put = reqwest::Method::PUT;

    // PATCH: name and tags replaced, configuration merged, secrets still masked.
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"name": "renamed", "tags": ["b", "c"]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["name"].as_str(), v["tags"].clone()), (Some("renamed"), serde_json::json!(["b", "c"])));
    assert_eq!(v["configuration"]["password"], "********");
    assert_eq!(v["configuration"]["username"], bc["username"]);

    // A wrong credential is checked with the vendor and refused; nothing changes.
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {"password": "wrong-token"}})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["providerMessage"].is_string() && !body.to_string().contains("wrong-token"), "{body}");
    assert!(hub_works().await, "the stored credentials are untouched");
    // `********` keeps a stored secret; on a key without one it is refused.
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {"password": "********", "event.notification.enabled": true}})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["eventsEnabled"], true);
    assert!(hub_works().await);
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {"username": "********"}})).await;
    assert_eq!(r.status(), 400);
    // The events callback passes the outbound policy when it is saved.
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {"event.notification.callback.url": "http://10.0.0.7/hook"}})).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("callback.url"));
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {"event.notification.callback.url": "http://127.0.0.1:9/hook"}})).await;
    assert_eq!(r.status(), 200, "loopback is allowed under --sandbox");
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"element": {"key": "nope"}})).await;
    assert_eq!(r.status(), 404);
    let r = send(patch.clone(), &format!("/instances/{id}"), serde_json::json!({"name": "  "})).await;
    assert_eq!(r.status(), 400);

    // PUT replaces: name required, absent tags cleared.
    let r = send(put.clone(), &format!("/instances/{id}"), serde_json::json!({"configuration": {}})).await;
    assert_eq!(r.status(), 400);
    let r = send(put.clone(), &format!("/instances/{id}"), serde_json::json!({"name": "whole", "configuration": {
        "username": bc["username"], "password": "********", "store.url": bc["storeUrl"]}})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["name"].as_str(), v["tags"].clone(), v["eventsEnabled"].clone()), (Some("whole"), serde_json::json!([]), Value::Bool(false)));
    assert!(hub_works().await);

    // One configuration value by its id.
    let config: Value = http.get(format!("{api}/instances/{id}/configuration")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    let config_id = |key: &str| config.as_array().unwrap().iter().find(|c| c["key"] == key).unwrap()["id"].as_i64().unwrap();
    let r = send(patch.clone(), &format!("/instances/{id}/configuration/{}", config_id("username")), serde_json::json!({"propertyValue": "intruder"})).await;
    assert_eq!(r.status(), 400, "the vendor refuses another user");
    let r = send(patch.clone(), &format!("/instances/{id}/configuration/{}", config_id("password")), serde_json::json!({"propertyValue": bc["apiToken"]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["key"].as_str(), v["propertyValue"].as_str(), v["id"].as_i64()), (Some("password"), Some("********"), Some(config_id("password"))));
    let r = send(patch.clone(), &format!("/instances/{id}/configuration/999999"), serde_json::json!({"propertyValue": "x"})).await;
    assert_eq!(r.status(), 404);
    let r = send(patch.clone(), &format!("/instances/{id}/configuration/{}", config_id("password")), serde_json::json!({"value": "x"})).await;
    assert_eq!(r.status(), 400);

    // The id-less variants act on the instance the Element token names.
    let r = http.patch(format!("{api}/instances")).header("Authorization", &hub_auth).json(&serde_json::json!({"name": "by-token"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id);
    let r = http.get(format!("{api}/instances/configuration")).header("Authorization", &hub_auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().as_array().unwrap().iter().any(|c| c["key"] == "store.url"));
    let r = http.put(format!("{api}/instances")).header("Authorization", &auth).json(&serde_json::json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 400, "no id and no Element token");
    let got: Value = http.get(format!("{api}/instances/{id}")).header("Authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["name"], "by-token");

    // Another organization cannot touch it.
    let other = Command::new(BIN).current_dir(dir.path()).args(["orgs", "create", "Other", "--json"]).output().unwrap();
    let other: Value = serde_json::from_slice(&other.stdout).unwrap();
    let r = http.patch(format!("{api}/instances/{id}")).header("Authorization", other["authorization"].as_str().unwrap())
        .json(&serde_json::json!({"name": "stolen"})).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let log = server.stop();
    assert!(!log.contains(bc["apiToken"].as_str().unwrap()) && !log.contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_while_serving_moves_every_secret_and_new_ones_follow_the_new_key() {
    let sandbox = common::Sandbox::start(&[]);
    let bc = sandbox.credentials["bigcommerce"].clone();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--outbound-allow", "127.0.0.1"]);
    let auth = server.stdout.iter().find(|v| v.get("authorization").is_some()).unwrap()["authorization"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let create = |api: String, name: &str| {
        let body = serde_json::json!({"element": {"key": "bigcommerce"}, "name": name, "configuration": {
            "username": bc["username"], "password": bc["apiToken"], "store.url": bc["storeUrl"]}});
        let (http, auth) = (http.clone(), auth.clone());
        async move {
            let v: Value = http.post(format!("{api}/instances")).header("Authorization", &auth).json(&body).send().await.unwrap().json().await.unwrap();
            format!("{auth}, Element {}", v["token"].as_str().expect("created"))
        }
    };
    let hub_status = |api: String, hub_auth: String| {
        let http = http.clone();
        async move { http.get(format!("{api}/hubs/ecommerce/orders?pageSize=1")).header("Authorization", hub_auth).send().await.unwrap().status() }
    };
    let first = create(server.base.clone(), "before").await;

    // Rotate while the server runs: the existing secret moves to the new key...
    let out = Command::new(BIN).current_dir(dir.path()).arg("rotate-key").env_remove("SWITCHYARD_MASTER_KEY").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    // (the instance's secret, and the sealed organization and user secrets)
    assert_eq!(rotated["reencrypted"], 3);
    // ...the server seals what it writes from now on under the new key (before
    // it has met that key in any row)...
    let second = create(server.base.clone(), "after").await;
    // ...and, meeting a key id it does not know, reads the key file again.
    assert_eq!(hub_status(server.base.clone(), first.clone()).await, 200);
    server.stop();

    // Proof: with the old key gone from the file, both instances still work.
    let path = dir.path().join("switchyard.key");
    let mut key_file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let current = key_file["current"].clone();
    key_file["keys"].as_array_mut().unwrap().retain(|k| k["id"] == current);
    std::fs::write(&path, serde_json::to_vec(&key_file).unwrap()).unwrap();
    let server = start(dir.path(), &["--outbound-allow", "127.0.0.1"]);
    assert_eq!(hub_status(server.base.clone(), first).await, 200);
    assert_eq!(hub_status(server.base.clone(), second).await, 200);
    server.stop();
}

/// `serve --sandbox` wires vendor webhooks end to end: the in-process simulator calls
/// the address the server registered (its listen address, no --public-url), and the
/// delivery worker reads the record through the hub before sending it.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_webhooks_reach_the_callback_enriched() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox", "--event-retry-base", "0.05"]);
    let auth = server.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let bc = server.stdout.iter().find(|v| v.get("sandbox").is_some()).unwrap()["sandbox"]["bigcommerce"].clone();
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/hook", listener.local_addr().unwrap());
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            sink.lock().unwrap().push(body.0);
            "ok"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let api = server.base.clone();
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &auth)
        .json(&serde_json::json!({"element": {"key": "bigcommerce"}, "name": "hooked", "configuration": {
            "authentication.type": "custom", "oauth.api.key": "demo-client", "oauth.user.token": bc["apiToken"],
            "store.url": bc["tokenStoreUrl"], "event.notification.enabled": true, "event.vendor.type": "webhook",
            "event.objects": "customers", "event.notification.callback.url": callback}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap_or_else(|| panic!("{created}"));
    let customer = serde_json::json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"});
    let made: Value = http
        .post(format!("{api}/hubs/ecommerce/customers"))
        .header("Authorization", format!("{auth}, Element {token}"))
        .json(&customer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["id"].as_i64().unwrap_or_else(|| panic!("{made}"));
    common::until(Duration::from_secs(20), "an event", || !received.lock().unwrap().is_empty()).await;
    let message = received.lock().unwrap()[0]["message"].clone();
    assert_eq!(message["events"][0]["eventType"], "CREATED");
    assert_eq!(message["events"][0]["objectId"], id.to_string());
    assert_eq!(message["raw"]["email"], "grace@example.com");
    assert_eq!(message["raw"]["objectType"], "customers");
    server.stop();
}

/// Issue 10 item 10: a start that fails (a bad element file, a busy port) creates
/// and prints nothing; the first start that succeeds prints the first tenant once,
/// and later starts point at `orgs list` / `users list` and `reset-secret`.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_first_start_prints_no_secrets_and_later_starts_say_how_to_get_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let failed = |args: &[&str]| {
        let out = Command::new(BIN).current_dir(dir.path()).arg("serve").args(args).env_remove("SWITCHYARD_MASTER_KEY").output().unwrap();
        assert!(!out.status.success(), "{args:?} should not start");
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let elements = dir.path().join("elements");
    std::fs::create_dir(&elements).unwrap();
    std::fs::write(elements.join("broken.yaml"), "key: [unclosed\n").unwrap();
    let stderr = failed(&["--listen", "127.0.0.1:0", "--elements-dir", elements.to_str().unwrap()]);
    assert!(stderr.contains("broken.yaml"), "the refusal names the file: {stderr}");
    std::fs::remove_file(elements.join("broken.yaml")).unwrap();

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let stderr = failed(&["--listen", &port]);
    assert!(stderr.contains(&port), "the refusal names the address: {stderr}");
    drop(busy);
    assert!(!dir.path().join("switchyard.db").exists(), "a failed start leaves no database behind");

    // The first start that works prints the tenant, once.
    let first = start(dir.path(), &[]);
    let tenant = first.stdout.iter().find(|v| v.get("authorization").is_some()).expect("first tenant printed").clone();
    first.stop();
    let again = start(dir.path(), &[]);
    assert!(again.stdout.is_empty(), "a later start prints no secrets: {:?}", again.stdout);
    let startup = again.startup.clone();
    let log = startup + &again.stop();
    assert!(log.contains("orgs list") && log.contains("reset-secret"), "{log}");
    assert!(!log.contains(tenant["user"]["secret"].as_str().unwrap()));

    // The lists name what reset-secret needs, and no secret.
    let list = |args: &[&str]| {
        let out = Command::new(BIN).current_dir(dir.path()).args(args).arg("--json").env_remove("SWITCHYARD_MASTER_KEY").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let orgs = list(&["orgs", "list"]);
    assert_eq!(orgs, serde_json::json!([{"id": tenant["organization"]["id"], "name": "default", "createdDate": orgs[0]["createdDate"]}]));
    let users = list(&["users", "list"]);
    assert_eq!(users[0]["id"], tenant["user"]["id"]);
    assert_eq!(users[0]["organizationId"], tenant["organization"]["id"]);
    assert_eq!(users[0]["emailAddress"], "admin@localhost");
    assert_eq!(list(&["users", "list", "--org", "999"]), serde_json::json!([]));
    for secret in [tenant["user"]["secret"].as_str().unwrap(), tenant["organization"]["secret"].as_str().unwrap()] {
        assert!(!orgs.to_string().contains(secret) && !users.to_string().contains(secret));
    }
}

/// `serve --vendor-timeout SECONDS` is how long one vendor call may take: a store
/// slower than that is a 504 in the Cloud Elements shape at the timeout, not an
/// answer after the store's delay (the default, 30 s, would have waited for it).
#[tokio::test(flavor = "multi_thread")]
async fn vendor_timeout_cuts_a_slow_vendor_call_short() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--sandbox", "--vendor-timeout", "1"]);
    let auth = server.stdout.iter().find(|v| v.get("authorization").is_some()).unwrap()["authorization"].as_str().unwrap().to_owned();
    let store_url = server.stdout.iter().find(|v| v.get("sandbox").is_some()).unwrap()["sandbox"]["bigcommerce"]["storeUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (origin, _) = store_url.split_once("/stores/").unwrap();
    let api = server.base.clone();
    let http = reqwest::Client::new();
    let created: Value = http.post(format!("{api}/instances")).header("Authorization", &auth)
        .json(&serde_json::json!({"element": {"key": "bigcommerce"}, "name": "slow"}))
        .send().await.unwrap().json().await.unwrap();
    let hub_auth = format!("{auth}, Element {}", created["token"].as_str().unwrap());
    let faults = |body: Value| http.put(format!("{origin}/_sim/stores/abc123/faults")).json(&body).send();
    assert_eq!(faults(serde_json::json!({"latency_ms": 6000})).await.unwrap().status(), 200);

    let started = std::time::Instant::now();
    let r = http.get(format!("{api}/hubs/ecommerce/orders?pageSize=1")).header("Authorization", &hub_auth).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    let id = r.headers()["elements-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].is_string() && body["requestId"] == id.as_str(), "{body}");
    assert!(took >= Duration::from_millis(980) && took < Duration::from_millis(2500), "answered after {took:?}, the timeout is 1 s");

    assert_eq!(faults(serde_json::json!({})).await.unwrap().status(), 200);
    server.stop();
}

/// Issue 16: a definition the catalog refuses stops `serve` with one line naming
/// the file, the line, the field and what it allows, before any organization or
/// user exists (and before the database is even created).
#[test]
fn a_wrong_element_definition_stops_serve_with_one_line_and_creates_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let elements = dir.path().join("elements");
    std::fs::create_dir(&elements).unwrap();
    let shop = include_str!("../../../elements/bigcommerce.yaml")
        .replacen("key: bigcommerce", "key: shop", 1)
        .replacen("id: 274", "id: 9001", 1);
    let line = |text: &str, needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;
    for (from, to, says) in [
        ("hub: ecommerce", "hub: ecommmerce", "hub: 'ecommmerce' is not one of the allowed values; allowed: one of crm, documents, ecommerce"),
        ("vendorPath: /orders\n", "vendorPath: /orders?status=any\n", "resources[4].vendorPath: '/orders?status=any' has a '?' or '#'"),
        ("id: 9001", "id: 274", "id: 274 is already the id of bigcommerce.yaml; allowed: an id no other element has"),
    ] {
        let text = shop.replacen(from, to, 1);
        std::fs::write(elements.join("shop.yaml"), &text).unwrap();
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--elements-dir", elements.to_str().unwrap()])
            .env_remove("SWITCHYARD_MASTER_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{to} should not start");
        assert!(out.stdout.is_empty(), "nothing printed, no tenant: {}", String::from_utf8_lossy(&out.stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let refusal: Vec<&str> = stderr.lines().filter(|l| l.contains("shop.yaml")).collect();
        let file = elements.join("shop.yaml").display().to_string();
        let expected = format!("{file}:{}: {says}", line(&text, to.trim_end()));
        assert!(refusal.len() == 1 && refusal[0].contains(&expected), "one line with {expected}: {stderr}");
        assert!(!dir.path().join("switchyard.db").exists(), "no database, so no organization or user");
    }
}

/// The pruning leases last a whole period (ten minutes); a clean stop gives them
/// back, so a server started next on the database prunes at once (say, after a
/// restart with lower caps) instead of waiting the period out.
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_gives_the_pruning_leases_back() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    let held = || async {
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM leases WHERE name IN ('retention', 'call-log.retention') ORDER BY name")
            .fetch_all(&mut db)
            .await
            .unwrap();
        names
    };
    // Both are taken as the server starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while held().await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the pruning leases were not taken at start: {:?}", held().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop();
    assert_eq!(held().await, Vec::<String>::new(), "a clean stop gives them back");
}
