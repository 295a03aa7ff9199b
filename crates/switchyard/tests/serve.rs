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
