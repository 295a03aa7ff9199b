//! Hub calls: `/hubs/{hub}/{path}` with the `Element` token, routed through the
//! element's data to one or more vendor calls.
//!
//! `vendor` sends one call to the instance's vendor and maps its errors; `list`
//! turns vendor pages into exact hub pages with signed `nextPage` tokens.

mod list;
mod vendor;

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use switchyard_elements::{ElementDefinition, Operation, RouteError};
use switchyard_store::{config_aad, InstanceRow};

use crate::caller::{hash_secret, Caller};
use crate::{ApiError, AppState};
pub(crate) use vendor::Vendor;
use vendor::parse_json;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// The instance named by the caller's `Element` token, usable for hub calls.
async fn instance(state: &AppState, caller: &Caller) -> Result<InstanceRow, ApiError> {
    let token = caller
        .element_token
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("Hub calls need 'Element <token>' in Authorization"))?;
    let row = match state.store.instance_by_token(&hash_secret(token)).await? {
        Some(row) if row.organization_id == caller.organization_id => row,
        _ => return Err(ApiError::unauthorized("Invalid Element token")),
    };
    if row.disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Instance {} is disabled", row.id)));
    }
    Ok(row)
}

/// The element's default configuration values.
pub(crate) fn defaults(def: &ElementDefinition) -> BTreeMap<String, String> {
    def.configuration
        .iter()
        .filter_map(|p| Some((p.key.clone(), p.default_value.clone()?)))
        .collect()
}

/// The instance's configuration with secrets opened, over the element defaults.
async fn open_configuration(
    state: &AppState,
    def: &ElementDefinition,
    row: &InstanceRow,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut config = defaults(def);
    config.extend(stored_configuration(state, row.id).await?);
    Ok(config)
}

/// The values stored for an instance, secrets opened (no element defaults).
pub(crate) async fn stored_configuration(state: &AppState, instance_id: i64) -> Result<BTreeMap<String, String>, ApiError> {
    let mut config = BTreeMap::new();
    for c in state.store.configuration(instance_id).await? {
        let value = match (c.value, c.secret) {
            (Some(v), _) => v,
            (None, Some(blob)) => state
                .vault
                .decrypt_str(&blob, &config_aad(instance_id, &c.key))
                .map_err(ApiError::internal)?
                .expose()
                .to_owned(),
            (None, None) => continue,
        };
        config.insert(c.key, value);
    }
    Ok(config)
}

/// A path segment with everything but unreserved characters percent-encoded,
/// so an id cannot climb out of its resource (`..`, `/`, `?`).
fn encode_segment(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

pub async fn call(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    Path((hub, path)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let row = instance(&state, &caller).await?;
    let def = state
        .catalog
        .get(&row.element_key)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("instance {} names unknown element {}", row.id, row.element_key)))?;
    if def.hub != hub {
        return Err(ApiError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub)));
    }
    let route = def.route(method.as_str(), &path).map_err(|e| match e {
        RouteError::NotFound => ApiError::not_found(format!("No resource /hubs/{hub}/{path}")),
        RouteError::MethodNotAllowed => {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not supported on /hubs/{hub}/{path}"))
        }
    })?;
    let config = open_configuration(&state, &def, &row).await?;
    let mut vendor_path = switchyard_elements::render(&route.resource.vendor_path, |n| {
        route.params.iter().find(|(k, _)| k == n).map(|(_, v)| Cow::Owned(encode_segment(v)))
    })
    .map_err(ApiError::internal)?;
    if let Some(id) = &route.id {
        vendor_path.push('/');
        vendor_path.push_str(&encode_segment(id));
    }
    let vendor = Vendor::new(&state, &def, &config)?;
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();

    match route.operation {
        Operation::List => list::list(&vendor, &row, &hub, &path, &vendor_path, &params, route.resource.records_path.as_deref()).await,
        Operation::Count => {
            let r = vendor.send(Method::GET, &format!("{vendor_path}/count"), &[], None).await?;
            Ok(Json(parse_json(&r)?).into_response())
        }
        Operation::Get | Operation::Read => {
            let r = vendor.send(Method::GET, &vendor_path, &[], None).await?;
            Ok(Json(parse_json(&r)?).into_response())
        }
        Operation::Create | Operation::Update => {
            if serde_json::from_slice::<Value>(&body).is_err() {
                return Err(bad_request("The body must be a JSON object"));
            }
            let m = if route.operation == Operation::Create {
                Method::POST
            } else {
                route.resource.update_method.parse().map_err(ApiError::internal)?
            };
            let r = vendor.send(m, &vendor_path, &[], Some(body)).await?;
            Ok(Json(parse_json(&r)?).into_response())
        }
        Operation::Delete => {
            vendor.send(Method::DELETE, &vendor_path, &[], None).await?;
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// A hub list call made by the platform itself for an instance (the event poller):
/// the same routing, vendor call and paging as a caller's `GET /hubs/...`.
pub(crate) async fn list_for_instance(
    state: &AppState,
    row: &InstanceRow,
    hub_path: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let def = state
        .catalog
        .get(&row.element_key)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("instance {} names unknown element {}", row.id, row.element_key)))?;
    let rest = hub_path.strip_prefix("/hubs/").ok_or_else(|| bad_request(format!("'{hub_path}' is not a hub path")))?;
    let (hub, path) = rest.split_once('/').ok_or_else(|| bad_request(format!("'{hub_path}' names no resource")))?;
    if def.hub != hub {
        return Err(ApiError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub)));
    }
    let route = def.route("GET", path).map_err(|_| ApiError::not_found(format!("No list at {hub_path}")))?;
    if route.operation != Operation::List {
        return Err(bad_request(format!("{hub_path} is not a list")));
    }
    let config = open_configuration(state, &def, row).await?;
    let vendor_path = switchyard_elements::render(&route.resource.vendor_path, |n| {
        route.params.iter().find(|(k, _)| k == n).map(|(_, v)| Cow::Owned(encode_segment(v)))
    })
    .map_err(ApiError::internal)?;
    let vendor = Vendor::new(state, &def, &config)?;
    list::list(&vendor, row, hub, path, &vendor_path, params, route.resource.records_path.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(encode_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
        assert_eq!(encode_segment("a b"), "a%20b");
        assert_eq!(encode_segment(".."), "%2E%2E");
    }
}
