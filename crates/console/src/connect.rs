//! The Connect page, `/connect/{token}`: where an organization's customer
//! connects their own vendor account, from a link the organization made with
//! `POST /elements/api-v2/connect/sessions` (`switchyard_server::connect`).
//!
//! The page keeps no cookie (it may be shown in another site's frame, where
//! cookies are not sent): its state is the token in the path, and its forms
//! carry a CSRF token derived from it with the server's key. The token is
//! single use: the first instance made through it ends it (the row is claimed
//! atomically, so two submits cannot make two). A vendor refusal leaves it open
//! to try again until it expires; "Cancel" ends it as failed.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};
use switchyard_engine::secret::hash_secret;
use switchyard_events::now_ms;
use switchyard_server::ActingAs;
use switchyard_store::ConnectSessionRow;

use crate::auth::Form;
use crate::forms::config_form;
use crate::oauth::{Pending, Purpose, Returned};
use crate::pages::{element_summary, guides};
use crate::Console;

/// The session of a token, and why the page cannot go on with it.
async fn session_of(console: &Console, token: &str) -> Result<ConnectSessionRow, Response> {
    let row = match console.engine.store.connect_session_by_token(&hash_secret(token)).await {
        Ok(row) => row,
        Err(e) => return Err(console.connect_problem(StatusCode::SERVICE_UNAVAILABLE, "Connect", &e.to_string())),
    };
    let Some(row) = row else {
        return Err(console.connect_problem(StatusCode::NOT_FOUND, "Connect", "This link is not valid; ask for a new one"));
    };
    match row.reported_status(now_ms()) {
        "pending" => Ok(row),
        "expired" => Err(console.connect_problem(StatusCode::GONE, "This link has expired", "Connect links last 30 minutes; ask for a new one")),
        "completed" => Err(console.connect_problem(StatusCode::GONE, "This link was used already", "The account is connected; a link connects one account once")),
        _ => Err(console.connect_problem(StatusCode::GONE, "This link is closed", "The connection was cancelled or failed; ask for a new link")),
    }
}

/// The CSRF token of a Connect page's forms: the hash of its link token, signed
/// with the server's key (the link token itself stays out of the form).
fn csrf_of(console: &Console, token: &str) -> String {
    crate::oauth::sign(console, "connect-csrf", &link_hash(token))
}

/// Whether a form carries the CSRF token of this link.
fn csrf_ok(console: &Console, token: &str, form: &Form) -> bool {
    form.get("_csrf").and_then(|c| crate::oauth::signed(console, "connect-csrf", c)).is_some_and(|h| h == link_hash(token))
}

fn link_hash(token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash_secret(token))
}

/// The creator's preset configuration (`configuration` of the session, per
/// element key), opened.
fn preset_of(console: &Console, row: &ConnectSessionRow, token: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, Response> {
    let Some(blob) = &row.configuration_sealed else {
        return Ok(BTreeMap::new());
    };
    let aad = switchyard_store::connect_session_aad(&hash_secret(token));
    let opened = console
        .engine
        .vault
        .decrypt_str(blob, &aad)
        .map_err(|e| console.connect_problem(StatusCode::INTERNAL_SERVER_ERROR, "Connect", &e.to_string()))?;
    serde_json::from_str(opened.expose()).map_err(|e| console.connect_problem(StatusCode::INTERNAL_SERVER_ERROR, "Connect", &e.to_string()))
}

fn signature_key_of(console: &Console, row: &ConnectSessionRow, token: &str) -> Option<String> {
    let aad = switchyard_store::connect_session_aad(&hash_secret(token));
    let blob = row.signature_key_sealed.as_ref()?;
    console.engine.vault.decrypt_str(blob, &aad).ok().map(|s| s.expose().to_owned())
}

/// The authentication mode the creator preset (BigCommerce's
/// `authentication.type`), which the page then neither offers nor changes.
fn preset_mode<'a>(def: &switchyard_elements::ElementDefinition, own: &'a BTreeMap<String, String>) -> Option<&'a str> {
    match &def.authentication {
        switchyard_elements::Authentication::Choice(choice) => own.get(&choice.key).map(String::as_str),
        _ => None,
    }
}

