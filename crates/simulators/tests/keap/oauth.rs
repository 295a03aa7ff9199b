//! The OAuth dance: authorize (page and auto-approve), code exchange, refresh rotation.

use reqwest::Method;
use serde_json::json;
use switchyard_simulators::keap::{DEMO_APP_NAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME};

use crate::common::{demo, until, Sim, CALLBACK};

fn hidden_consent(html: &str) -> String {
    let at = html.find("name=\"consent\" value=\"").expect("a consent field") + "name=\"consent\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Opens the authorize URL and signs in as the demo account's user: the consent page.
async fn consent_page(s: &Sim, url: String) -> String {
    let sign_in = s.http.get(url).send().await.unwrap().text().await.unwrap();
    let a = s
        .post_form("/app/oauth/authorize", &[("consent", &hidden_consent(&sign_in)), ("username", DEMO_USERNAME), ("password", DEMO_PASSWORD)], None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.text
}

/// Keap's authorize page signs the account's user in before it asks for the approval
/// (Keap's OAuth guide, developer.infusionsoft.com "Getting Started with OAuth2": the user
/// logs in to their Keap account, then allows the application). Automation written for
/// Keap's pages finds `#username`, `#password` and a submit `.btn-primary`, then `#approve`
/// as the first `.btn-primary` (the shape issue 13 records from such automation).
#[tokio::test]
async fn the_authorize_page_signs_in_before_the_approval() {
    let s = demo().await;
    let url = s.authorize_url(DEMO_CLIENT_ID, CALLBACK, "st9").await;
    let page = s.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<input id=\"username\" name=\"username\""), "{html}");
    assert!(html.contains("<input id=\"password\" name=\"password\" type=\"password\""), "{html}");
    assert!(html.contains("<button type=\"submit\" id=\"sign-in\" class=\"btn-primary\">"), "{html}");
    assert!(!html.contains("value=\"approve\""), "no approval before the sign-in");
    let pending = hidden_consent(&html);

    // Approving without signing in is refused, and does not use the request up.
    let early = s.post_form("/app/oauth/authorize", &[("consent", &pending), ("decision", "approve")], None).await;
    assert_eq!(early.status, 400);
    assert!(early.header("location").is_none());
    // A wrong password: the sign-in page again, with an error and no approval.
    let wrong = s.post_form("/app/oauth/authorize", &[("consent", &pending), ("username", DEMO_USERNAME), ("password", "guess-guess")], None).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("id=\"error\"") && wrong.text.contains("id=\"password\"") && !wrong.text.contains("value=\"approve\""));
    // The e-mail's case does not matter.
    let again = hidden_consent(&wrong.text);
    let ok = s
        .post_form("/app/oauth/authorize", &[("consent", &again), ("username", &DEMO_USERNAME.to_uppercase()), ("password", DEMO_PASSWORD)], None)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let first_primary = ok.text.find("btn-primary\"").unwrap();
    assert!(ok.text[..first_primary].ends_with("<button type=\"submit\" id=\"approve\" class=\""), "{}", ok.text);
    assert!(ok.text.contains("id=\"deny\" class=\"btn-secondary\""));
    // The id of the signed-in request is new: the one seen before the sign-in is spent.
    let consent = hidden_consent(&ok.text);
    assert_ne!(consent, again);
    assert_eq!(s.post_form("/app/oauth/authorize", &[("consent", &again), ("decision", "approve")], None).await.status, 400);
    let a = s.post_form("/app/oauth/authorize", &[("consent", &consent), ("decision", "approve")], None).await;
    let q = a.redirect_query();
    assert_eq!(q["state"], "st9");
    assert!(q.contains_key("code"));
}

#[tokio::test]
async fn auto_approve_then_exchange_gives_keaps_token_answer_once() {
    let s = demo().await;
    s.control(Method::PUT, "/_sim/settings", Some(json!({ "auto_approve": true }))).await;
    let url = s.authorize_url(DEMO_CLIENT_ID, CALLBACK, "xyz 1").await;
    let a = s.get(url.trim_start_matches(&s.url(""))).await;
    let q = a.redirect_query();
    assert!(a.header("location").unwrap().starts_with(CALLBACK));
    assert_eq!(q["state"], "xyz 1");
    let code = q["code"].clone();

    let t = s.exchange(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    let v = t.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "refresh_token", "expires_in", "token_type", "scope"]);
    assert_eq!(v["expires_in"], 86400);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["scope"], "full|sandbox123.infusionsoft.com");
    assert_ne!(v["access_token"], v["refresh_token"]);

    // Single use.
    let again = s.exchange(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &code).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
    assert!(again.json()["error_description"].as_str().is_some_and(|d| !d.is_empty()));

    let calls = s.control(Method::GET, "/_sim/token-calls", None).await.json();
    assert_eq!(calls, json!({ "total": 2, "authorization_code": 2, "refresh_token": 0, "other": 0 }));
    assert_eq!(s.sim.app_token_calls(DEMO_CLIENT_ID).unwrap().authorization_code, 2);
}

