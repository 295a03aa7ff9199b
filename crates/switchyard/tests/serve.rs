//! `switchyard serve` as a process: first start, callers, elements, health,
//! the sandbox, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

struct Server {
    child: Child,
    base: String,
    stdout: Vec<Value>,
    log: mpsc::Receiver<String>,
}

/// Starts `serve` on a free loopback port and waits until it listens.
fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("SWITCHYARD_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, log) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let base = loop {
        let line = log.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no listen line; log so far:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(at) = line.find("serving the API at http://") {
            let rest = &line[at + "serving the API at ".len()..];
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Everything printed on stdout before listening is one JSON document a line.
    let stdout = child.stdout.take().unwrap();
    let (otx, orx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = otx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = orx.recv_timeout(Duration::from_millis(300)) {
        lines.push(serde_json::from_str(&line).expect("stdout holds JSON lines"));
    }
    Server { child, base, stdout: lines, log }
}

impl Server {
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "SIGTERM ends serve cleanly, got {status}");
        self.log.try_iter().collect::<Vec<_>>().join("\n")
    }
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
    server.stop();
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
    let r = http.post(format!("{api}/instances")).header("Authorization", &auth)
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
    let server = start(dir.path(), &["--sandbox"]);
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

    // Unsupported: another hub, an unknown resource, CEQL before it lands.
    assert_eq!(get(format!("{api}/hubs/crm/contacts")).await.status(), 404);
    assert_eq!(get(format!("{hub}/nothing")).await.status(), 404);
    assert_eq!(get(format!("{hub}/orders?where=id%3D1")).await.status(), 400);

    // Callers: no Element token 401; a disabled instance 403.
    let r = http.get(format!("{hub}/orders")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 401);
    http.delete(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(get(format!("{hub}/orders")).await.status(), 403);
    http.put(format!("{api}/instances/{id}/enabled")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(get(format!("{hub}/orders?pageSize=1")).await.status(), 200);
    server.stop();
}
