//! The console's pages: the element catalog with setup guides and connect forms,
//! the instances and, per instance, configuration, actions, call and event logs.
//! Each reads and changes through the platform API (`crate::api`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};
use switchyard_elements::ElementDefinition;

use crate::auth::{Form, User};
use crate::forms::{config_form, ConfigForm};
use crate::Console;

/// Call-log and event-log rows an instance page shows (the newest).
const LOG_ROWS: u32 = 20;

/// The longest instance name the console sends (the API's own limit may be lower).
const MAX_NAME: usize = 200;

/// An element's summary for pages: key, name, hub, authentication and the hub
/// resources (method and path under `/hubs/{hub}`).
pub(crate) fn element_summary(def: &ElementDefinition) -> Value {
    let resources: Vec<Value> = def
        .resources
        .iter()
        .flat_map(|r| {
            r.operations.iter().map(move |op| {
                let (method, suffix) = op.hub_shape();
                json!({"method": method, "path": format!("/hubs/{}/{}{}", def.hub, r.path.trim_start_matches('/'), suffix), "description": r.description})
            })
        })
        .collect();
    json!({
        "key": def.key,
        "name": def.name,
        "description": def.description,
        "hub": def.hub,
        "authentication": def.authentication.type_name(),
        "resources": resources,
    })
}

/// The setup guides of `def` by configuration key.
pub(crate) fn guides(def: &ElementDefinition) -> BTreeMap<String, Value> {
    def.setup.iter().map(|g| (g.key.clone(), json!({"steps": g.steps, "link": g.link}))).collect()
}

fn find_element(console: &Console, key: &str) -> Result<std::sync::Arc<ElementDefinition>, Response> {
    console
        .engine
        .catalog
        .get(key)
        .cloned()
        .ok_or_else(|| console.problem(StatusCode::NOT_FOUND, "No such element", &format!("There is no element '{key}'")))
}

/// `GET /console/elements`.
pub async fn elements(State(console): State<Console>, user: User) -> Response {
    let mut list: Vec<Value> = console.engine.catalog.iter().map(|d| element_summary(d)).collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    console.page(StatusCode::OK, "elements.html", json!({"user": user.context(), "elements": list, "nav": "elements"}))
}