#[tokio::test]
async fn the_consent_page_approves_with_a_form_post() {
    let s = demo().await;
    let url = s.authorize_url(DEMO_CLIENT_ID, "https://app.example.com/cb?tenant=7", "st8").await;
    let page = s.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = consent_page(&s, url).await;
    assert!(html.contains(DEMO_APP_NAME));
    assert!(html.contains("data-scope=\"full\""));
    assert!(html.contains("<form method=\"post\" action=\"/app/oauth/authorize\">"));
    assert!(html.contains("value=\"approve\"") && html.contains(">Approve</button>"));
    assert!(html.contains("value=\"deny\"") && html.contains(">Deny</button>"));
    let consent = hidden_consent(&html);

    let a = s.post_form("/app/oauth/authorize", &[("consent", &consent), ("decision", "approve")], None).await;
    let loc = a.header("location").unwrap().to_owned();
    assert!(loc.starts_with("https://app.example.com/cb?tenant=7&code="), "{loc}");
    let q = a.redirect_query();
    assert_eq!(q["state"], "st8");
    assert_eq!(q["tenant"], "7");

    // A consent is answered once.
    let again = s.post_form("/app/oauth/authorize", &[("consent", &consent), ("decision", "approve")], None).await;
    assert_eq!(again.status, 400);
    assert!(again.header("location").is_none());

    // The code is bound to the redirect URI it was issued for.
    let t = s
        .post_form(
            "/token",
            &[("grant_type", "authorization_code"), ("code", &q["code"]), ("redirect_uri", "https://app.example.com/other")],
            Some((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)),
        )
        .await;
    assert_eq!(t.status, 400);
    assert_eq!(t.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let s = demo().await;
    let html = consent_page(&s, s.authorize_url(DEMO_CLIENT_ID, CALLBACK, "abc").await).await;
    let a = s.post_form("/app/oauth/authorize", &[("consent", &hidden_consent(&html)), ("decision", "deny")], None).await;
    let q = a.redirect_query();
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "abc");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn bad_clients_and_redirect_uris_get_an_error_page_not_a_redirect() {
    let s = demo().await;
    s.sim.set_auto_approve(true);
    for (client, redirect) in [
        ("nobody", CALLBACK),
        (DEMO_CLIENT_ID, "http://example.com/cb"),
        (DEMO_CLIENT_ID, "not a url"),
        (DEMO_CLIENT_ID, "https://example.com/cb#x"),
        (DEMO_CLIENT_ID, ""),
    ] {
        let a = s.http.get(s.authorize_url(client, redirect, "s").await).send().await.unwrap();
        assert_eq!(a.status(), 400, "{client} {redirect}");
        assert!(a.headers().get("location").is_none());
        assert!(a.text().await.unwrap().contains("Authorization failed"));
    }
    // Once the redirect URI is trusted, protocol errors go back to it.
    let a = s.get(&format!("/app/oauth/authorize?client_id={DEMO_CLIENT_ID}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=token&state=q")).await;
    let q = a.redirect_query();
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "q");
}

#[tokio::test]
async fn token_endpoint_errors_follow_keap() {
    let s = demo().await;
    let code = s.code_for(DEMO_CLIENT_ID).await;
    let wrong = s.exchange(DEMO_CLIENT_ID, "wrong-secret", &code).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "invalid_client");
    let unknown = s.exchange("nobody", DEMO_CLIENT_SECRET, &code).await;
    assert_eq!(unknown.status, 401);
    // The refused attempts did not burn the code.
    assert_eq!(s.exchange(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &code).await.status, 200);

    let missing = s.post_form("/token", &[("grant_type", "authorization_code")], Some((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))).await;
    assert_eq!((missing.status.as_u16(), missing.json()["error"].as_str()), (400, Some("invalid_request")));
    let no_grant = s.post_form("/token", &[], Some((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))).await;
    assert_eq!((no_grant.status.as_u16(), no_grant.json()["error"].as_str()), (400, Some("invalid_request")));
    let other = s.post_form("/token", &[("grant_type", "password")], Some((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))).await;
    assert_eq!(other.json()["error"], "unsupported_grant_type");

    // Short-lived codes.
    s.control(Method::PUT, "/_sim/settings", Some(json!({ "code_lifetime_s": 0 }))).await;
    let stale = s.code_for(DEMO_CLIENT_ID).await;
    let t = s.exchange(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &stale).await;
    assert_eq!((t.status.as_u16(), t.json()["error"].as_str()), (400, Some("invalid_grant")));

    let calls = s.sim.token_calls();
    assert_eq!((calls.total, calls.authorization_code, calls.other), (7, 5, 2));
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_dies_at_once() {
    let s = demo().await;
    let (access1, refresh1) = s.tokens().await;
    let r = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &refresh1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let (access2, refresh2) = (v["access_token"].as_str().unwrap().to_owned(), v["refresh_token"].as_str().unwrap().to_owned());
    assert_ne!(refresh1, refresh2);
    assert_ne!(access1, access2);
    assert_eq!(v["scope"], "full|sandbox123.infusionsoft.com");

    let old = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &refresh1).await;
    assert_eq!(old.status, 400);
    assert_eq!(old.json()["error"], "invalid_grant");

    // Client authentication is required, and the token is bound to its client.
    let anon = s.post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh2)], None).await;
    assert_eq!(anon.status, 401);
    // A wrong secret (RFC 6749 5.2): 401 invalid_client, and the refresh token is not spent.
    let bad = s.refresh(DEMO_CLIENT_ID, "nope", &refresh2).await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["error"], "invalid_client");
    assert!(bad.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")));
    s.control(Method::POST, "/_sim/apps", Some(crate::common::json_app("other", "other-key"))).await;
    let foreign = s.refresh("other", "other-secret", &refresh2).await;
    assert_eq!(foreign.status, 400);

    // Still usable by its own client, and both access tokens work until they expire.
    let r3 = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &refresh2).await;
    assert_eq!(r3.status, 200);
    assert!(s.call(&access1, "DataService.echo", vec!["a".into()]).await.is_ok());
    assert!(s.call(&access2, "DataService.echo", vec!["a".into()]).await.is_ok());

    let c = s.sim.app_token_calls(DEMO_CLIENT_ID).unwrap();
    assert_eq!((c.authorization_code, c.refresh_token), (1, 4));
}

