//! Hub calls: `/hubs/{hub}/{path}` with the `Element` token, routed through the
//! element's data to one or more vendor calls.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use switchyard_elements::{Authentication, Behaviour, ElementDefinition, Operation, Paging, RouteError};
use switchyard_engine::client::{provider_message, VendorError, VendorRequest, VendorResponse};
use switchyard_store::{config_aad, InstanceRow};

use crate::caller::{hash_secret, Caller};
use crate::{ApiError, AppState};

/// Default hub page size, as in Cloud Elements.
const DEFAULT_PAGE_SIZE: u64 = 200;
/// Largest vendor body read into memory.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

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
    for c in state.store.configuration(row.id).await? {
        let value = match (c.value, c.secret) {
            (Some(v), _) => v,
            (None, Some(blob)) => state
                .vault
                .decrypt_str(&blob, &config_aad(row.id, &c.key))
                .map_err(ApiError::internal)?
                .expose()
                .to_owned(),
            (None, None) => continue,
        };
        config.insert(c.key, value);
    }
    Ok(config)
}

fn render(template: &str, config: &BTreeMap<String, String>) -> Result<String, ApiError> {
    switchyard_elements::render(template, |n| config.get(n).map(|v| Cow::Borrowed(v.as_str())))
        .map_err(|e| bad_request(format!("Instance configuration incomplete: {e}")))
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
        Operation::List => list(&vendor, &row, &hub, &path, &vendor_path, &params, route.resource.records_path.as_deref()).await,
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

/// One instance's view of its vendor.
pub(crate) struct Vendor<'a> {
    state: &'a AppState,
    def: &'a ElementDefinition,
    config: &'a BTreeMap<String, String>,
    base: String,
}

impl<'a> Vendor<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        def: &'a ElementDefinition,
        config: &'a BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        let base = render(&def.base_url, config)?.trim_end_matches('/').to_owned();
        Ok(Vendor { state, def, config, base })
    }

    /// Sends one call; vendor errors become hub errors (4xx passed through with the
    /// vendor's words, 5xx as 502, timeouts as 504).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<VendorResponse, ApiError> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish());
        }
        let Authentication::Basic { username, password } = &self.def.authentication;
        let mut headers = vec![("Accept".to_owned(), "application/json".to_owned())];
        if body.is_some() {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        let request = VendorRequest {
            method,
            url,
            headers,
            basic_auth: Some((render(username, self.config)?, render(password, self.config)?)),
            body,
            max_body: MAX_VENDOR_BODY,
        };
        let response = self.state.client.send(request).await.map_err(|e| match e {
            VendorError::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "The vendor did not answer in time"),
            VendorError::Refused(p) => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor URL is not allowed: {p}"))
            }
            other => {
                let mut err = ApiError::new(StatusCode::BAD_GATEWAY, "The vendor could not be reached");
                err.provider_message = Some(other.to_string());
                err
            }
        })?;
        match response.status {
            200..=299 => Ok(response),
            400..=499 => {
                let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_REQUEST);
                let mut err = ApiError::new(status, format!("The vendor answered {}", response.status));
                err.provider_message = provider_message(&response.body);
                Err(err)
            }
            other => {
                let mut err = ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor failed with status {other}"));
                err.provider_message = provider_message(&response.body);
                Err(err)
            }
        }
    }
}

fn parse_json(r: &VendorResponse) -> Result<Value, ApiError> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body).map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON"))
}

/// Where a hub page starts, as the opaque `nextPage` token says or `page` implies.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// Instance and hub path the token was made for.
    i: i64,
    p: String,
    /// Offset of the first record, and the page size.
    o: u64,
    s: u64,
}

fn sign(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload);
    mac.finalize().into_bytes()[..16].to_vec()
}

fn encode_token(key: &[u8], token: &PageToken) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::to_vec(token).unwrap_or_default();
    format!("{}.{}", b64.encode(&payload), b64.encode(sign(key, &payload)))
}

fn decode_token(key: &[u8], text: &str) -> Option<PageToken> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, mac) = text.split_once('.')?;
    let payload = b64.decode(payload).ok()?;
    let mac = b64.decode(mac).ok()?;
    let mut check = Hmac::<Sha256>::new_from_slice(key).ok()?;
    check.update(&payload);
    check.verify_truncated_left(&mac).ok()?;
    serde_json::from_slice(&payload).ok()
}