/// The presets of `def`'s own.
fn own_keys(def: &switchyard_elements::ElementDefinition, preset: &BTreeMap<String, BTreeMap<String, String>>) -> BTreeMap<String, String> {
    preset.get(&def.key).cloned().unwrap_or_default()
}

/// The page for `row`: the element chooser, or the chosen element's guide and form.
fn render(
    console: &Console,
    token: &str,
    row: &ConnectSessionRow,
    element: Option<&str>,
    mode: Option<&str>,
    entered: &BTreeMap<String, String>,
    refusal: Option<(StatusCode, String)>,
) -> Response {
    let (status, error) = match refusal {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let preset = match preset_of(console, row, token) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let element = element.or(if row.elements.len() == 1 { row.elements.first().map(String::as_str) } else { None });
    let choices: Vec<Value> = row
        .elements
        .iter()
        .filter_map(|k| console.engine.catalog.get(k))
        .map(|d| json!({"key": d.key, "name": d.name, "description": d.description}))
        .collect();
    let mut context = json!({
        "token": token,
        "csrf": csrf_of(console, token),
        "choices": choices,
        "expires_at": switchyard_events::iso_ms(row.expires_at),
    });
    if let Some(def) = element.filter(|k| row.elements.iter().any(|e| e == k)).and_then(|k| console.engine.catalog.get(k)) {
        let own = own_keys(def, &preset);
        let skip: Vec<String> = own.keys().cloned().collect();
        let mut form = config_form(def, preset_mode(def, &own).or(mode), &skip, false, entered);
        if preset_mode(def, &own).is_some() {
            form.modes.clear();
        }
        let attached = error.as_deref().is_some_and(|e| form.attach_error(e));
        context["element"] = element_summary(def);
        context["guides"] = json!(guides(def));
        context["form"] = json!(form);
        context["error"] = json!(if attached { None } else { error });
        context["callback_url"] = json!(crate::oauth::callback_url(console));
    } else if let Some(e) = error {
        context["error"] = json!(e);
    }
    console.page(status, "connect.html", context)
}

/// `GET /connect/{token}?element=&mode=`.
pub async fn page(State(console): State<Console>, Path(token): Path<String>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let row = match session_of(&console, &token).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    render(&console, &token, &row, q.get("element").map(String::as_str), q.get("mode").map(String::as_str), &BTreeMap::new(), None)
}

/// `POST /connect/{token}`: the customer's credentials, or the start of the vendor's authorization.
pub async fn submit(State(console): State<Console>, Path(token): Path<String>, form: Form) -> Response {
    let row = match session_of(&console, &token).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    if !csrf_ok(&console, &token, &form) {
        return (StatusCode::FORBIDDEN, "This form is out of date or came from another site; reload the page and send it again").into_response();
    }
    let Some(def) = form.get("element").filter(|k| row.elements.iter().any(|e| e == k)).and_then(|k| console.engine.catalog.get(k)).cloned() else {
        return render(&console, &token, &row, None, None, &BTreeMap::new(), Some((StatusCode::BAD_REQUEST, "Choose one of the listed applications".into())));
    };
    let preset = match preset_of(&console, &row, &token) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let preset = own_keys(&def, &preset);
    let skip: Vec<String> = preset.keys().cloned().collect();
    let config_form = config_form(&def, preset_mode(&def, &preset).or(form.get("mode")), &skip, false, &BTreeMap::new());
    let entered = config_form.read(&form);
    let mut configuration = entered.clone();
    // The creator's values win over anything a customer's form could add.
    configuration.extend(preset);
    let caller = match console.engine.store.caller_of_user(row.user_id).await {
        Ok(Some(c)) => c,
        _ => return console.connect_problem(StatusCode::GONE, "Connect", "The organization's user who made this link no longer exists"),
    };
    let pending = Pending {
        element_key: def.key.clone(),
        name: row.name.clone().unwrap_or_else(|| format!("{} (Connect)", def.name)),
        tags: row.tags.clone(),
        configuration,
    };
    if config_form.oauth {
        return match crate::oauth::start(&console, &caller, Purpose::Connect, pending, None, Some((row.id, token.clone()))).await {
            Ok(vendor_url) => Redirect::to(&vendor_url).into_response(),
            Err((status, message)) => render(&console, &token, &row, Some(&def.key), form.get("mode"), &entered, Some((status, message))),
        };
    }
    match create_detached(&console, &row, &token, caller, pending, None).await {
        Ok(response) => response,
        Err((status, message)) => render(&console, &token, &row, Some(&def.key), form.get("mode"), &entered, Some((status, message))),
    }
}

/// [`create`] in a task of its own: a customer who closes the tab (the request's
/// future is dropped) must not leave the session claimed with no one to finish it,
/// nor an instance made and the session never completed.
async fn create_detached(
    console: &Console,
    row: &ConnectSessionRow,
    token: &str,
    caller: switchyard_store::Caller,
    pending: Pending,
    code: Option<String>,
) -> Result<Response, (StatusCode, String)> {
    let (console, row, token) = (console.clone(), row.clone(), token.to_owned());
    tokio::spawn(async move { create(&console, &row, &token, caller, pending, code).await })
        .await
        .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, format!("the connection failed unexpectedly: {e}"))))
}