/// The element page's context: summary, guides, and the connect form.
fn element_context(console: &Console, user: &User, def: &ElementDefinition, form: &ConfigForm, extra: Value) -> Value {
    let mut context = json!({
        "user": user.context(),
        "nav": "elements",
        "element": element_summary(def),
        "guides": guides(def),
        "form": form,
        "callback_url": crate::oauth::callback_url(console),
        "action": format!("/console/elements/{}/connect", def.key),
        "mode_link": format!("/console/elements/{}", def.key),
    });
    if let (Some(c), Some(e)) = (context.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    context
}

/// `GET /console/elements/{key}?mode=`: setup guide, hub resources, connect form.
pub async fn element(
    State(console): State<Console>,
    user: User,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let def = match find_element(&console, &key) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let form = config_form(&def, q.get("mode").map(String::as_str), &[], true, &BTreeMap::new());
    console.page(StatusCode::OK, "element.html", element_context(&console, &user, &def, &form, json!({"name": "", "tags": ""})))
}

/// Tags as typed: comma-separated, trimmed, empty ones dropped.
pub(crate) fn tags_of(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// `POST /console/elements/{key}/connect`: creates the instance (credentials
/// elements) or starts the vendor's authorization (OAuth elements).
pub async fn connect_instance(State(console): State<Console>, user: User, Path(key): Path<String>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let def = match find_element(&console, &key) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let config_form = config_form(&def, form.get("mode"), &[], true, &BTreeMap::new());
    let entered = Entered {
        mode: Some(config_form.mode.clone()),
        name: form.get("name").unwrap_or("").chars().take(MAX_NAME).collect::<String>(),
        tags: tags_of(form.get("tags").unwrap_or("")),
        configuration: config_form.read(&form),
    };
    if entered.name.is_empty() {
        return refused_form(&console, &user, &def, &entered, StatusCode::BAD_REQUEST, "Give the instance a name");
    }
    if config_form.oauth {
        let pending = crate::oauth::Pending {
            element_key: def.key.clone(),
            name: entered.name.clone(),
            tags: entered.tags.clone(),
            configuration: entered.configuration.clone(),
        };
        return match crate::oauth::start(&console, &user.caller, crate::oauth::Purpose::ConsoleCreate, pending, None, None).await {
            Ok(vendor_url) => Redirect::to(&vendor_url).into_response(),
            Err((status, message)) => refused_form(&console, &user, &def, &entered, status, &message),
        };
    }
    let body = json!({"element": {"key": def.key}, "name": entered.name, "tags": entered.tags, "configuration": entered.configuration});
    let answer = console.api().call(&user.acting(), Method::POST, "/instances", Some(&body)).await;
    if !answer.ok() {
        return refused_form(&console, &user, &def, &entered, answer.status, &answer.problem());
    }
    let id = answer.body["id"].as_i64().unwrap_or_default();
    Redirect::to(&format!("/console/instances/{id}?created=1")).into_response()
}

/// What a connect form held, to show it again beside a refusal.
pub(crate) struct Entered {
    pub mode: Option<String>,
    pub name: String,
    pub tags: Vec<String>,
    pub configuration: BTreeMap<String, String>,
}

/// The element page again with what was entered (secrets left out) and the
/// refusal, beside the field it names or above the form.
pub(crate) fn refused_form(console: &Console, user: &User, def: &ElementDefinition, entered: &Entered, status: StatusCode, message: &str) -> Response {
    let mut form = config_form(def, entered.mode.as_deref(), &[], true, &entered.configuration);
    let attached = form.attach_error(message);
    let extra = json!({"name": entered.name, "tags": entered.tags.join(", "), "error": if attached { None } else { Some(message) }});
    console.page(status, "element.html", element_context(console, user, def, &form, extra))
}

/// `GET /console/instances`: name, element, tags, valid, enabled, events, last call.
pub async fn instances(State(console): State<Console>, user: User, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let acting = user.acting();
    let answer = console.api().call(&acting, Method::GET, "/instances", None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Instances", &answer.problem());
    }
    let mut rows = Vec::new();
    for instance in answer.body.as_array().cloned().unwrap_or_default() {
        let id = instance["id"].as_i64().unwrap_or_default();
        let calls = console.api().call(&acting, Method::GET, &format!("/instances/{id}/logs?pageSize=1"), None).await;
        let last_call = calls.body.as_array().and_then(|a| a.first()).cloned();
        rows.push(json!({"instance": instance, "last_call": last_call}));
    }
    let notice = q.contains_key("deleted").then_some("The instance is deleted.");
    console.page(StatusCode::OK, "instances.html", json!({"user": user.context(), "nav": "instances", "rows": rows, "notice": notice}))
}

/// `GET /console/instances/{id}`.
pub async fn instance(
    State(console): State<Console>,
    user: User,
    Path(id): Path<i64>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let acting = user.acting();
    let answer = console.api().call(&acting, Method::GET, &format!("/instances/{id}"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Instance", &answer.problem());
    }
    let instance = answer.body;
    let transformations = console.api().call(&acting, Method::GET, &format!("/instances/{id}/transformations"), None).await;
    let transformations: Vec<Value> = match transformations.body {
        Value::Object(map) => map.into_iter().map(|(name, t)| json!({"name": name, "definition": t.to_string()})).collect(),
        _ => Vec::new(),
    };
    let element_key = instance["element"]["key"].as_str().unwrap_or_default();
    let oauth = console.engine.catalog.get(element_key).is_some_and(|d| d.authentication.oauth2().is_some());
    let context = json!({
        "user": user.context(),
        "nav": "instances",
        "instance": instance,
        "configuration": instance["configuration"],
        "oauth": oauth,
        "transformations": transformations,
        "events": events_of(&console, &user, id).await,
        "calls": calls_of(&console, &user, id).await,
        "notice": q.get("created").map(|_| "Connected: the vendor accepted the credentials.")
            .or(q.get("redelivered").map(|_| "The event is queued for delivery again."))
            .or(q.get("reauthorized").map(|_| "Authorized again.")),
    });
    console.page(StatusCode::OK, "instance.html", context)
}

async fn events_of(console: &Console, user: &User, id: i64) -> Value {
    let answer = console.api().call(&user.acting(), Method::GET, &format!("/instances/{id}/events?pageSize={LOG_ROWS}"), None).await;
    let events: Vec<Value> = answer
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut e| {
            // What happened, from the notification: `orders updated`.
            let what: Vec<String> = e["notifiedData"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|n| format!("{} {} {}", n["objectType"].as_str().unwrap_or(""), n["objectId"].as_str().unwrap_or(""), n["eventType"].as_str().unwrap_or("")))
                .collect();
            e["what"] = Value::String(what.join(", "));
            e
        })
        .collect();
    json!({"instance_id": id, "rows": events, "csrf": user.csrf, "error": (!answer.ok()).then(|| answer.problem())})
}

async fn calls_of(console: &Console, user: &User, id: i64) -> Value {
    let answer = console.api().call(&user.acting(), Method::GET, &format!("/instances/{id}/logs?pageSize={LOG_ROWS}"), None).await;
    json!({"instance_id": id, "rows": answer.body.as_array().cloned().unwrap_or_default(), "error": (!answer.ok()).then(|| answer.problem())})
}

/// `GET /console/instances/{id}/events`: the event table alone, for live refresh.
pub async fn events_fragment(State(console): State<Console>, user: User, Path(id): Path<i64>) -> Response {
    let events = events_of(&console, &user, id).await;
    console.page(StatusCode::OK, "events.html", json!({"events": events}))
}

/// `GET /console/instances/{id}/calls`: the call table alone, for live refresh.
pub async fn calls_fragment(State(console): State<Console>, user: User, Path(id): Path<i64>) -> Response {
    let calls = calls_of(&console, &user, id).await;
    console.page(StatusCode::OK, "calls.html", json!({"calls": calls}))
}

/// `POST /console/instances/{id}/enabled` (`enabled=true|false`).
pub async fn set_enabled(State(console): State<Console>, user: User, Path(id): Path<i64>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let method = if form.get("enabled") == Some("true") { Method::PUT } else { Method::DELETE };
    let answer = console.api().call(&user.acting(), method, &format!("/instances/{id}/enabled"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Enable or disable", &answer.problem());
    }
    Redirect::to(&format!("/console/instances/{id}")).into_response()
}

/// `GET /console/instances/{id}/delete`: asks before deleting.
pub async fn confirm_delete(State(console): State<Console>, user: User, Path(id): Path<i64>) -> Response {
    let answer = console.api().call(&user.acting(), Method::GET, &format!("/instances/{id}"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Delete", &answer.problem());
    }
    console.page(StatusCode::OK, "delete.html", json!({"user": user.context(), "nav": "instances", "instance": answer.body}))
}

/// `POST /console/instances/{id}/delete`.
pub async fn delete(State(console): State<Console>, user: User, Path(id): Path<i64>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let answer = console.api().call(&user.acting(), Method::DELETE, &format!("/instances/{id}"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Delete", &answer.problem());
    }
    Redirect::to("/console/instances?deleted=1").into_response()
}

/// `POST /console/instances/{id}/reauthorize`: the vendor's page again; the new
/// code replaces the instance's tokens (`PATCH /instances/{id}` with `providerData`).
pub async fn reauthorize(State(console): State<Console>, user: User, Path(id): Path<i64>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let answer = console.api().call(&user.acting(), Method::GET, &format!("/instances/{id}"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Authorize again", &answer.problem());
    }
    let key = answer.body["element"]["key"].as_str().unwrap_or_default().to_owned();
    if console.engine.catalog.get(&key).is_none_or(|d| d.authentication.oauth2().is_none()) {
        return console.problem(StatusCode::BAD_REQUEST, "Authorize again", "This instance's element does not use OAuth; change its credentials through the API");
    }
    let pending = crate::oauth::Pending { element_key: key, name: String::new(), tags: Vec::new(), configuration: BTreeMap::new() };
    match crate::oauth::start(&console, &user.caller, crate::oauth::Purpose::ConsoleReauthorize, pending, Some(id), None).await {
        Ok(vendor_url) => Redirect::to(&vendor_url).into_response(),
        Err((status, message)) => console.problem(status, "Authorize again", &message),
    }
}

/// `POST /console/instances/{id}/events/{eventId}/redeliver`.
pub async fn redeliver(State(console): State<Console>, user: User, Path((id, event_id)): Path<(i64, String)>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let event = percent_encoding::utf8_percent_encode(&event_id, percent_encoding::NON_ALPHANUMERIC).to_string();
    // The event must be this instance's, as the page that shows the button says.
    let own = console.api().call(&user.acting(), Method::GET, &format!("/instances/{id}/events/{event}"), None).await;
    if !own.ok() {
        return console.problem(own.status, "Redeliver", &own.problem());
    }
    let answer = console.api().call(&user.acting(), Method::POST, &format!("/instances/events/{event}/redeliver"), None).await;
    if !answer.ok() {
        return console.problem(answer.status, "Redeliver", &answer.problem());
    }
    Redirect::to(&format!("/console/instances/{id}?redelivered=1")).into_response()
}
