//! The v3 hooks API (`/stores/{hash}/v3/hooks`, token mode only): a store's webhook
//! subscriptions, with the vendor's validation, paging and v3 error shape.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use http::header::HeaderName;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::api::{body_object, Ctx};
use super::events::SCOPES;
use super::table::{ApiError, Reply};
use super::{lock, BigCommerceSimulator, StoreState};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 250;
/// The vendor's limits on custom headers.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_NAME: usize = 64;
const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Headers the delivery itself sets; a hook may not replace them.
const RESERVED_HEADERS: [&str; 8] = ["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"];

/// One subscription of a store.
#[derive(Clone, Debug)]
pub(crate) struct Hook {
    pub(crate) id: u64,
    pub(crate) client_id: String,
    pub(crate) store_hash: String,
    pub(crate) scope: String,
    pub(crate) destination: String,
    pub(crate) is_active: bool,
    /// Custom headers sent with every delivery (string values); `None` shows as `null`.
    pub(crate) headers: Option<Map<String, Value>>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl Hook {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "client_id": self.client_id,
            "store_hash": self.store_hash,
            "scope": self.scope,
            "destination": self.destination,
            "is_active": self.is_active,
            "headers": self.headers,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// The hooks of one store, by id.
pub(crate) type Hooks = BTreeMap<u64, Hook>;

/// The client id of the store's API account. One token per store means one account,
/// so it is derived from the hash: stable, and it reveals nothing of the token.
fn client_id(hash: &str) -> String {
    let digest = Sha1::digest(format!("switchyard-sandbox-client:{hash}").as_bytes());
    hex(&digest)[..31].to_string()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves `segs` (the path after `/v3`, split on `/`); every error is in the v3 shape.
pub(crate) fn dispatch(sim: &BigCommerceSimulator, store: &StoreState, hash: &str, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Reply {
    let result = match (segs, method) {
        (["hooks"], &Method::GET) => list(store, ctx),
        (["hooks"], &Method::POST) => create(sim, store, hash, ctx),
        (["hooks"], _) => Err(ApiError::method_not_allowed()),
        (["hooks", id], m) => {
            let id = id.parse::<u64>().ok().filter(|i| *i > 0);
            let mut hooks = lock(&store.hooks);
            let Some(id) = id.filter(|i| hooks.contains_key(i)) else {
                return ApiError::new(StatusCode::NOT_FOUND, "Webhook not found.").v3_reply();
            };
            match *m {
                Method::GET => Ok(one(&hooks[&id])),
                Method::PUT => update(&mut hooks, id, ctx),
                Method::DELETE => Ok(hooks.remove(&id).map(|h| one(&h)).unwrap_or_default()),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(ApiError::not_found()),
    };
    match result {
        Ok(v) => Reply::ok(&v),
        Err(e) => e.v3_reply(),
    }
}

/// The answer about one hook: `{"data": hook, "meta": {}}`.
fn one(h: &Hook) -> Value {
    json!({ "data": h.json(), "meta": {} })
}

fn create(sim: &BigCommerceSimulator, store: &StoreState, hash: &str, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let f = Fields::parse(ctx.body, true)?;
    let hook = Hook {
        id: sim.inner.next_hook_id.fetch_add(1, Ordering::Relaxed),
        client_id: client_id(hash),
        store_hash: hash.to_string(),
        scope: f.scope.unwrap_or_default(),
        destination: f.destination.unwrap_or_default(),
        is_active: f.is_active.unwrap_or(true),
        headers: f.headers.flatten(),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let answer = one(&hook);
    lock(&store.hooks).insert(hook.id, hook);
    Ok(answer)
}

fn update(hooks: &mut Hooks, id: u64, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let f = Fields::parse(ctx.body, false)?;
    let h = hooks.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if let Some(s) = f.scope {
        h.scope = s;
    }
    if let Some(d) = f.destination {
        h.destination = d;
    }
    if let Some(a) = f.is_active {
        h.is_active = a;
    }
    if let Some(headers) = f.headers {
        h.headers = headers;
    }
    h.updated_at = ctx.now;
    Ok(one(h))
}

fn list(store: &StoreState, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let q = &ctx.query;
    let page = positive(q.get("page"), "page", 1)?;
    let limit = positive(q.get("limit"), "limit", DEFAULT_LIMIT)?.min(MAX_LIMIT);
    let active = match q.get("is_active") {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(_) => return Err(ApiError::bad_request("The query parameter 'is_active' must be true or false.")),
    };
    let scope = q.get("scope");
    let destination = q.get("destination");
    let hooks = lock(&store.hooks);
    let matching: Vec<&Hook> = hooks
        .values()
        .filter(|h| active.is_none_or(|a| h.is_active == a))
        .filter(|h| scope.is_none_or(|s| h.scope == s))
        .filter(|h| destination.is_none_or(|d| h.destination == d))
        .collect();
    let total = matching.len();
    let data: Vec<Value> = matching.iter().skip((page - 1).saturating_mul(limit)).take(limit).map(|h| h.json()).collect();
    let total_pages = total.div_ceil(limit);

    // Links keep the filters, as the vendor's do.
    let link = |p: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("is_active", q.get("is_active")), ("scope", scope), ("destination", destination)] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        s.append_pair("page", &p.to_string()).append_pair("limit", &limit.to_string());
        format!("?{}", s.finish())
    };
    let mut links = Map::new();
    if page > 1 {
        links.insert("previous".into(), json!(link(page - 1)));
    }
    links.insert("current".into(), json!(link(page)));
    if page < total_pages {
        links.insert("next".into(), json!(link(page + 1)));
    }
    Ok(json!({
        "data": data,
        "meta": { "pagination": {
            "total": total,
            "count": data.len(),
            "per_page": limit,
            "current_page": page,
            "total_pages": total_pages,
            "links": links,
        } }
    }))
}

/// A positive integer query parameter, or `default` when absent.
fn positive(v: Option<&str>, name: &str, default: usize) -> Result<usize, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request(format!("The query parameter '{name}' must be a positive integer."))),
    }
}

/// The writable fields of a hook, checked.
struct Fields {
    scope: Option<String>,
    destination: Option<String>,
    is_active: Option<bool>,
    /// `Some(None)`: headers set to `null`.
    headers: Option<Option<Map<String, Value>>>,
}

impl Fields {
    /// Parses a create (`required`: scope and destination) or update body. Malformed JSON
    /// is a 400; every field problem is listed in one 422.
    fn parse(body: &[u8], required: bool) -> Result<Fields, ApiError> {
        let body = body_object(body).map_err(|e| ApiError::bad_request(e.message))?;
        let mut errors = Map::new();
        let mut text = |name: &str, check: fn(&str) -> Result<(), String>| match body.get(name) {
            None | Some(Value::Null) if required => {
                errors.insert(name.into(), json!("error.path.missing"));
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match check(s) {
                Ok(()) => Some(s.clone()),
                Err(e) => {
                    errors.insert(name.into(), json!(e));
                    None
                }
            },
            Some(_) => {
                errors.insert(name.into(), json!("The value must be a string."));
                None
            }
        };
        let scope = text("scope", check_scope);
        let destination = text("destination", check_destination);
        let is_active = match body.get("is_active") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.insert("is_active".into(), json!("The value must be a boolean."));
                None
            }
        };
        let headers = match body.get("headers") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Object(h)) => match check_headers(h) {
                Ok(()) => Some(Some(h.clone())),
                Err(e) => {
                    errors.insert("headers".into(), json!(e));
                    None
                }
            },
            Some(_) => {
                errors.insert("headers".into(), json!("The value must be an object of header names and string values."));
                None
            }
        };
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let f = Fields { scope, destination, is_active, headers };
        if !required && f.scope.is_none() && f.destination.is_none() && f.is_active.is_none() && f.headers.is_none() {
            let mut errors = Map::new();
            errors.insert("body".into(), json!("At least one of scope, destination, is_active or headers is required."));
            return Err(invalid(errors));
        }
        Ok(f)
    }
}