/// Makes the instance for a claimed session: `Ok` is the page or redirect that
/// ends the session, `Err` a refusal to show beside the form (the session is
/// open again).
async fn create(
    console: &Console,
    row: &ConnectSessionRow,
    token: &str,
    caller: switchyard_store::Caller,
    mut pending: Pending,
    code: Option<String>,
) -> Result<Response, (StatusCode, String)> {
    let unavailable = |e: switchyard_store::StoreError| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    if !console.engine.store.claim_connect_session(row.id, now_ms()).await.map_err(unavailable)? {
        // Another submit of this link (a double click, a reload) holds it: its
        // outcome is this one's too, so the browser lands where the first would have.
        return outcome_of_other_submit(console, row).await;
    }
    // The creator hears of the new instance at its callback URL, signed like events.
    if let Some(url) = &row.callback_url {
        pending.configuration.insert("event.notification.callback.url".into(), url.clone());
        if let Some(key) = signature_key_of(console, row, token) {
            pending.configuration.insert("event.notification.signature.key".into(), key);
        }
    }
    let mut body = json!({
        "element": {"key": pending.element_key},
        "name": pending.name,
        "tags": pending.tags,
        "configuration": pending.configuration,
    });
    if let Some(code) = code {
        body["providerData"] = json!({"code": code});
    }
    let acting = ActingAs { caller, instance_id: None };
    let answer = console.api().call(&acting, Method::POST, "/instances", Some(&body)).await;
    if !answer.ok() {
        let message = answer.problem();
        console.engine.store.release_connect_session(row.id, &message).await.map_err(unavailable)?;
        return Err((answer.status, message));
    }
    let id = answer.body["id"].as_i64().unwrap_or_default();
    console.engine.store.complete_connect_session(row.id, id, now_ms()).await.map_err(unavailable)?;
    if row.callback_url.is_some() {
        notify_created(console, id).await;
    }
    Ok(finished(console, row, Ok(id)))
}

/// How long a second submit waits for the first one's outcome (the first makes
/// one vendor check, bounded by the vendor timeout).
const WAIT_FOR_OTHER_SUBMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The outcome of the submit that holds the claim: its redirect or page once it
/// ends, its refusal (to show beside the form) if the vendor refused.
async fn outcome_of_other_submit(console: &Console, row: &ConnectSessionRow) -> Result<Response, (StatusCode, String)> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER_SUBMIT;
    loop {
        let now = console.engine.store.connect_session(row.organization_id, row.id).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let Some(now) = now else {
            return Ok(console.connect_problem(StatusCode::GONE, "Connect", "This link is not valid; ask for a new one"));
        };
        match (now.status.as_str(), now.instance_id) {
            ("completed", Some(id)) => return Ok(finished(console, row, Ok(id))),
            ("pending", _) => return Err((StatusCode::CONFLICT, now.error.unwrap_or_else(|| "Try again".into()))),
            ("claimed", _) if tokio::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            ("claimed", _) => return Err((StatusCode::CONFLICT, "The connection is still being made; reload this page in a minute".into())),
            _ => return Ok(console.connect_problem(StatusCode::GONE, "This link was used already", "A link connects one account once, within 30 minutes")),
        }
    }
}