#[allow(clippy::too_many_arguments)]
async fn list(
    vendor: &Vendor<'_>,
    row: &InstanceRow,
    hub: &str,
    path: &str,
    vendor_path: &str,
    params: &[(String, String)],
    records_path: Option<&str>,
) -> Result<Response, ApiError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("where").is_some_and(|w| !w.trim().is_empty()) {
        return Err(bad_request("where (CEQL) is not supported on this resource yet; nothing was filtered"));
    }
    let Paging::Page { page_param, size_param, first_page, max_page_size } = &vendor.def.paging;
    let hub_path = format!("{hub}/{path}");
    let key = vendor.state.paging_key.as_slice();
    let (offset, size) = match get("nextPage").filter(|t| !t.is_empty()) {
        Some(text) => {
            let t = decode_token(key, text).ok_or_else(|| bad_request("nextPage is not a token this server issued"))?;
            if t.i != row.id || t.p != hub_path {
                return Err(bad_request("nextPage belongs to another instance or resource"));
            }
            (t.o, t.s)
        }
        None => {
            let number = |name: &str, default: u64| -> Result<u64, ApiError> {
                match get(name) {
                    None | Some("") => Ok(default),
                    Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
                }
            };
            let size = number("pageSize", DEFAULT_PAGE_SIZE)?.min(*max_page_size);
            let page = number("page", 1)?;
            ((page - 1).saturating_mul(size), size)
        }
    };

    // Read one record past the page to know, exactly, whether another page exists.
    // Vendor pages of size `want` align with the first hub page, so the common
    // case is one vendor call; other offsets take at most two.
    let want = size + 1;
    let vendor_size = want.min(*max_page_size);
    let first = offset / vendor_size;
    let last = (offset + want - 1) / vendor_size;
    let mut records = Vec::new();
    let mut skip = (offset - first * vendor_size) as usize;
    for page in first..=last {
        let query = vec![(page_param.clone(), (page + first_page).to_string()), (size_param.clone(), vendor_size.to_string())];
        let r = vendor.send(Method::GET, vendor_path, &query, None).await?;
        let batch = if r.status == 204 && vendor.def.behaviours.contains(&Behaviour::EmptyListIs204) {
            Vec::new()
        } else {
            let value = parse_json(&r)?;
            let value = match records_path {
                Some(p) => p.split('.').try_fold(&value, |v, k| v.get(k)).cloned().unwrap_or(Value::Null),
                None => value,
            };
            match value {
                Value::Array(items) => items,
                _ => return Err(ApiError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds no array")),
            }
        };
        let full = batch.len() as u64 == vendor_size;
        records.extend(batch.into_iter().skip(skip));
        skip = 0;
        if !full {
            break;
        }
    }
    let more = records.len() as u64 > size;
    records.truncate(size as usize);
    let mut headers = HeaderMap::new();
    headers.insert("Elements-Returned-Count", HeaderValue::from(records.len()));
    if more {
        let token = encode_token(key, &PageToken { i: row.id, p: hub_path, o: offset + size, s: size });
        if let Ok(v) = HeaderValue::from_str(&token) {
            headers.insert("Elements-Next-Page-Token", v);
        }
    }
    Ok((headers, Json(Value::Array(records))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let t = encode_token(&key, &PageToken { i: 1, p: "ecommerce/orders".into(), o: 50, s: 50 });
        let back = decode_token(&key, &t).unwrap();
        assert_eq!((back.i, back.o, back.s), (1, 50, 50));
        assert!(decode_token(&[8u8; 32], &t).is_none(), "another key");
        let (payload, mac) = t.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = String::from_utf8(b64.decode(payload).unwrap()).unwrap().replace("50", "99");
        assert!(decode_token(&key, &format!("{}.{mac}", b64.encode(forged))).is_none());
        assert!(decode_token(&key, "garbage").is_none());
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(encode_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
        assert_eq!(encode_segment("a b"), "a%20b");
        assert_eq!(encode_segment(".."), "%2E%2E");
    }
}
