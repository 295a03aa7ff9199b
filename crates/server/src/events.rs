//! The event log (`/instances/events`, `/instances/{id}/events`) and the redeliver
//! calls.
//!
//! Every read is scoped by the caller's organization in the store: another
//! organization's event or instance is a 404, like a missing one.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_store::{EventQuery, EventRow};

use crate::caller::Caller;
use crate::extract::Path;
use crate::{ApiError, AppState};

/// Default and largest page of the event log.
const DEFAULT_PAGE_SIZE: i64 = 200;
const MAX_PAGE_SIZE: i64 = 500;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn iso(ms: i64) -> String {
    switchyard_events::iso_ms(ms)
}

/// An event as the log shows it.
fn event_json(e: &EventRow) -> Value {
    json!({
        "id": e.event_id,
        "instanceId": e.instance_id,
        "elementKey": e.element_key,
        "source": e.source,
        "eventDate": e.event_date,
        "status": e.status,
        "providerData": e.provider_data,
        "notifiedData": serde_json::from_str::<Value>(&e.notified_data).unwrap_or(Value::Array(Vec::new())),
        "delivery": {
            "state": e.delivery_state,
            "attempts": e.attempts,
            "nextAttemptAt": if e.delivery_state == "pending" { e.next_attempt_at.map(iso) } else { None },
            "lastAttemptAt": e.last_attempt_at.map(iso),
            "lastStatus": e.last_status,
            "lastError": e.last_error,
        },
    })
}

/// Where a page of the log starts: keyset (`nextPage`) or offset (`page`).
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// The scope the token was made for (organization and instance).
    s: String,
    /// Only events with a row id below this.
    b: i64,
    /// Page size.
    n: i64,
}

fn encode_token(key: &[u8], token: &PageToken) -> String {
    switchyard_engine::page_token::encode(key, "events", token)
}

fn decode_token(key: &[u8], text: &str) -> Option<PageToken> {
    switchyard_engine::page_token::decode(key, "events", text)
}

async fn list(state: &AppState, caller: &Caller, instance_id: Option<i64>, query: Option<String>) -> Result<Response, ApiError> {
    if let Some(id) = instance_id {
        if state.engine.store.instance(caller.organization_id, id).await?.is_none() {
            return Err(ApiError::not_found("No such instance"));
        }
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        match get(name) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
        }
    };
    let scope = format!("{}:{}", caller.organization_id, instance_id.map(|i| i.to_string()).unwrap_or_else(|| "*".into()));
    let key = state.engine.paging_key.as_slice();
    let (before, offset, size) = match get("nextPage") {
        Some(text) => {
            let t = decode_token(key, text).ok_or_else(|| bad_request("nextPage is not a token this server issued"))?;
            if t.s != scope {
                return Err(bad_request("nextPage belongs to another event list"));
            }
            (Some(t.b), 0, t.n)
        }
        None => {
            let size = number("pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
            let page = number("page", 1)?;
            (None, (page - 1).saturating_mul(size), size)
        }
    };
    let q = EventQuery { organization_id: caller.organization_id, instance_id, before, offset, limit: size + 1 };
    let mut rows = state.engine.store.events(&q).await?;
    let more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let mut headers = HeaderMap::new();
    headers.insert("Elements-Returned-Count", HeaderValue::from(rows.len()));
    if let (true, Some(last)) = (more, rows.last()) {
        let token = encode_token(key, &PageToken { s: scope, b: last.id, n: size });
        if let Ok(v) = HeaderValue::from_str(&token) {
            headers.insert("Elements-Next-Page-Token", v);
        }
    }
    Ok((headers, Json(Value::Array(rows.iter().map(event_json).collect()))).into_response())
}