/// Queues `INSTANCE_CREATED` for the creator's callback URL; a failure is logged
/// (the instance exists, and the session's status says so).
async fn notify_created(console: &Console, id: i64) {
    let ctx = switchyard_events::Context {
        store: console.engine.store.clone(),
        vault: console.engine.vault.clone(),
        catalog: console.engine.catalog.clone(),
    };
    let queued = match console.engine.store.instance_by_id(id).await {
        Ok(Some(row)) => switchyard_events::notify_instance_created(&ctx, &row, Some(&console.event_waker)).await.map(|_| ()).map_err(|e| e.to_string()),
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = queued {
        tracing::warn!(instance_id = id, error = %e, "could not queue the INSTANCE_CREATED message");
    }
}

/// The end of a session: to `redirectUrl` with `instanceId` or `error` when the
/// creator gave one, else a page that says how it went.
fn finished(console: &Console, row: &ConnectSessionRow, outcome: Result<i64, String>) -> Response {
    if let Some(target) = row.redirect_url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
        let mut target = target;
        match &outcome {
            Ok(id) => target.query_pairs_mut().append_pair("instanceId", &id.to_string()),
            Err(e) => target.query_pairs_mut().append_pair("error", e),
        };
        return Redirect::to(target.as_str()).into_response();
    }
    match outcome {
        Ok(_) => console.page(StatusCode::OK, "connect.html", json!({"done": true})),
        Err(e) => console.page(StatusCode::OK, "connect.html", json!({"closed": true, "error": e})),
    }
}

/// `POST /connect/{token}/cancel`: the customer gives up; the session fails.
pub async fn cancel(State(console): State<Console>, Path(token): Path<String>, form: Form) -> Response {
    let row = match session_of(&console, &token).await {
        Ok(row) => row,
        Err(r) => return r,
    };
    if !csrf_ok(&console, &token, &form) {
        return (StatusCode::FORBIDDEN, "This form is out of date or came from another site; reload the page and send it again").into_response();
    }
    let reason = "cancelled by the customer";
    match console.engine.store.fail_connect_session(row.id, reason, now_ms()).await {
        Ok(true) => finished(&console, &row, Err(reason.into())),
        Ok(false) => in_progress(&console),
        Err(e) => console.connect_problem(StatusCode::SERVICE_UNAVAILABLE, "Connect", &e.to_string()),
    }
}

/// A link whose account is being connected right now cannot be cancelled.
fn in_progress(console: &Console) -> Response {
    console.connect_problem(
        StatusCode::CONFLICT,
        "The account is being connected",
        "This link is in use right now; its outcome shows in the page that sent it",
    )
}

/// The vendor's redirect for a Connect session (`crate::callback`).
pub async fn finish_oauth(console: &Console, session_id: i64, token: &str, returned: Returned) -> Response {
    let row = match session_of(console, token).await {
        Ok(row) if row.id == session_id => row,
        Ok(_) => return console.connect_problem(StatusCode::BAD_REQUEST, "Connect", "This authorization belongs to another link"),
        Err(r) => return r,
    };
    let element = returned.pending.element_key.clone();
    let code = match returned.outcome {
        Ok(code) => code,
        Err(message) => {
            // Refused at the vendor's page: the customer said no. That ends it.
            return match console.engine.store.fail_connect_session(row.id, &message, now_ms()).await {
                Ok(true) => finished(console, &row, Err(message)),
                Ok(false) => in_progress(console),
                Err(e) => console.connect_problem(StatusCode::SERVICE_UNAVAILABLE, "Connect", &e.to_string()),
            };
        }
    };
    match create_detached(console, &row, token, returned.caller, returned.pending, Some(code)).await {
        Ok(response) => response,
        Err((status, message)) => render(console, token, &row, Some(&element), None, &BTreeMap::new(), Some((status, message))),
    }
}
