//! `GET /instances/{id}/logs`: the instance's vendor calls, newest first, paged like
//! hub lists (`pageSize`, `page`, `nextPage`, `Elements-Next-Page-Token`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_store::CallsFrom;

use crate::caller::Caller;
use crate::extract::Path;
use crate::{ApiError, AppState};

const DEFAULT_PAGE_SIZE: u64 = 200;
const MAX_PAGE_SIZE: u64 = 500;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// A keyset cursor (`instance`, `below` row id), signed so it cannot be forged or
/// moved to another instance. A cursor rather than hub paging's offsets, because a
/// log page must not shift when new calls arrive.
fn encode_cursor(key: &[u8], instance: i64, below: i64) -> String {
    switchyard_engine::page_token::encode(key, "logs", &(instance, below))
}

fn decode_cursor(key: &[u8], instance: i64, text: &str) -> Option<i64> {
    let (i, below): (i64, i64) = switchyard_engine::page_token::decode(key, "logs", text)?;
    (i == instance).then_some(below)
}

#[utoipa::path(get, path = "/instances/{id}/logs", operation_id = "listInstanceLogs", tag = "instances",
    params(("id" = i64, Path), ("pageSize" = Option<u64>, Query), ("nextPage" = Option<String>, Query)),
    responses((status = 200, description = "Vendor calls, newest first: method, path, query parameter names, status, duration, retries; never bodies or secrets", body = Vec<Object>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if state.engine.store.instance(caller.organization_id, id).await?.is_none() {
        return Err(ApiError::not_found(format!("No instance {id}")));
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let number = |name: &str, default: u64| -> Result<u64, ApiError> {
        match get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
        }
    };
    let size = number("pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
    let from = match get("nextPage") {
        Some(token) => CallsFrom::Below(
            decode_cursor(&state.engine.paging_key, id, token).ok_or_else(|| bad_request("nextPage is not a token this server issued for this instance"))?,
        ),
        None => CallsFrom::Offset((number("page", 1)? - 1).saturating_mul(size)),
    };
    let mut rows = state.engine.store.calls(caller.organization_id, id, from, size + 1).await?;
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let mut headers = HeaderMap::new();
    headers.insert("Elements-Returned-Count", HeaderValue::from(rows.len()));
    if let (true, Some(last)) = (more, rows.last()) {
        if let Ok(v) = HeaderValue::from_str(&encode_cursor(&state.engine.paging_key, id, last.id)) {
            headers.insert("Elements-Next-Page-Token", v);
        }
    }
    let body: Vec<Value> = rows
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "instanceId": c.instance_id,
                "method": c.method,
                "path": c.path,
                "queryParameters": c.query_names,
                "status": c.status,
                "outcome": c.outcome,
                "durationMs": c.duration_ms,
                "retries": c.retries,
                "createdDate": c.created_at,
            })
        })
        .collect();
    Ok((headers, Json(Value::Array(body))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_key_and_instance() {
        let key = [3u8; 32];
        let t = encode_cursor(&key, 5, 1234);
        assert_eq!(decode_cursor(&key, 5, &t), Some(1234));
        assert_eq!(decode_cursor(&key, 6, &t), None, "another instance");
        assert_eq!(decode_cursor(&[4u8; 32], 5, &t), None, "another key");
        assert_eq!(decode_cursor(&key, 5, &switchyard_engine::page_token::encode(&key, "hub", &(5, 1234))), None, "another purpose");
        assert_eq!(decode_cursor(&key, 5, "junk"), None);
    }
}
