//! Console login as Cloud Elements' console and tools do it (issue 13, part 1),
//! against the real binary: `users set-password` from standard input, the form
//! login at `/elements/j_spring_security_check`, the session cookie on platform
//! calls (never hub calls), CSRF, `getSecrets`, logout, throttling, and the sealed
//! secrets surviving `rotate-key`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

mod common;

use common::{Serve, BIN};

const PASSWORD: &str = "a long enough password";

/// Runs `switchyard args` in `dir` with `stdin` as its standard input.
fn run(dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for name in ["SWITCHYARD_MASTER_KEY", "SWITCHYARD_MASTER_KEY_FILE", "SWITCHYARD_DATABASE_URL"] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The server's root (`http://127.0.0.1:PORT`) from its API base.
fn root(serve: &Serve) -> String {
    serve.base.trim_end_matches("/elements/api-v2").to_owned()
}

async fn login(http: &reqwest::Client, root: &str, email: &str, password: &str, forwarded: Option<&str>) -> reqwest::Response {
    let mut request = http.post(format!("{root}/elements/j_spring_security_check")).form(&[("j_username", email), ("j_password", password)]);
    if let Some(ip) = forwarded {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.unwrap()
}

/// The `name=value` of the session cookie a login set, and the whole `Set-Cookie`.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let set = response.headers().get(SET_COOKIE).expect("a Set-Cookie").to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().trim().to_owned();
    assert!(pair.starts_with("SWITCHYARD_SESSION=") && pair.len() > 30, "{set}");
    (pair, set)
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_logs_in_reads_the_secrets_and_logs_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = ok_json(&run(d, &["init", "--json"], "", &[]));
    let user_id = first["user"]["id"].to_string();
    let (user_secret, org_secret) = (first["user"]["secret"].as_str().unwrap(), first["organization"]["secret"].as_str().unwrap());

    // Passwords come from standard input only, at least 12 characters.
    let short = run(d, &["users", "set-password", &user_id], "elevenchars\n", &[]);
    assert!(!short.status.success() && stderr(&short).contains("at least 12 characters"), "{}", stderr(&short));
    let set = run(d, &["users", "set-password", &user_id], &format!("{PASSWORD}\n"), &[]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(!stderr(&set).contains(PASSWORD));
    // The same email elsewhere cannot also hold a password; the refused user is not made.
    let org2 = ok_json(&run(d, &["orgs", "create", "second", "--email", "other@example.com", "--json"], "", &[]));
    let org2_id = org2["organization"]["id"].to_string();
    let clash = run(d, &["users", "create", "--org", &org2_id, "ADMIN@localhost", "--password-stdin", "--json"], &format!("{PASSWORD}\n"), &[]);
    assert!(!clash.status.success() && stderr(&clash).contains(&format!("user {user_id} already has a password")), "{}", stderr(&clash));
    let users: Value = ok_json(&run(d, &["users", "list", "--json"], "", &[]));
    assert_eq!(users.as_array().unwrap().len(), 2);

    let serve = Serve::start(d, &[], &[]);
    let root = root(&serve);
    let http = reqwest::Client::new();

    // Wrong password and unknown email: one answer.
    let (wrong, wrong_body) = json(login(&http, &root, "admin@localhost", "not the password!", None).await).await;
    let (unknown, unknown_body) = json(login(&http, &root, "nobody@example.com", PASSWORD, None).await).await;
    assert_eq!((wrong, unknown), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(wrong_body["message"], unknown_body["message"]);
    // No form: a clear 4xx in the error shape.
    let bare = http.post(format!("{root}/elements/j_spring_security_check")).json(&serde_json::json!({})).send().await.unwrap();
    let (status, body) = json(bare).await;
    assert!(status.is_client_error() && body["message"].as_str().unwrap().contains("j_username"), "{status} {body}");

    // The password never rides in the URL; a browser form from another origin is refused.
    let in_url = http.post(format!("{root}/elements/j_spring_security_check?j_username=admin@localhost&j_password=x")).form(&[("a", "b")]).send().await.unwrap();
    assert_eq!(in_url.status(), StatusCode::BAD_REQUEST);
    let cross = http
        .post(format!("{root}/elements/j_spring_security_check"))
        .header("Origin", "https://evil.example")
        .form(&[("j_username", "admin@localhost"), ("j_password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let host = root.trim_start_matches("http://");
    let same = http
        .post(format!("{root}/elements/j_spring_security_check"))
        .header("Origin", format!("http://{host}"))
        .header("Content-Type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")
        .body(format!("j_username=admin%40localhost&j_password={}", PASSWORD.replace(' ', "+")))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);

    // Emails match whatever their case.
    let ok = login(&http, &root, "Admin@Localhost", PASSWORD, None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let (cookie, set_cookie) = session_cookie(&ok);
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http public URL: {set_cookie}");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["emailAddress"], "admin@localhost");
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();

    // getSecrets answers the secrets init printed.
    let secrets = http.get(format!("{root}/elements/api-v1/ui/getSecrets")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(secrets.headers()["cache-control"], "no-store");
    let (status, secrets) = json(secrets).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((secrets["user"].as_str().unwrap(), secrets["company"].as_str().unwrap()), (user_secret, org_secret));

    // The cookie is a platform caller: reads work; changes need X-Requested-With or the CSRF token.
    let listed = http.get(format!("{root}/elements/api-v2/instances")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    // A cookie of the same name planted before ours (a longer path, another app on the host) does not hide it.
    let planted = http.get(format!("{root}/elements/api-v2/instances")).header(COOKIE, format!("SWITCHYARD_SESSION=planted; {cookie}")).send().await.unwrap();
    assert_eq!(planted.status(), StatusCode::OK);
    let create = |extra: Option<(&'static str, String)>| {
        let mut r = http.post(format!("{root}/elements/api-v2/instances")).header(COOKIE, &cookie).json(&serde_json::json!({}));
        if let Some((name, value)) = extra {
            r = r.header(name, value);
        }
        r.send()
    };
    let (status, body) = json(create(None).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("X-Requested-With"), "{body}");
    assert_eq!(create(Some(("X-CSRF-Token", "wrong".into()))).await.unwrap().status(), StatusCode::FORBIDDEN);
    // Past the CSRF check, the (empty) body itself is what is refused.
    for header in [("X-Requested-With", "XMLHttpRequest".to_owned()), ("X-CSRF-Token", csrf.clone())] {
        let status = create(Some(header)).await.unwrap().status();
        assert!(status.is_client_error() && status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED, "{status}");
    }
    // Never a hub call: the cookie carries no instance token.
    let hub = http.get(format!("{root}/elements/api-v2/hubs/ecommerce/orders")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(hub.status(), StatusCode::UNAUTHORIZED);

    // POST logout from a cross-site form (no header, no token): refused, the session lives on.
    let logout = http.post(format!("{root}/elements/api-v2/logout")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    // A logout button's own form carries the token.
    let logout = http.post(format!("{root}/elements/api-v2/logout")).header(COOKIE, &cookie).form(&[("_csrf", &csrf)]).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared = logout.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("SWITCHYARD_SESSION=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let after = http.get(format!("{root}/elements/api-v1/ui/getSecrets")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // GET logout, and a password change, end sessions too.
    let (cookie, _) = session_cookie(&login(&http, &root, "admin@localhost", PASSWORD, None).await);
    let out = http.get(format!("{root}/elements/j_spring_security_logout")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(http.get(format!("{root}/elements/api-v2/instances")).header(COOKIE, &cookie).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let (cookie, _) = session_cookie(&login(&http, &root, "admin@localhost", PASSWORD, None).await);
    let changed = run(d, &["users", "set-password", &user_id], "another long password\n", &[]);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert_eq!(http.get(format!("{root}/elements/api-v2/instances")).header(COOKIE, &cookie).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login(&http, &root, "admin@localhost", PASSWORD, None).await.status(), StatusCode::UNAUTHORIZED);

    // Neither the passwords nor the secrets reached the log.
    let log = serve.stop();
    for secret in [PASSWORD, "another long password", user_secret, org_secret, &csrf] {
        assert!(!log.contains(secret), "the log holds a secret");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_made_before_sealing_ask_for_a_reset_and_sealed_ones_survive_rotate_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = ok_json(&run(d, &["init", "--json"], "", &[]));
    let org_id = first["organization"]["id"].to_string();
    // A user as an older Switchyard made it: the secret's hash only.
    {
        use sqlx::{Connection, Executor};
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", d.join("switchyard.db").display())).await.unwrap();
        db.execute(
            format!("INSERT INTO users (organization_id, email, secret_hash, created_at) VALUES ({org_id}, 'old@example.com', x'00ff', '2024-01-01T00:00:00.000Z')")
                .as_str(),
        )
        .await
        .unwrap();
    }
    let users = ok_json(&run(d, &["users", "list", "--json"], "", &[]));
    let old_id = users.as_array().unwrap().iter().find(|u| u["emailAddress"] == "old@example.com").unwrap()["id"].to_string();
    assert!(run(d, &["users", "set-password", &old_id], PASSWORD, &[]).status.success());

    let serve = Serve::start(d, &[], &[]);
    let (root, http) = (root(&serve), reqwest::Client::new());
    let (cookie, _) = session_cookie(&login(&http, &root, "old@example.com", PASSWORD, None).await);
    let get_secrets = || http.get(format!("{root}/elements/api-v1/ui/getSecrets")).header(COOKIE, &cookie).send();
    let (status, body) = json(get_secrets().await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&format!("switchyard users reset-secret {old_id}")), "{body}");

    let reset = ok_json(&run(d, &["users", "reset-secret", &old_id, "--json"], "", &[]));
    let (status, body) = json(get_secrets().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], reset["user"]["secret"]);
    assert_eq!(body["company"], first["organization"]["secret"]);
    serve.stop();

    // rotate-key moves the sealed secrets too: with only the new key, they still open.
    let rotated = ok_json(&run(d, &["rotate-key"], "", &[]));
    let key_file: Value = serde_json::from_slice(&std::fs::read(d.join("switchyard.key")).unwrap()).unwrap();
    let new_key = key_file["keys"].as_array().unwrap().iter().find(|k| k["id"] == rotated["currentKeyId"]).unwrap()["key"].as_str().unwrap().to_owned();
    let serve = Serve::start(d, &[], &[("SWITCHYARD_MASTER_KEY", &new_key)]);
    let root = self::root(&serve);
    let (cookie, _) = session_cookie(&login(&http, &root, "old@example.com", PASSWORD, None).await);
    let answer = http.get(format!("{root}/elements/api-v1/ui/getSecrets")).header(COOKIE, &cookie).send().await.unwrap();
    let (status, body) = json(answer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["user"], &body["company"]), (&reset["user"]["secret"], &first["organization"]["secret"]));
    serve.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_throttled_per_email_and_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = ok_json(&run(d, &["init", "--json"], "", &[]));
    let user_id = first["user"]["id"].to_string();
    assert!(run(d, &["users", "set-password", &user_id], PASSWORD, &[]).status.success());
    // Behind a trusted proxy (loopback here), X-Forwarded-For names the client.
    let serve = Serve::start(d, &["--trusted-proxy", "127.0.0.1"], &[]);
    let (root, http) = (root(&serve), reqwest::Client::new());

    // Ten wrong passwords for one email from ten addresses: the eleventh try for
    // that email is 429 even with the right password, from a new address too.
    for i in 0..10 {
        let r = login(&http, &root, "admin@localhost", "wrong password!!", Some(&format!("198.51.100.{i}"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "try {i}");
    }
    let r = login(&http, &root, "admin@localhost", PASSWORD, Some("198.51.100.200")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");

    // Tries are counted before the password is checked, so a concurrent burst
    // passes no more than ten either.
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let (http, root) = (http.clone(), root.clone());
            tokio::spawn(async move { login(&http, &root, "burst@example.com", "wrong password!!", Some(&format!("198.51.101.{i}"))).await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in burst {
        statuses.push(task.await.unwrap());
    }
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((statuses.len() - refused, refused), (10, 20), "{statuses:?}");

    // Ten failures from one address over ten emails: that address is held off,
    // others are not (the email's own count is what stops the right password above).
    for i in 0..10 {
        let r = login(&http, &root, &format!("guess{i}@example.com"), "wrong password!!", Some("203.0.113.5")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "try {i}");
    }
    assert_eq!(login(&http, &root, "guess99@example.com", "x", Some("203.0.113.5")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&http, &root, "guess99@example.com", "x", Some("203.0.113.6")).await.status(), StatusCode::UNAUTHORIZED);
    // A spoofed left-most hop does not escape: the proxy appends the real address.
    let r = login(&http, &root, "guess98@example.com", "x", Some("192.0.2.1, 203.0.113.5")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    serve.stop();

    // Without --trusted-proxy the header is the client's own claim: ignored, so
    // failures with ten different claimed addresses all count against 127.0.0.1.
    let serve = Serve::start(d, &[], &[]);
    let root = self::root(&serve);
    for i in 0..10 {
        let r = login(&http, &root, &format!("direct{i}@example.com"), "x", Some(&format!("10.9.9.{i}"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "try {i}");
    }
    let r = login(&http, &root, "direct99@example.com", "x", Some("10.9.9.99")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    serve.stop();
}