/// `GET /instances/events`: the organization's events, newest first.
#[utoipa::path(get, path = "/instances/events", operation_id = "listEvents", tag = "events", params(("page" = Option<u64>, Query), ("pageSize" = Option<u64>, Query, description = "Default 200, at most 500"), ("nextPage" = Option<String>, Query, description = "The token of the previous page's Elements-Next-Page-Token")),
    responses((status = 200, description = "Events, newest first: id, eventDate, status, providerData, notifiedData, delivery", body = Vec<Object>), (status = 400, description = "page or pageSize not a whole number from 1, or a bad or forged page token", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn list_all(State(state): State<Arc<AppState>>, caller: Caller, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    list(&state, &caller, None, query).await
}

/// `GET /instances/{id}/events`.
#[utoipa::path(get, path = "/instances/{id}/events", operation_id = "listInstanceEvents", tag = "events", params(("id" = i64, Path), ("page" = Option<u64>, Query), ("pageSize" = Option<u64>, Query, description = "Default 200, at most 500"), ("nextPage" = Option<String>, Query, description = "The token of the previous page's Elements-Next-Page-Token")),
    responses((status = 200, description = "The instance's events, newest first", body = Vec<Object>), (status = 400, description = "page or pageSize not a whole number from 1, or a bad or forged page token", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn list_instance(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list(&state, &caller, Some(id), query).await
}

async fn one(state: &AppState, caller: &Caller, instance_id: Option<i64>, event_id: &str) -> Result<Json<Value>, ApiError> {
    let row = state.engine.store.event(caller.organization_id, instance_id, event_id).await?;
    row.map(|e| Json(event_json(&e))).ok_or_else(|| ApiError::not_found("No such event"))
}

/// `GET /instances/events/{eventId}`.
#[utoipa::path(get, path = "/instances/events/{eventId}", operation_id = "getEvent", tag = "events", params(("eventId" = String, Path)),
    responses((status = 200, description = "One event", body = Object), (status = 400, description = "`{eventId}` is not UTF-8 once percent-decoded", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn get(State(state): State<Arc<AppState>>, caller: Caller, Path(event_id): Path<String>) -> Result<Json<Value>, ApiError> {
    one(&state, &caller, None, &event_id).await
}

/// `GET /instances/{id}/events/{eventId}`.
#[utoipa::path(get, path = "/instances/{id}/events/{eventId}", operation_id = "getInstanceEvent", tag = "events", params(("id" = i64, Path), ("eventId" = String, Path)),
    responses((status = 200, description = "One event of the instance", body = Object), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn get_for_instance(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, event_id)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    one(&state, &caller, Some(id), &event_id).await
}

/// `POST /instances/events/{eventId}/redeliver`: queues the event again now, with a
/// full set of attempts, and lifts a 410 stop on the instance's callback.
#[utoipa::path(post, path = "/instances/events/{eventId}/redeliver", operation_id = "redeliverEvent", tag = "events", params(("eventId" = String, Path)),
    responses((status = 200, description = "Queued again; the event as the log shows it", body = Object), (status = 400, description = "`{eventId}` is not UTF-8 once percent-decoded", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn redeliver(State(state): State<Arc<AppState>>, caller: Caller, Path(event_id): Path<String>) -> Result<Json<Value>, ApiError> {
    if !state.engine.store.redeliver_event(caller.organization_id, &event_id, switchyard_events::now_ms()).await? {
        return Err(ApiError::not_found("No such event"));
    }
    one(&state, &caller, None, &event_id).await
}

/// `POST /instances/{id}/events/redeliver`: every undelivered event of the instance.
#[utoipa::path(post, path = "/instances/{id}/events/redeliver", operation_id = "redeliverInstanceEvents", tag = "events", params(("id" = i64, Path)),
    responses((status = 200, description = "`{instanceId, redelivered}`: how many were queued again", body = Object), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such event or instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn redeliver_instance(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    match state.engine.store.redeliver_instance(caller.organization_id, id, switchyard_events::now_ms()).await? {
        Some(n) => Ok(Json(json!({"instanceId": id, "redelivered": n}))),
        None => Err(ApiError::not_found("No such instance")),
    }
}