fn invalid(errors: Map<String, Value>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "JSON data is missing or invalid").with_details(Value::Object(errors))
}

fn check_scope(s: &str) -> Result<(), String> {
    if SCOPES.contains(&s) {
        Ok(())
    } else {
        Err(format!("The scope '{s}' is not supported by this simulator; supported: {}.", SCOPES.join(", ")))
    }
}

/// https on port 443, as the vendor requires; also plain http to a loopback host, so the
/// simulator works offline (a deviation from the vendor).
fn check_destination(s: &str) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| format!("The destination is not a valid URL: {e}."))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err("The destination must name a host.".into());
    };
    match url.scheme() {
        "https" if url.port().is_none_or(|p| p == 443) => Ok(()),
        "https" => Err("The destination must be served on port 443; custom ports are not supported.".into()),
        "http" if is_loopback(host) => Ok(()),
        _ => Err("The destination must be an https URL (or http on a loopback address, in the simulator).".into()),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_headers(h: &Map<String, Value>) -> Result<(), String> {
    if h.len() > MAX_HEADERS {
        return Err(format!("At most {MAX_HEADERS} custom headers are allowed."));
    }
    for (name, value) in h {
        let Value::String(value) = value else {
            return Err(format!("The value of header '{name}' must be a string."));
        };
        if name.len() > MAX_HEADER_NAME || HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("'{name}' is not a valid header name (at most {MAX_HEADER_NAME} characters)."));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("The header '{name}' is set by the delivery and cannot be replaced."));
        }
        if value.len() > MAX_HEADER_VALUE || HeaderValue::from_str(value).is_err() {
            return Err(format!("The value of header '{name}' is not a valid header value (at most 8 KiB)."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert!(check_destination("https://example.com/hooks").is_ok());
        assert!(check_destination("https://example.com:443/hooks").is_ok());
        assert!(check_destination("https://example.com:8443/hooks").is_err());
        assert!(check_destination("http://example.com/hooks").is_err());
        assert!(check_destination("http://127.0.0.1:9000/hooks").is_ok());
        assert!(check_destination("http://127.8.0.1/").is_ok());
        assert!(check_destination("http://[::1]:9000/").is_ok());
        assert!(check_destination("http://localhost:1/").is_ok());
        assert!(check_destination("ftp://127.0.0.1/").is_err());
        assert!(check_destination("not a url").is_err());
    }

    #[test]
    fn client_id_is_stable_and_vendor_shaped() {
        assert_eq!(client_id("abc123"), client_id("abc123"));
        assert_ne!(client_id("abc123"), client_id("xyz"));
        assert_eq!(client_id("abc123").len(), 31);
    }
}
