//! The authorize page in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver, signs in, clicks Approve and lands on a loopback receiver with the code.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them the test fails and says so: a silently skipped browser test is no test.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use fantoccini::{Client, Locator};
use reqwest::Method;
use switchyard_simulators::keap::{DEMO_APP_NAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME};
use tokio::sync::mpsc;

use crate::common::demo;

#[path = "../support/webdriver.rs"]
mod webdriver;
use webdriver::{required, ChromeDriver, GIVE_UP};

/// The redirect_uri's owner: a loopback server that hands each callback's query to the
/// test and shows the browser a small page.
async fn receiver() -> (String, mpsc::UnboundedReceiver<HashMap<String, String>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/oauth/callback",
            get(|State(tx): State<mpsc::UnboundedSender<HashMap<String, String>>>, Query(q): Query<HashMap<String, String>>| async move {
                let _ = tx.send(q);
                Html("<!DOCTYPE html><title>Connected</title><p id=\"done\">Connected</p>")
            }),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/oauth/callback"), rx)
}

/// What the person at the browser does, as automation written for Keap's page does it:
/// sign in through `#username`, `#password` and the first `.btn-primary`, read the
/// consent page, then click the first `.btn-primary`, which is `#approve`.
async fn approve_in_browser(browser: Client, authorize_url: String, callback: String) {
    browser.goto(&authorize_url).await.unwrap();
    assert!(browser.title().await.unwrap().contains(DEMO_APP_NAME));
    browser.find(Locator::Id("username")).await.unwrap().send_keys(DEMO_USERNAME).await.unwrap();
    let password = browser.find(Locator::Css("input#password[name=password]")).await.unwrap();
    assert_eq!(password.attr("type").await.unwrap().as_deref(), Some("password"));
    password.send_keys(DEMO_PASSWORD).await.unwrap();
    let submit = browser.find(Locator::Css(".btn-primary")).await.unwrap();
    assert_eq!(submit.attr("type").await.unwrap().as_deref(), Some("submit"));
    submit.click().await.unwrap();

    // The consent page, once the sign-in is through.
    browser.wait().at_most(GIVE_UP).for_element(Locator::Id("approve")).await.unwrap();
    assert!(browser.title().await.unwrap().contains(DEMO_APP_NAME));
    let app = browser.find(Locator::Id("app-name")).await.unwrap();
    assert_eq!(app.text().await.unwrap(), DEMO_APP_NAME);
    let scope = browser.find(Locator::Id("scope")).await.unwrap();
    assert_eq!(scope.attr("data-scope").await.unwrap().as_deref(), Some("full"));
    assert!(scope.text().await.unwrap().starts_with("Full access to your Keap account"));
    assert!(browser.find(Locator::Id("deny")).await.unwrap().is_displayed().await.unwrap());

    let first = browser.find(Locator::Css(".btn-primary")).await.unwrap();
    assert_eq!(first.attr("id").await.unwrap().as_deref(), Some("approve"));
    let deny_class = browser.find(Locator::Id("deny")).await.unwrap().attr("class").await.unwrap().unwrap_or_default();
    assert!(!deny_class.split_whitespace().any(|c| c == "btn-primary"), "{deny_class}");
    first.click().await.unwrap();
    // The browser followed the redirect to the receiver and rendered its page.
    let done = browser.wait().at_most(GIVE_UP).for_element(Locator::Id("done")).await.unwrap();
    assert_eq!(done.text().await.unwrap(), "Connected");
    assert!(browser.current_url().await.unwrap().as_str().starts_with(&format!("{callback}?")));
}

#[tokio::test]
async fn chromium_clicks_approve_and_the_code_buys_a_token() {
    let (chromium, chromedriver) = (required("chromium"), required("chromedriver"));
    let s = demo().await;
    let settings = s.control(Method::GET, "/_sim/settings", None).await.json();
    assert_eq!(settings["auto_approve"], false, "the page must be shown, not skipped");
    let (callback, mut callbacks) = receiver().await;
    let state = "st-4 ünïcode&more";
    let authorize_url = s.authorize_url(DEMO_CLIENT_ID, &callback, state).await;

    let driver = ChromeDriver::start(&chromedriver).await;
    let browser = driver.session(&chromium, 1024, 768).await;
    // The browser part runs in its own task so the session and the driver are shut
    // down whether or not its assertions hold; the failure is raised afterwards.
    let outcome = tokio::spawn(approve_in_browser(browser.clone(), authorize_url, callback.clone())).await;
    let _ = browser.close().await;
    driver.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }

    let q = tokio::time::timeout(GIVE_UP, callbacks.recv()).await.expect("no callback").expect("receiver closed");
    assert_eq!(q["state"], state);
    assert!(!q.contains_key("error"), "{q:?}");
    let code = q.get("code").expect("a code in the callback");
    assert!(callbacks.try_recv().is_err(), "exactly one callback");

    let t = s
        .post_form(
            "/token",
            &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &callback)],
            Some((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let v = t.json();
    assert!(v["access_token"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(v["token_type"], "bearer");
    // And the token works on the API.
    assert!(s.call(v["access_token"].as_str().unwrap(), "DataService.echo", vec!["hi".into()]).await.is_ok());
}
