//! The `switchyard` binary, run as a user runs it: tenants, the vault's key file,
//! key rotation, and the sandbox over real HTTP on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;

use common::BIN;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).env_remove("SWITCHYARD_MASTER_KEY");
    cmd.env_remove("SWITCHYARD_MASTER_KEY_FILE").env_remove("SWITCHYARD_DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchyard")
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn init_prints_the_pinned_shape_once_and_never_stores_a_secret_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["init", "--json"], &[]);
    let v = ok_json(&out);
    let org_secret = v["organization"]["secret"].as_str().unwrap().to_owned();
    let user_secret = v["user"]["secret"].as_str().unwrap().to_owned();
    assert!(v["organization"]["id"].is_i64() && v["user"]["id"].is_i64());
    assert!(v["organization"]["name"].is_string() && v["user"]["emailAddress"].is_string());
    assert_eq!(
        v["authorization"].as_str().unwrap(),
        format!("User {user_secret}, Organization {org_secret}")
    );
    // 256 bits of randomness, base64url: 43 characters.
    assert_eq!(org_secret.len(), 43);
    assert_ne!(org_secret, user_secret);

    // The log (stderr) and the database never hold a secret.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&org_secret) && !stderr.contains(&user_secret), "{stderr}");
    let db = std::fs::read(dir.path().join("switchyard.db")).unwrap();
    let wal = std::fs::read(dir.path().join("switchyard.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(!contains(file, org_secret.as_bytes()) && !contains(file, user_secret.as_bytes()));
    }

    // The key file was created beside the database, readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("switchyard.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second init refuses instead of minting a second first organization.
    let again = run(dir.path(), &["init", "--json"], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has organizations"));
}

/// Text logs (the default format) carry no colour codes when standard error is not
/// a terminal, as here (a pipe), with or without NO_COLOR.
#[test]
fn text_logs_have_no_escape_codes_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).args(["init", "--json"]);
    for name in ["NO_COLOR", "SWITCHYARD_LOG", "SWITCHYARD_LOG_FORMAT", "SWITCHYARD_MASTER_KEY", "SWITCHYARD_MASTER_KEY_FILE", "SWITCHYARD_DATABASE_URL"] {
        cmd.env_remove(name);
    }
    let out = cmd.output().expect("run switchyard");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("created a new master key file"), "a line was logged: {log}");
    assert!(!log.contains('\u{1b}'), "no escape codes: {log:?}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn orgs_and_users_are_created_and_secrets_reset() {
    let dir = tempfile::tempdir().unwrap();
    ok_json(&run(dir.path(), &["init", "--json"], &[]));
    let org = ok_json(&run(dir.path(), &["orgs", "create", "Acme", "--json"], &[]));
    assert_eq!(org["organization"]["name"], "Acme");
    let org_id = org["organization"]["id"].as_i64().unwrap().to_string();

    let user = ok_json(&run(dir.path(), &["users", "create", "--org", &org_id, "dev@acme.test", "--json"], &[]));
    assert_eq!(user["user"]["emailAddress"], "dev@acme.test");
    assert!(user["authorization"].as_str().unwrap().starts_with("User "));

    // The same email twice in one organization, and an unknown organization, are refused.
    let dup = run(dir.path(), &["users", "create", "--org", &org_id, "dev@acme.test", "--json"], &[]);
    assert!(!dup.status.success());
    let nobody = run(dir.path(), &["users", "create", "--org", "999", "x@y.test", "--json"], &[]);
    assert!(!nobody.status.success());

    let reset = ok_json(&run(dir.path(), &["orgs", "reset-secret", &org_id, "--json"], &[]));
    assert_ne!(reset["organization"]["secret"], org["organization"]["secret"]);
    let user_id = user["user"]["id"].as_i64().unwrap().to_string();
    let reset = ok_json(&run(dir.path(), &["users", "reset-secret", &user_id, "--json"], &[]));
    assert_ne!(reset["user"]["secret"], user["user"]["secret"]);
    assert!(!run(dir.path(), &["orgs", "reset-secret", "999"], &[]).status.success());
}