#[tokio::test]
async fn expired_access_tokens_get_401_and_refresh_restores_access() {
    let s = demo().await;
    let (access, refresh) = s.tokens().await;
    assert!(s.call(&access, "DataService.echo", vec!["hi".into()]).await.is_ok());
    let e = s.control(Method::POST, &format!("/_sim/apps/{DEMO_CLIENT_ID}/expire-tokens"), None).await;
    assert_eq!(e.json()["expired"], 1);
    let a = s.rpc_raw(Some(&access), "DataService.echo", vec!["k".into(), "hi".into()]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["fault"]["faultstring"], "Access Token expired");
    assert_eq!(a.json()["fault"]["detail"]["errorcode"], "keymanagement.service.access_token_expired");

    let r = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &refresh).await.json();
    assert!(s.call(r["access_token"].as_str().unwrap(), "DataService.echo", vec!["hi".into()]).await.is_ok());

    // A configured lifetime shows in expires_in; zero means expired on arrival.
    s.control(Method::PUT, "/_sim/settings", Some(json!({ "access_token_lifetime_s": 0 }))).await;
    let r = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, r["refresh_token"].as_str().unwrap()).await.json();
    assert_eq!(r["expires_in"], 0);
    assert_eq!(s.rpc_raw(r["access_token"].as_str(), "DataService.echo", vec!["k".into()]).await.status, 401);

    // Revocation kills the refresh token too.
    s.control(Method::POST, &format!("/_sim/apps/{DEMO_CLIENT_ID}/revoke-tokens"), None).await;
    let dead = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, r["refresh_token"].as_str().unwrap()).await;
    assert_eq!((dead.status.as_u16(), dead.json()["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn unknown_or_missing_bearer_tokens_get_401() {
    let s = demo().await;
    for token in [None, Some("not-a-token")] {
        let a = s.rpc_raw(token, "DataService.echo", vec!["k".into()]).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.json()["fault"]["faultstring"], "Invalid Access Token");
    }
}

#[tokio::test]
async fn a_malformed_basic_header_is_invalid_client() {
    let s = demo().await;
    let a = s
        .http
        .post(s.url("/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 401);
    assert!(a.headers().contains_key("www-authenticate"));
    assert_eq!(a.json::<serde_json::Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(s.sim.token_calls().refresh_token, 1);
}

#[tokio::test]
async fn a_late_token_answer_has_already_rotated_the_pair() {
    let s = demo().await;
    let (_, refresh) = s.tokens().await;
    let set = s.control(Method::PUT, "/_sim/settings", Some(json!({ "token_answer_delay_ms": 300 }))).await;
    assert_eq!(set.json()["token_answer_delay_ms"], 300);
    let slow = {
        let (http, url, refresh) = (s.http.clone(), s.url("/token"), refresh.clone());
        tokio::spawn(async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            http.post(url).basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET)).form(&form).send().await.unwrap().status()
        })
    };
    until(std::time::Duration::from_secs(10), "the slow refresh", || s.sim.token_calls().refresh_token > 0).await;
    assert_eq!(s.sim.token_calls().refresh_token, 1, "the slow refresh arrived");
    // While that answer is still on its way, the refresh token it presented is dead.
    let again = s.refresh(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &refresh).await;
    assert_eq!((again.status.as_u16(), again.json()["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(slow.await.unwrap(), 200);
}
