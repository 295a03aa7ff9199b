//! The console and the Connect page in a real headless Chromium, against `switchyard
//! serve --sandbox` (the simulators inside): log in, connect BigCommerce (a refusal
//! first), connect Infusionsoft through the Keap simulator's sign-in and approval,
//! browse orders in the explorer, see a polled event appear without a reload and
//! redeliver it, and a Connect session from its token to the instance, with a reused
//! and an expired token refused.
//!
//! Each test saves a screenshot of its last page under `target/screenshots/`.

mod common;

#[path = "../../simulators/tests/support/webdriver.rs"]
mod webdriver;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use base64::Engine as _;
use common::{until, Serve};
use fantoccini::{Client, Locator};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use webdriver::{required, ChromeDriver, GIVE_UP};

/// What the test's own server heard: event messages (body, signature header) and
/// the Connect page's redirects (query).
#[derive(Clone, Default)]
struct Heard {
    hooks: Arc<Mutex<Vec<(Value, String)>>>,
    redirects: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

/// A loopback server standing for the organization's app: `POST /hook` takes
/// event messages, `GET /done` is the Connect page's `redirectUrl`.
async fn app_server() -> (String, Heard) {
    let heard = Heard::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|State(h): State<Heard>, headers: HeaderMap, body: Bytes| async move {
                let signature = headers.get("elements-webhook-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let raw = String::from_utf8_lossy(&body).into_owned();
                h.hooks
                    .lock()
                    .unwrap()
                    .push((json!({"raw": raw, "json": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)}), signature));
                "ok"
            }),
        )
        .route(
            "/done",
            axum::routing::get(|State(h): State<Heard>, Query(q): Query<HashMap<String, String>>| async move {
                h.redirects.lock().unwrap().push(q);
                Html("<!DOCTYPE html><title>Back in the app</title><p id=\"done\">Back in the app</p>")
            }),
        )
        .with_state(heard.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), heard)
}

/// `serve --sandbox` in a fresh directory, and what it printed.
struct Platform {
    dir: tempfile::TempDir,
    serve: Serve,
    origin: String,
    auth: String,
    sandbox: Value,
    login: Value,
}

fn platform() -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--sandbox"], &[]);
    let origin = serve.base.trim_end_matches("/elements/api-v2").to_owned();
    let auth = serve.stdout.iter().find_map(|v| v["authorization"].as_str()).unwrap().to_owned();
    let sandbox = serve.stdout.iter().find_map(|v| v.get("sandbox")).cloned().unwrap();
    let login = serve.stdout.iter().find_map(|v| v.get("console")).cloned().expect("serve --sandbox prints the console login");
    Platform { dir, serve, origin, auth, sandbox, login }
}