#[test]
fn a_database_refuses_a_key_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    ok_json(&run(dir.path(), &["init", "--json"], &[]));

    // Another key in the environment: refused, with a message that says so.
    let other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let out = run(dir.path(), &["orgs", "create", "X", "--json"], &[("SWITCHYARD_MASTER_KEY", other)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key does not open the database"), "{err}");
    assert!(!err.contains(other));

    // The key file gone: refused, and no new key is quietly made for old secrets.
    std::fs::remove_file(dir.path().join("switchyard.key")).unwrap();
    let out = run(dir.path(), &["orgs", "create", "X", "--json"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read"));
    assert!(!dir.path().join("switchyard.key").exists());
}

#[test]
fn rotate_key_adds_a_current_key_and_moves_the_database_to_it() {
    let dir = tempfile::tempdir().unwrap();
    ok_json(&run(dir.path(), &["init", "--json"], &[]));
    let rotated = ok_json(&run(dir.path(), &["rotate-key"], &[]));
    let new_id = rotated["currentKeyId"].as_u64().unwrap();
    assert_ne!(Some(new_id), rotated["previousKeyId"].as_u64());

    let key_file: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("switchyard.key")).unwrap()).unwrap();
    assert_eq!(key_file["current"].as_u64(), Some(new_id));
    assert_eq!(key_file["keys"].as_array().unwrap().len(), 2);

    // With only the new key left, the database still opens: everything moved.
    let new_key = key_file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"].as_u64() == Some(new_id))
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run(dir.path(), &["orgs", "create", "After", "--json"], &[("SWITCHYARD_MASTER_KEY", &new_key)]);
    ok_json(&out);
}

#[test]
fn sandbox_serves_the_demo_store_on_loopback() {
    let sandbox = common::Sandbox::start(&[]);
    let creds = &sandbox.credentials;
    let bc = &creds["bigcommerce"];
    let store_url = bc["storeUrl"].as_str().unwrap().to_owned();
    assert!(store_url.starts_with("http://127.0.0.1:") && store_url.ends_with("/stores/abc123/api/v2"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let time = http
            .get(format!("{store_url}/time"))
            .basic_auth(bc["username"].as_str().unwrap(), bc["apiToken"].as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(time.status(), 200);
        assert!(time.json::<Value>().await.unwrap()["time"].is_i64());

        let orders = http
            .get(format!("{store_url}/orders?limit=5"))
            .basic_auth(bc["username"].as_str().unwrap(), bc["apiToken"].as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(orders.status(), 200);
        assert_eq!(orders.json::<Value>().await.unwrap().as_array().unwrap().len(), 5);

        let anonymous = http.get(format!("{store_url}/orders")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body[0]["status"], 401);
    });
}

#[test]
fn sandbox_json_carries_the_keap_app_and_its_oauth_dance_works() {
    let sandbox = common::Sandbox::start(&["--listen-keap", "127.0.0.1:0"]);
    let creds = &sandbox.credentials;
    assert!(creds["bigcommerce"]["storeUrl"].is_string());
    let keap = &creds["keap"];
    let keys: Vec<&str> = keap.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["authorizeUrl", "tokenUrl", "baseUrl", "clientId", "clientSecret", "privateKey", "username", "password"]);
    let base = keap["baseUrl"].as_str().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/crm"), "{base}");
    let origin = base.trim_end_matches("/crm").to_owned();
    assert_eq!(keap["authorizeUrl"], format!("{origin}/app/oauth/authorize"));
    assert_eq!(keap["tokenUrl"], format!("{origin}/token"));
    let text = |k: &str| keap[k].as_str().unwrap().to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        // The printed sign-in opens the consent page.
        let page = http
            .get(text("authorizeUrl"))
            .query(&[("client_id", text("clientId").as_str()), ("redirect_uri", "http://127.0.0.1:9/cb"), ("response_type", "code"), ("state", "s0")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"consent\" value=\"";
        let consent = page[page.find(marker).expect("a sign-in form") + marker.len()..].split('"').next().unwrap().to_owned();
        let signed_in = http
            .post(text("authorizeUrl"))
            .form(&[("consent", consent.as_str()), ("username", text("username").as_str()), ("password", text("password").as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 200);
        assert!(signed_in.text().await.unwrap().contains("id=\"approve\""));
        let set = http.put(format!("{origin}/_sim/settings")).json(&serde_json::json!({ "auto_approve": true })).send().await.unwrap();
        assert_eq!(set.status(), 200);
        let authorize = http
            .get(text("authorizeUrl"))
            .query(&[("client_id", text("clientId").as_str()), ("redirect_uri", "http://127.0.0.1:9/cb"), ("response_type", "code"), ("scope", "full"), ("state", "s1")])
            .send()
            .await
            .unwrap();
        assert_eq!(authorize.status(), 302);
        let location = authorize.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("http://127.0.0.1:9/cb?code=") && location.ends_with("&state=s1"), "{location}");
        let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
        let token = http
            .post(text("tokenUrl"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("client_id", text("clientId").as_str()),
                ("client_secret", text("clientSecret").as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        let token: Value = token.json().await.unwrap();
        let call = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>DataService.echo</methodName><params>\
             <param><value><string>{}</string></value></param><param><value><string>hi</string></value></param></params></methodCall>",
            text("privateKey")
        );
        let echo = http
            .post(format!("{base}/xmlrpc/v1"))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("content-type", "text/xml")
            .body(call)
            .send()
            .await
            .unwrap();
        assert_eq!(echo.status(), 200);
        let body = echo.text().await.unwrap();
        // Keap (Apache XML-RPC) writes strings untyped: `<value>hi</value>`.
        assert!(body.contains("<value>hi</value>") && !body.contains("<fault>"), "{body}");
    });
}
