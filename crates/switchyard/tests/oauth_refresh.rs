//! OAuth token refresh across processes: an external `switchyard sandbox`, `serve`
//! processes sharing one SQLite file, and crashes injected with the debug-build
//! switch `SWITCHYARD_DEBUG_CRASH` just before the token call and just after the
//! commit of the new pair.

mod common;

use common::Serve;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// `switchyard sandbox --json` (the shared helper) and its Keap simulator's URLs.
struct Sandbox {
    _proc: common::Sandbox,
    keap: Value,
    /// `http://127.0.0.1:PORT` of the Keap simulator.
    root: String,
}

fn sandbox() -> Sandbox {
    let proc = common::Sandbox::start(&[]);
    let keap = proc.credentials["keap"].clone();
    let root = keap["baseUrl"].as_str().unwrap().trim_end_matches("/crm").to_owned();
    Sandbox { _proc: proc, keap, root }
}

/// One `serve` process on the database in `dir` (killed when dropped); `crash` sets
/// `SWITCHYARD_DEBUG_CRASH`.
struct Server {
    proc: Serve,
    api: String,
    /// The caller authorization, printed by the first server on a fresh database.
    auth: Option<String>,
}

fn serve(dir: &std::path::Path, crash: Option<&str>) -> Server {
    let env: Vec<(&str, &str)> = crash.map(|point| ("SWITCHYARD_DEBUG_CRASH", point)).into_iter().collect();
    let proc = Serve::start(dir, &["--outbound-allow", "127.0.0.0/8", "--oauth-refresh-lease", "1"], &env);
    // The first start on an empty database prints the tenant's credentials.
    let auth = proc.stdout.iter().find_map(|v| v["authorization"].as_str()).map(str::to_owned);
    let api = proc.base.trim_end_matches("/elements/api-v2").trim_end_matches('/').to_owned();
    Server { proc, api, auth }
}

impl Server {
    /// Waits for a process that crashed on purpose and says it did not exit cleanly.
    fn crashed(self) {
        let ended = self.proc.wait();
        assert!(!ended.status.success(), "the crash point was reached: {}", ended.status);
    }
}

struct Instance {
    /// `User …, Organization …, Element …`.
    auth: String,
}

async fn control(http: &reqwest::Client, sb: &Sandbox, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut r = http.request(method, format!("{}/_sim{path}", sb.root));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn refreshes(http: &reqwest::Client, sb: &Sandbox) -> u64 {
    control(http, sb, reqwest::Method::GET, "/token-calls", None).await["refresh_token"].as_u64().unwrap()
}

/// Authorizes the demo app at the sandbox (auto-approve) and creates an instance
/// whose token URL and base URL point at it.
async fn connect(http: &reqwest::Client, sb: &Sandbox, server: &Server, caller: &str) -> Instance {
    control(http, sb, reqwest::Method::PUT, "/settings", Some(json!({"auto_approve": true}))).await;
    let client_id = sb.keap["clientId"].as_str().unwrap();
    let authorize = reqwest::Url::parse_with_params(
        sb.keap["authorizeUrl"].as_str().unwrap(),
        &[("client_id", client_id), ("redirect_uri", CALLBACK), ("response_type", "code"), ("scope", "full"), ("state", "s")],
    )
    .unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(authorize).send().await.unwrap();
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let body = json!({"element": {"key": "infusionsoftcrm"}, "name": "keap", "providerData": {"code": code}, "configuration": {
        "oauth.api.key": client_id,
        "oauth.api.secret": sb.keap["clientSecret"],
        "oauth.callback.url": CALLBACK,
        "infusionsoft.private.key": sb.keap["privateKey"],
        "oauth.token.url": sb.keap["tokenUrl"],
        "base.url": sb.keap["baseUrl"],
    }});
    let r = http.post(format!("{}/elements/api-v2/instances", server.api)).header("Authorization", caller).json(&body).send().await.unwrap();
    let created: Value = r.json().await.unwrap();
    let token = created["token"].as_str().unwrap_or_else(|| panic!("{created}"));
    Instance { auth: format!("{caller}, Element {token}") }
}

async fn hub(http: &reqwest::Client, server: &Server, instance: &Instance, path: &str) -> Result<(StatusCode, Value), reqwest::Error> {
    let r = http.get(format!("{}/elements/api-v2/hubs/crm/{path}", server.api)).header("Authorization", &instance.auth).send().await?;
    Ok((r.status(), r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_database_refresh_an_expired_token_once() {
    let sb = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), None);
    let b = serve(dir.path(), None);
    let caller = a.auth.clone().expect("the first server printed the tenant");
    assert!(b.auth.is_none(), "the second server found the tenant in the database");
    let http = reqwest::Client::new();
    let instance = connect(&http, &sb, &a, &caller).await;
    assert_eq!(hub(&http, &b, &instance, "ping").await.unwrap().0, StatusCode::OK);

    let client_id = sb.keap["clientId"].as_str().unwrap();
    for round in 1..=2 {
        control(&http, &sb, reqwest::Method::POST, &format!("/apps/{client_id}/expire-tokens"), None).await;
        let calls = (0..60).map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            hub(&http, server, &instance, "users?pageSize=1")
        });
        for answer in futures::future::join_all(calls).await {
            let (status, body) = answer.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        assert_eq!(refreshes(&http, &sb).await, round, "one refresh for both servers");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_the_token_call_or_after_the_commit_leaves_a_working_connection() {
    let sb = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let client_id = sb.keap["clientId"].as_str().unwrap().to_owned();

    // Before the token call: the lease is held by a dead process, the old refresh
    // token is still the live one.
    let first = serve(dir.path(), Some("oauth-before-token-call"));
    let caller = first.auth.clone().unwrap();
    let instance = connect(&http, &sb, &first, &caller).await;
    control(&http, &sb, reqwest::Method::POST, &format!("/apps/{client_id}/expire-tokens"), None).await;
    assert!(hub(&http, &first, &instance, "ping").await.is_err(), "the server died mid-call");
    first.crashed();
    assert_eq!(refreshes(&http, &sb).await, 0);
    let second = serve(dir.path(), None);
    let (status, body) = hub(&http, &second, &instance, "ping").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(refreshes(&http, &sb).await, 1, "refreshed once the dead holder's lease lapsed");
    drop(second);

    // After the commit: the rotated pair is in the database before anything else.
    let third = serve(dir.path(), Some("oauth-after-token-commit"));
    control(&http, &sb, reqwest::Method::POST, &format!("/apps/{client_id}/expire-tokens"), None).await;
    assert!(hub(&http, &third, &instance, "ping").await.is_err());
    third.crashed();
    assert_eq!(refreshes(&http, &sb).await, 2);
    let fourth = serve(dir.path(), None);
    let (status, body) = hub(&http, &fourth, &instance, "contacts?pageSize=2").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(refreshes(&http, &sb).await, 2, "the committed pair works without another refresh");
    // And it refreshes again later with the refresh token committed before the crash.
    control(&http, &sb, reqwest::Method::POST, &format!("/apps/{client_id}/expire-tokens"), None).await;
    assert_eq!(hub(&http, &fourth, &instance, "ping").await.unwrap().0, StatusCode::OK);
    assert_eq!(refreshes(&http, &sb).await, 3);
}