/// Runs `steps` in a fresh Chromium; saves a screenshot of the last page as
/// `target/screenshots/{name}.png` whatever happened, then raises any failure.
async fn in_browser<F, Fut>(name: &str, steps: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (chromium, chromedriver) = (required("chromium"), required("chromedriver"));
    let driver = ChromeDriver::start(&chromedriver).await;
    let browser = driver.session(&chromium, 1280, 900).await;
    let outcome = tokio::spawn(steps(browser.clone())).await;
    if let Ok(png) = browser.screenshot().await {
        // CARGO_TARGET_TMPDIR is `<target>/tmp`.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
    let _ = browser.close().await;
    driver.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn fill(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks what does not leave the page (a checkbox, a `<summary>`).
async fn click(browser: &Client, id: &str) {
    browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}")).click().await.unwrap();
}

/// Clicks a link or submit button and waits for the next page: WebDriver's click
/// may return before the navigation starts, and the old page's elements (same
/// ids) would be read instead.
async fn follow(browser: &Client, element: fantoccini::elements::Element) {
    browser.execute("window.__left = true", vec![]).await.unwrap();
    element.click().await.unwrap();
    until_new_page(browser).await;
}

/// Waits until the page marked by [`follow`] has been replaced and has loaded.
async fn until_new_page(browser: &Client) {
    let deadline = std::time::Instant::now() + GIVE_UP;
    loop {
        let done = browser.execute("return window.__left === undefined && document.readyState === 'complete'", vec![]).await;
        if done.is_ok_and(|v| v == true) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no new page after the click");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// [`follow`] on what `css` finds in a live table, which the page's script
/// replaces every two seconds: found and clicked again if it went stale between.
async fn follow_live(browser: &Client, css: &str) {
    browser.execute("window.__left = true", vec![]).await.unwrap();
    let deadline = std::time::Instant::now() + GIVE_UP;
    loop {
        let clicked = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing to click at {css}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    until_new_page(browser).await;
}

/// The text of what `css` finds in a live table, once it is there (read again
/// if the table was replaced between finding and reading).
async fn live_text(browser: &Client, css: &str) -> String {
    let deadline = std::time::Instant::now() + GIVE_UP;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                return text;
            }
        }
        assert!(std::time::Instant::now() < deadline, "nothing at {css}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// [`follow`] on the element with this id.
async fn submit(browser: &Client, id: &str) {
    let element = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}"));
    follow(browser, element).await;
}

async fn text_of(browser: &Client, id: &str) -> String {
    browser.wait().at_most(GIVE_UP).for_element(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no #{id}: {e}")).text().await.unwrap()
}

/// Logs in with the demo login `serve --sandbox` printed, from any console page.
async fn log_in(browser: &Client, origin: &str, login: &Value) {
    browser.goto(&format!("{origin}/console/instances")).await.unwrap();
    // Not logged in: the login page, which returns here afterwards.
    assert!(browser.current_url().await.unwrap().path().ends_with("/console/login"));
    fill(browser, "j_username", login["email"].as_str().unwrap()).await;
    fill(browser, "j_password", "not-the-password").await;
    submit(browser, "login").await;
    assert_eq!(text_of(browser, "login-error").await, "Wrong email or password");
    fill(browser, "j_password", login["password"].as_str().unwrap()).await;
    submit(browser, "login").await;
    browser.wait().at_most(GIVE_UP).for_url(&url::Url::parse(&format!("{origin}/console/instances")).unwrap()).await.unwrap();
}

/// Fills BigCommerce's connect form (legacy API account) on the page shown.
async fn fill_bigcommerce(browser: &Client, sandbox: &Value, token: &str) {
    let bc = &sandbox["bigcommerce"];
    fill(browser, "f-username", bc["username"].as_str().unwrap()).await;
    fill(browser, "f-password", token).await;
    fill(browser, "f-store.url", bc["storeUrl"].as_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_connects_bigcommerce_after_a_refusal_and_browses_orders() {
    let p = platform();
    let (origin, login, sandbox) = (p.origin.clone(), p.login.clone(), p.sandbox.clone());
    in_browser("console_bigcommerce", move |browser| async move {
        log_in(&browser, &origin, &login).await;
        browser.goto(&format!("{origin}/console/elements")).await.unwrap();
        follow(&browser, browser.find(Locator::LinkText("BigCommerce")).await.unwrap()).await;
        // Each credential's setup guide is beside its field.
        let guide = browser.find(Locator::Css("#connect-form details.guide")).await.unwrap();
        assert!(guide.html(false).await.unwrap().contains("Legacy API"));

        let name = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"> shop";
        fill(&browser, "f-name", name).await;
        fill(&browser, "f-tags", "eu, <b>bold</b>").await;
        fill_bigcommerce(&browser, &sandbox, "wrong-token").await;
        submit(&browser, "connect").await;
        // The vendor's own words, and the form again without the token typed.
        let refusal = text_of(&browser, "connect-error").await;
        assert!(refusal.contains("The username or API token supplied is invalid"), "{refusal}");
        assert_eq!(browser.find(Locator::Id("f-password")).await.unwrap().prop("value").await.unwrap().as_deref(), Some(""));
        assert!(!browser.source().await.unwrap().contains("wrong-token"));
        assert_eq!(browser.find(Locator::Id("f-name")).await.unwrap().prop("value").await.unwrap().as_deref(), Some(name));

        fill_bigcommerce(&browser, &sandbox, sandbox["bigcommerce"]["apiToken"].as_str().unwrap()).await;
        submit(&browser, "connect").await;
        assert!(text_of(&browser, "notice").await.starts_with("Connected"));
        // Markup in user input is text: shown as typed, never run.
        assert_eq!(text_of(&browser, "instance-name").await, name);
        assert_eq!(browser.execute("return typeof window.pwned", vec![]).await.unwrap(), "undefined");
        let tags: Vec<String> = {
            let mut out = Vec::new();
            for t in browser.find_all(Locator::Css("p.meta .tag")).await.unwrap() {
                out.push(t.text().await.unwrap());
            }
            out
        };
        assert_eq!(tags, ["eu", "<b>bold</b>"]);
        // The API token is masked.
        assert!(browser.find(Locator::Css("dl.config")).await.unwrap().text().await.unwrap().contains("********"));

        // Disable, enable.
        submit(&browser, "toggle-enabled").await;
        assert!(browser.find(Locator::Css("p.meta")).await.unwrap().text().await.unwrap().contains("disabled"));
        assert_eq!(text_of(&browser, "toggle-enabled").await, "Enable");
        submit(&browser, "toggle-enabled").await;
        assert_eq!(text_of(&browser, "toggle-enabled").await, "Disable");

        // Orders through the explorer: the call runs as the instance, no token shown.
        submit(&browser, "explore").await;
        let orders = browser
            .find(Locator::XPath("//table[@id='operations']//tr[td[1]='GET' and td[2]/a/code='/hubs/ecommerce/orders']//a"))
            .await
            .unwrap();
        follow(&browser, orders).await;
        assert_eq!(
            browser.find(Locator::Id("x-path")).await.unwrap().prop("value").await.unwrap().as_deref(),
            Some("/hubs/ecommerce/orders")
        );
        fill(&browser, "x-query", "pageSize=3").await;
        submit(&browser, "try").await;
        assert_eq!(text_of(&browser, "answer-status").await, "200");
        let body: Value = serde_json::from_str(&text_of(&browser, "answer-body").await).unwrap();
        assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");
        assert!(body[0]["id"].is_number());
        assert!(browser.find(Locator::Id("answer")).await.unwrap().text().await.unwrap().contains("elements-next-page-token"));

        // Readable on a phone: nothing wider than a 360 px screen but the tables'
        // own scrolling boxes.
        browser.set_window_size(360, 800).await.unwrap();
        browser.goto(&format!("{origin}/console/instances")).await.unwrap();
        let width = browser.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap();
        let inner = browser.execute("return window.innerWidth", vec![]).await.unwrap();
        assert!(width.as_i64().unwrap() <= inner.as_i64().unwrap(), "page {width} px wide in a {inner} px window");

        // Delete, after a confirmation page (the instance page fits the phone too).
        follow(&browser, browser.find(Locator::Css("#instances a")).await.unwrap()).await;
        let width = browser.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap();
        assert!(width.as_i64().unwrap() <= inner.as_i64().unwrap(), "instance page {width} px wide in a {inner} px window");
        submit(&browser, "delete").await;
        submit(&browser, "confirm-delete").await;
        assert_eq!(text_of(&browser, "notice").await, "The instance is deleted.");
        assert!(browser.find(Locator::Id("instances")).await.is_err(), "no instance is left");
    })
    .await;
    p.serve.stop();
    drop(p.dir);
}

/// On the Keap simulator's authorize page: signs in with the sandbox account, then approves.
async fn keap_approve(browser: &Client, sandbox: &Value) {
    let keap = &sandbox["keap"];
    browser.wait().at_most(GIVE_UP).for_element(Locator::Id("username")).await.unwrap();
    fill(browser, "username", keap["username"].as_str().unwrap()).await;
    fill(browser, "password", keap["password"].as_str().unwrap()).await;
    follow(browser, browser.find(Locator::Css(".btn-primary")).await.unwrap()).await;
    follow(browser, browser.wait().at_most(GIVE_UP).for_element(Locator::Id("approve")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_connects_infusionsoft_through_the_keap_sign_in() {
    let p = platform();
    let (origin, login, sandbox) = (p.origin.clone(), p.login.clone(), p.sandbox.clone());
    in_browser("console_infusionsoft", move |browser| async move {
        log_in(&browser, &origin, &login).await;
        browser.goto(&format!("{origin}/console/elements/infusionsoftcrm")).await.unwrap();
        // The redirect URI to register at Keap is this server's.
        assert_eq!(text_of(&browser, "callback-url").await, format!("{origin}/connect/oauth/callback"));
        let keap = &sandbox["keap"];
        fill(&browser, "f-name", "Keap account").await;
        fill(&browser, "f-infusionsoft.private.key", keap["privateKey"].as_str().unwrap()).await;
        fill(&browser, "f-oauth.api.key", keap["clientId"].as_str().unwrap()).await;
        fill(&browser, "f-oauth.api.secret", keap["clientSecret"].as_str().unwrap()).await;
        submit(&browser, "connect").await;

        keap_approve(&browser, &sandbox).await;

        // Back in the console, the instance made with the code.
        assert!(text_of(&browser, "notice").await.starts_with("Connected"));
        assert_eq!(text_of(&browser, "instance-name").await, "Keap account");
        let config = browser.find(Locator::Css("dl.config")).await.unwrap().text().await.unwrap();
        assert!(config.contains("oauth.user.token") && !config.contains(keap["clientSecret"].as_str().unwrap()), "{config}");
        // Authorize again: Keap's pages once more, then the instance's tokens are new.
        submit(&browser, "reauthorize").await;
        keap_approve(&browser, &sandbox).await;
        assert_eq!(text_of(&browser, "notice").await, "Authorized again.");
        // And it works: contacts through the explorer.
        submit(&browser, "explore").await;
        fill(&browser, "x-path", "/hubs/crm/contacts").await;
        fill(&browser, "x-query", "pageSize=2").await;
        submit(&browser, "try").await;
        assert_eq!(text_of(&browser, "answer-status").await, "200");
    })
    .await;
    p.serve.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn console_shows_a_polled_event_live_and_redelivers_it() {
    let p = platform();
    let (app, heard) = app_server().await;
    let (origin, login, sandbox) = (p.origin.clone(), p.login.clone(), p.sandbox.clone());
    let seen = heard.clone();
    in_browser("console_events", move |browser| async move {
        log_in(&browser, &origin, &login).await;
        browser.goto(&format!("{origin}/console/elements/bigcommerce")).await.unwrap();
        fill(&browser, "f-name", "polled shop").await;
        fill_bigcommerce(&browser, &sandbox, sandbox["bigcommerce"]["apiToken"].as_str().unwrap()).await;
        browser.find(Locator::XPath("//details[summary='Events']/summary")).await.unwrap().click().await.unwrap();
        click(&browser, "f-event.notification.enabled").await;
        fill(&browser, "f-event.notification.callback.url", &format!("{app}/hook")).await;
        fill(&browser, "f-event.notification.signature.key", "console-key").await;
        fill(&browser, "f-event.poller.refresh_interval", "0.05").await;
        fill(&browser, "f-event.objects", "customers").await;
        submit(&browser, "connect").await;
        assert!(text_of(&browser, "notice").await.starts_with("Connected"));
        assert!(browser.find(Locator::Id("no-events")).await.is_ok());

        // A customer appears at the vendor; the page shows its event without a reload.
        let store = sandbox["bigcommerce"]["storeUrl"].as_str().unwrap();
        let created: Value = json_of(
            reqwest::Client::new()
                .post(format!("{store}/customers"))
                .basic_auth(sandbox["bigcommerce"]["username"].as_str().unwrap(), sandbox["bigcommerce"]["apiToken"].as_str())
                .json(&json!({"first_name": "Live", "last_name": "Event", "email": "live@example.com"})),
        )
        .await;
        let customer = created["id"].as_i64().unwrap().to_string();
        let text = live_text(&browser, "#events tr[data-event]").await;
        assert!(text.contains(&format!("customers {customer} CREATED")), "{text}");
        until(GIVE_UP, "the first delivery", || !seen.hooks.lock().unwrap().is_empty()).await;
        // The delivered state shows once the table refreshes after the delivery.
        browser.wait().at_most(GIVE_UP).for_element(Locator::Css("#events td.state-delivered")).await.unwrap();

        follow_live(&browser, "#events tr[data-event] button").await;
        assert_eq!(text_of(&browser, "notice").await, "The event is queued for delivery again.");
        until(GIVE_UP, "the redelivery", || seen.hooks.lock().unwrap().len() >= 2).await;
    })
    .await;
    let hooks = heard.hooks.lock().unwrap().clone();
    let id = |h: &(Value, String)| h.0["json"]["message"]["eventId"].as_str().unwrap().to_owned();
    assert_eq!(id(&hooks[0]), id(&hooks[1]), "the same event, delivered again");
    for (body, signature) in &hooks {
        assert_eq!(signature, &elements_signature("console-key", body["raw"].as_str().unwrap()));
    }
    p.serve.stop();
}

/// The JSON answer of a request.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// `sha256=<base64 HMAC-SHA256(key, body)>`, computed here independently.
fn elements_signature(key: &str, body: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_session_goes_from_token_to_instance_once() {
    let p = platform();
    let (app, heard) = app_server().await;
    let http = reqwest::Client::new();
    let api = format!("{}/elements/api-v2", p.origin);
    let session: Value = {
        let r = http
            .post(format!("{api}/connect/sessions"))
            .header("Authorization", &p.auth)
            .json(&json!({
                "elements": ["bigcommerce", "infusionsoftcrm"], "name": "Customer <7> shop", "tags": ["customer-7"],
                "redirectUrl": format!("{app}/done?from=connect"), "callbackUrl": format!("{app}/hook"), "signatureKey": "connect-key",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    };
    let url = session["url"].as_str().unwrap().to_owned();
    // The page sets no cookie and may not be framed (no embedding origin configured).
    let page = http.get(&url).send().await.unwrap();
    assert!(page.headers().get("set-cookie").is_none());
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");

    let sandbox = p.sandbox.clone();
    let (page_url, seen) = (url.clone(), heard.clone());
    in_browser("connect_session", move |browser| async move {
        browser.goto(&page_url).await.unwrap();
        // Two elements allowed: the customer picks one.
        follow(&browser, browser.find(Locator::LinkText("BigCommerce")).await.unwrap()).await;
        assert!(browser.find(Locator::Css("#connect-form details.guide")).await.is_ok());
        fill_bigcommerce(&browser, &sandbox, "wrong-token").await;
        submit(&browser, "connect").await;
        let refusal = text_of(&browser, "connect-error").await;
        assert!(refusal.contains("The username or API token supplied is invalid"), "{refusal}");
        fill_bigcommerce(&browser, &sandbox, sandbox["bigcommerce"]["apiToken"].as_str().unwrap()).await;
        submit(&browser, "connect").await;
        // Back in the organization's app with the instance id.
        browser.wait().at_most(GIVE_UP).for_element(Locator::Id("done")).await.unwrap();
        assert!(browser.get_all_cookies().await.unwrap().is_empty(), "the Connect page keeps no cookie");
        until(GIVE_UP, "INSTANCE_CREATED at the callback URL", || !seen.hooks.lock().unwrap().is_empty()).await;

        // The link works once.
        browser.goto(&page_url).await.unwrap();
        assert_eq!(browser.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), "This link was used already");
    })
    .await;

    let redirects = heard.redirects.lock().unwrap().clone();
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0]["from"], "connect");
    let instance_id: i64 = redirects[0]["instanceId"].parse().unwrap();
    let status: Value = json_of(http.get(format!("{api}/connect/sessions/{}", session["id"])).header("Authorization", &p.auth)).await;
    assert_eq!((status["status"].as_str(), status["instanceId"].as_i64()), (Some("completed"), Some(instance_id)), "{status}");
    let instance = json_of(http.get(format!("{api}/instances/{instance_id}")).header("Authorization", &p.auth)).await;
    assert_eq!((instance["name"].as_str(), instance["tags"].clone()), (Some("Customer <7> shop"), json!(["customer-7"])));
    let (message, signature) = heard.hooks.lock().unwrap()[0].clone();
    assert_eq!(signature, elements_signature("connect-key", message["raw"].as_str().unwrap()));
    let event = &message["json"]["message"]["events"][0];
    assert_eq!((event["eventType"].as_str(), event["objectType"].as_str()), (Some("INSTANCE_CREATED"), Some("instance")), "{message}");
    assert_eq!(event["objectId"], instance_id.to_string());

    // An expired link: another session, its end moved into the past in the database.
    let second: Value =
        json_of(http.post(format!("{api}/connect/sessions")).header("Authorization", &p.auth).json(&json!({"elements": ["bigcommerce"]})))
            .await;
    let db = format!("sqlite://{}", p.dir.path().join("switchyard.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE connect_sessions SET expires_at = 1 WHERE id = ?")
        .bind(second["id"].as_i64().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let expired = http.get(second["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.unwrap().contains("This link has expired"));
    let status: Value = json_of(http.get(format!("{api}/connect/sessions/{}", second["id"])).header("Authorization", &p.auth)).await;
    assert_eq!(status["status"], "expired");
    p.serve.stop();
}

/// The session cookie a login answer sets (`name=value`).
fn session_cookie(answer: &reqwest::Response) -> String {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("SWITCHYARD_SESSION="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn console_forms_need_their_csrf_token_and_pages_send_security_headers() {
    let p = platform();
    let origin = p.origin.clone();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = |next: &str, from: &str| {
        http.post(format!("{origin}/console/login")).header("Origin", from).form(&[
            ("j_username", p.login["email"].as_str().unwrap()),
            ("j_password", p.login["password"].as_str().unwrap()),
            ("next", next),
        ])
    };
    // A login posted from another site's page is refused, and sets no cookie.
    let refused = login("/console/instances", "http://evil.example").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("set-cookie").is_none());
    // After a login the browser goes to console pages only.
    let answer = login("https://evil.example/", &origin).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/console/instances");
    let cookie = session_cookie(&answer);

    let page = http.get(format!("{origin}/console/elements/bigcommerce")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert_eq!((h["x-frame-options"].to_str().unwrap(), h["x-content-type-options"].to_str().unwrap()), ("DENY", "nosniff"));
    assert_eq!((h["referrer-policy"].to_str().unwrap(), h["cache-control"].to_str().unwrap()), ("same-origin", "no-store"));
    let html = page.text().await.unwrap();
    assert!(!html.contains(" style=") && !html.contains("<script>"), "no inline style or script: the CSP forbids them");

    // A form without the session's CSRF token changes nothing.
    let bc = &p.sandbox["bigcommerce"];
    let form = |csrf: &str| {
        vec![
            ("_csrf".to_owned(), csrf.to_owned()),
            ("name".to_owned(), "forged".to_owned()),
            ("username".to_owned(), bc["username"].as_str().unwrap().to_owned()),
            ("password".to_owned(), bc["apiToken"].as_str().unwrap().to_owned()),
            ("store.url".to_owned(), bc["storeUrl"].as_str().unwrap().to_owned()),
        ]
    };
    for csrf in ["", "not-the-token"] {
        let forged = http
            .post(format!("{origin}/console/elements/bigcommerce/connect"))
            .header("Cookie", &cookie)
            .form(&form(csrf))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "csrf {csrf:?}");
    }
    let api = format!("{origin}/elements/api-v2");
    let instances = json_of(http.get(format!("{api}/instances")).header("Authorization", &p.auth)).await;
    assert_eq!(instances, json!([]), "nothing was created");
    // The token from the page works.
    let csrf = html.split("name=\"_csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let made = http
        .post(format!("{origin}/console/elements/bigcommerce/connect"))
        .header("Cookie", &cookie)
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 303);

    // Without a session: the login page, for pages and forms alike.
    let anonymous = http.get(format!("{origin}/console/instances/1")).send().await.unwrap();
    assert_eq!(anonymous.headers()["location"], "/console/login?next=%2Fconsole%2Finstances%2F1");
    // A made-up OAuth state is refused before anything is looked up.
    let forged = http.get(format!("{origin}/connect/oauth/callback?code=c&state=abc.def")).send().await.unwrap();
    assert_eq!(forged.status(), 400);
    // A Connect page's form needs the token's CSRF token too.
    let session: Value =
        json_of(http.post(format!("{api}/connect/sessions")).header("Authorization", &p.auth).json(&json!({"elements": ["bigcommerce"]})))
            .await;
    let url = session["url"].as_str().unwrap();
    let forged = http.post(url).form(&form("nope")).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let status: Value = json_of(http.get(format!("{api}/connect/sessions/{}", session["id"])).header("Authorization", &p.auth)).await;
    assert_eq!(status["status"], "pending");
    p.serve.stop();
}

/// The CSRF token in a page's first form.
fn csrf_in(html: &str) -> String {
    html.split("name=\"_csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a CSRF token in the page").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_presets_apply_to_their_own_element_and_a_customer_gone_mid_submit_leaves_the_link_usable() {
    let p = platform();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let api = format!("{}/elements/api-v2", p.origin);
    let keap = &p.sandbox["keap"];
    let session: Value = http
        .post(format!("{api}/connect/sessions"))
        .header("Authorization", &p.auth)
        .json(&json!({"elements": ["bigcommerce", "infusionsoftcrm"], "configuration": {"infusionsoftcrm": {
            "oauth.api.key": keap["clientId"], "oauth.api.secret": keap["clientSecret"]}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = session["url"].as_str().unwrap().to_owned();
    let bc = &p.sandbox["bigcommerce"];

    // A vendor that answers after the customer has gone: the browser's request is
    // dropped while the instance is being made.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/stores/slow/api/v2", slow.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        (axum::http::StatusCode::UNAUTHORIZED, "[{\"status\":401,\"message\":\"slow and refused\"}]")
    });
    tokio::spawn(async move { axum::serve(slow, app).await });
    let page = http.get(format!("{url}?element=bigcommerce&mode=custom")).send().await.unwrap().text().await.unwrap();
    // Token mode asks BigCommerce's own Client ID: the Keap preset is not BigCommerce's.
    assert!(page.contains("id=\"f-oauth.api.key\"") && page.contains("id=\"f-oauth.user.token\""), "{page}");
    let csrf = csrf_in(&page);
    let form = |store: &str, token: &str| {
        vec![
            ("_csrf", csrf.clone()),
            ("element", "bigcommerce".to_owned()),
            ("username", bc["username"].as_str().unwrap().to_owned()),
            ("password", token.to_owned()),
            ("store.url", store.to_owned()),
        ]
    };
    let cut = http.post(&url).form(&form(&slow_url, "whatever")).timeout(std::time::Duration::from_millis(300)).send().await;
    assert!(cut.is_err(), "the customer left before the answer");
    let status = |http: reqwest::Client, auth: String, at: String| async move {
        let v: Value = http.get(at).header("Authorization", auth).send().await.unwrap().json().await.unwrap();
        v
    };
    let at = format!("{api}/connect/sessions/{}", session["id"]);
    let deadline = std::time::Instant::now() + GIVE_UP;
    loop {
        let s = status(http.clone(), p.auth.clone(), at.clone()).await;
        if s["error"].as_str().is_some_and(|e| e.contains("slow and refused")) {
            assert_eq!(s["status"], "pending", "{s}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped submit was never finished: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // While a submit is being made: a second submit (a double click) answers the
    // first one's outcome, and Cancel is refused (it would contradict that outcome).
    let first = tokio::spawn(http.post(&url).form(&form(&slow_url, "whatever")).send());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = tokio::spawn(http.post(&url).form(&form(&slow_url, "whatever")).send());
    let cancel = http.post(format!("{url}/cancel")).form(&[("_csrf", csrf.clone())]).send().await.unwrap();
    assert_eq!(cancel.status(), 409);
    let (first, second) = (first.await.unwrap().unwrap(), second.await.unwrap().unwrap());
    assert_eq!(first.status(), 400);
    assert_eq!(second.status(), 409);
    assert!(second.text().await.unwrap().contains("slow and refused"), "the second submit shows the first one's refusal");
    assert_eq!(status(http.clone(), p.auth.clone(), at.clone()).await["status"], "pending");

    // The link still works, and the Keap preset did not travel into BigCommerce.
    let done = http.post(&url).form(&form(bc["storeUrl"].as_str().unwrap(), bc["apiToken"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(done.status(), 200, "no redirectUrl: the page says it is connected");
    let s = status(http.clone(), p.auth.clone(), at.clone()).await;
    assert_eq!(s["status"], "completed", "{s}");
    let instance: Value = json_of(http.get(format!("{api}/instances/{}", s["instanceId"])).header("Authorization", &p.auth)).await;
    let config = instance["configuration"].as_object().unwrap();
    assert!(!config.contains_key("oauth.api.secret") && !config.contains_key("oauth.api.key"), "{instance}");

    // A preset authentication mode decides the form: token mode's fields, no choice.
    let token_mode: Value = json_of(
        http.post(format!("{api}/connect/sessions"))
            .header("Authorization", &p.auth)
            .json(&json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"authentication.type": "custom"}}})),
    )
    .await;
    let page = http.get(token_mode["url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"f-oauth.user.token\"") && !page.contains("id=\"f-username\"") && !page.contains("mode=basic"), "{page}");

    // Console odds and ends: a live table asks without a session: 401, not the login
    // page; an unknown console path is the console's own 404 page, with its headers.
    let fragment = http.get(format!("{}/console/instances/1/events", p.origin)).header("X-Console-Fragment", "1").send().await.unwrap();
    assert_eq!(fragment.status(), 401);
    let missing = http.get(format!("{}/console/nope", p.origin)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    p.serve.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_session_authorizes_keap_with_the_organizations_app() {
    let p = platform();
    let (app, heard) = app_server().await;
    let http = reqwest::Client::new();
    let api = format!("{}/elements/api-v2", p.origin);
    let keap = p.sandbox["keap"].clone();
    let session: Value = http
        .post(format!("{api}/connect/sessions"))
        .header("Authorization", &p.auth)
        .json(&json!({"elements": ["infusionsoftcrm"], "redirectUrl": format!("{app}/done"), "configuration": {"infusionsoftcrm": {
            "oauth.api.key": keap["clientId"], "oauth.api.secret": keap["clientSecret"]}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = session["url"].as_str().unwrap().to_owned();
    let sandbox = p.sandbox.clone();
    in_browser("connect_keap", move |browser| async move {
        browser.goto(&url).await.unwrap();
        // The organization's app is preset: the customer gives only the Encrypted Key.
        assert!(browser.find(Locator::Id("f-oauth.api.key")).await.is_err());
        assert!(browser.find(Locator::Id("callback-url")).await.is_err(), "nothing to register for the customer");
        assert!(!browser.source().await.unwrap().contains(keap["clientSecret"].as_str().unwrap()));
        fill(&browser, "f-infusionsoft.private.key", keap["privateKey"].as_str().unwrap()).await;
        assert_eq!(text_of(&browser, "connect").await, "Sign in with Infusionsoft CRM");
        submit(&browser, "connect").await;
        keap_approve(&browser, &sandbox).await;
        browser.wait().at_most(GIVE_UP).for_element(Locator::Id("done")).await.unwrap();
    })
    .await;
    let redirects = heard.redirects.lock().unwrap().clone();
    let instance_id = redirects[0]["instanceId"].clone();
    let instance = json_of(http.get(format!("{api}/instances/{instance_id}")).header("Authorization", &p.auth)).await;
    assert_eq!(instance["configuration"]["oauth.user.token"], "********", "{instance}");
    assert_eq!(instance["configuration"]["oauth.callback.url"], format!("{}/connect/oauth/callback", p.origin));
    // The customer never saw a token and neither did the creator: the creator
    // issues one, and the instance answers hub calls with it; a second one
    // replaces the first.
    let issue = || async {
        let v: Value = http
            .post(format!("{api}/instances/{instance_id}/token"))
            .header("Authorization", &p.auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let contacts = |token: String| {
        http.get(format!("{api}/hubs/crm/contacts?pageSize=2")).header("Authorization", format!("{}, Element {token}", p.auth)).send()
    };
    let first = issue().await;
    assert_eq!(contacts(first.clone()).await.unwrap().status(), 200);
    let second = issue().await;
    assert_eq!(contacts(first).await.unwrap().status(), 401, "the replaced token stops working");
    assert_eq!(contacts(second).await.unwrap().status(), 200);
    p.serve.stop();
}
