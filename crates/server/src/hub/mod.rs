//! Hub calls: `/hubs/{hub}/{path}` with the `Element` token, routed through the
//! element's data to one or more vendor calls.
//!
//! `vendor` sends one call to the instance's vendor and maps its errors; `list`
//! turns vendor pages into exact hub pages with signed `nextPage` tokens.

mod list;
mod vendor;
pub(crate) mod xmlrpc;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use switchyard_elements::{parse_fields, project, ElementDefinition, Operation, Protocol, Resource, RouteError, RouteMatch};
use switchyard_store::{config_aad, InstanceRow};

use crate::caller::{hash_secret, Caller};
use crate::cache::OpenInstance;
use crate::{segment, ApiError, AppState};
pub(crate) use vendor::{log_entry, render, unreached, Extras, Vendor};
use vendor::{json_passthrough, parse_json};

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// The instance named by the caller's `Element` token, usable for hub calls: its
/// element and its configuration opened (remembered briefly, see `cache`).
pub(crate) async fn open_instance(
    state: &AppState,
    caller: &Caller,
) -> Result<(Arc<OpenInstance>, Arc<ElementDefinition>), ApiError> {
    let token = caller
        .element_token
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("Hub calls need 'Element <token>' in Authorization"))?;
    let token_hash = hash_secret(token);
    let open = match state.cache.instance(&token_hash) {
        Some(open) => open,
        None => {
            let Some(row) = state.store.instance_by_token(&token_hash).await? else {
                return Err(ApiError::unauthorized("Invalid Element token"));
            };
            let def = element_of(state, &row)?;
            let config = open_configuration(state, &def, &row).await?;
            state.cache.remember_instance(token_hash, OpenInstance { row, config })
        }
    };
    if open.row.organization_id != caller.organization_id {
        return Err(ApiError::unauthorized("Invalid Element token"));
    }
    if open.row.disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Instance {} is disabled", open.row.id)));
    }
    let def = element_of(state, &open.row)?;
    Ok((open, def))
}

pub(crate) fn element_of(state: &AppState, row: &InstanceRow) -> Result<Arc<ElementDefinition>, ApiError> {
    state
        .catalog
        .get(&row.element_key)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("instance {} names unknown element {}", row.id, row.element_key)))
}

/// The element's default configuration values.
pub(crate) fn defaults(def: &ElementDefinition) -> BTreeMap<String, String> {
    def.configuration
        .iter()
        .filter_map(|p| Some((p.key.clone(), p.default_value.clone()?)))
        .collect()
}

/// The instance's configuration with secrets opened, over the element defaults.
pub(crate) async fn open_configuration(
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

/// `{hub}` and the resource path of a `/hubs/{hub}/{path}` request, read from the
/// still percent-encoded URI so that every id stays one segment (see `crate::segment`).
fn hub_and_path(uri: &Uri) -> Result<(String, String), ApiError> {
    let raw = uri.path().trim_start_matches('/');
    let raw = raw.strip_prefix("hubs/").ok_or_else(|| ApiError::internal(format!("'{}' is not a hub path", uri.path())))?;
    let mut segments = segment::decode(raw, "A hub path", false)?.into_iter();
    let hub = segments.next().unwrap_or_default();
    Ok((hub, segments.collect::<Vec<_>>().join("/")))
}

/// Every hub call has this shape; the element's data says which resources and
/// operations exist (see `GET /elements/{keyOrId}` and its `resources`).
#[utoipa::path(method(get, post, put, patch, delete), path = "/hubs/{hub}/{path}", operation_id = "hubCall", tag = "hubs",
    request_body(content = Option<Object>, description = "For create and update: the record, as the vendor names its fields"),
    params(("hub" = String, Path, description = "The element's hub, e.g. ecommerce"),
        ("path" = String, Path, description = "Resource path, e.g. orders, orders/{id}, orders/count"),
        ("page" = Option<u64>, Query), ("pageSize" = Option<u64>, Query, description = "Default 200"),
        ("nextPage" = Option<String>, Query, description = "The token of the previous page's Elements-Next-Page-Token"),
        ("where" = Option<String>, Query, description = "CEQL filter"),
        ("fields" = Option<String>, Query, description = "Lists and retrieve: the fields to keep, comma-separated (dotted paths keep their nesting)")),
    responses((status = 200, description = "The vendor's records, normalized; lists carry Elements-Returned-Count and, when more exist, Elements-Next-Page-Token; a field the vendor wrote undecodably is replaced and named in Elements-Warning"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "The instance is disabled", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 502, description = "The vendor failed; its status and words in providerMessage", body = crate::error::ErrorBody),
        (status = 504, description = "The vendor did not answer in time", body = crate::error::ErrorBody)))]
pub async fn call(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (hub, path) = hub_and_path(&uri)?;
    let (open, def) = open_instance(&state, &caller).await?;
    let (row, config) = (&open.row, &open.config);
    if def.hub != hub {
        return Err(ApiError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub)));
    }
    let route = def.route(method.as_str(), &path).map_err(|e| match e {
        RouteError::NotFound => ApiError::not_found(format!("No resource /hubs/{hub}/{path}")),
        RouteError::MethodNotAllowed => {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not supported on /hubs/{hub}/{path}"))
        }
    })?;
    // OAuth 2.0: a refused refresh token leaves nothing to call the vendor with until
    // the instance is authorized again; a token near its expiry is refreshed first.
    let mut config = Cow::Borrowed(config);
    if def.authentication.oauth2().is_some() {
        if !row.valid {
            return Err(crate::oauth::reauthorize_error(&state, row.id).await);
        }
        crate::oauth::ensure_fresh(&state, &def, row.id, config.to_mut()).await?;
    }
    if route.operation == Operation::Create {
        // Run as its own task under Idempotency-Key, so it owns what it uses.
        let hub_path = format!("/hubs/{hub}/{path}");
        let request = idempotency_request(&caller, row, &method, &hub_path, query.as_deref(), &body);
        let job = create(state.clone(), def.clone(), open.clone(), config.into_owned(), hub.clone(), path.clone(), body.clone());
        return crate::idempotency::once(&state, &headers, request, job).await;
    }
    let vendor = Vendor::new(&state, &def, &config)?.for_instance(row.id);
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    if def.protocol == Protocol::XmlRpc {
        return xmlrpc::operation(&vendor, row, &hub, &path, &route, &params, &body).await;
    }
    let vendor_path = vendor_path(&route)?;
    match route.operation {
        Operation::List => list::list(&vendor, row, &hub, &path, &vendor_path, &params, route.resource).await,
        Operation::Count => json_passthrough(vendor.send(Method::GET, &format!("{vendor_path}/count"), &[], None).await?),
        Operation::Get => {
            let fields = requested_fields(&def, route.resource, &params)?;
            let r = vendor.send(Method::GET, &vendor_path, &[], None).await?;
            match fields {
                Some(fields) => Ok(Json(project(&parse_json(&r)?, &fields)).into_response()),
                None => json_passthrough(r),
            }
        }
        Operation::Read => json_passthrough(vendor.send(Method::GET, &vendor_path, &[], None).await?),
        Operation::Create | Operation::Update => write(&vendor, &route, &body).await,
        Operation::Delete => {
            vendor.send(Method::DELETE, &vendor_path, &[], None).await?;
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// A hub create, owning all it uses so that it can run in a task of its own (see
/// `crate::idempotency::once`); reports whether the vendor may have acted.
async fn create(
    state: AppState,
    def: Arc<ElementDefinition>,
    open: Arc<OpenInstance>,
    config: BTreeMap<String, String>,
    hub: String,
    path: String,
    body: Bytes,
) -> crate::idempotency::Attempt {
    let vendor = match Vendor::new(&state, &def, &config) {
        Ok(v) => v.for_instance(open.row.id),
        Err(e) => return crate::idempotency::Attempt { answer: Err(e), reached: false },
    };
    let answer = async {
        // Routed again here: a route borrows the element it came from.
        let route = def.route(Method::POST.as_str(), &path).map_err(|_| ApiError::internal("a create that no longer routes"))?;
        match def.protocol {
            Protocol::XmlRpc => xmlrpc::operation(&vendor, &open.row, &hub, &path, &route, &[], &body).await,
            Protocol::RestJson => write(&vendor, &route, &body).await,
        }
    }
    .await;
    crate::idempotency::Attempt { answer, reached: vendor.maybe_reached() }
}

/// A REST create or update: the body checked and rewritten by the element's
/// behaviours, sent with the resource's method, the vendor's record answered.
async fn write(vendor: &Vendor<'_>, route: &RouteMatch<'_>, body: &Bytes) -> Result<Response, ApiError> {
    let mut value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(bad_request("The body must be a JSON object")),
    };
    // Named vendor quirks (link objects, RFC 2822 dates, decimal strings).
    switchyard_elements::prepare_write_body(vendor.def, route.resource, &mut value);
    let body = Bytes::from(serde_json::to_vec(&value).map_err(ApiError::internal)?);
    let method = if route.operation == Operation::Create {
        Method::POST
    } else {
        route.resource.update_method.parse().map_err(ApiError::internal)?
    };
    let r = vendor.send(method, &vendor_path(route)?, &[], Some(body)).await?;
    Ok(Json(parse_json(&r)?).into_response())
}

/// The `fields` the caller asked for, checked against the resource's model (an
/// unknown one is a 400, before any vendor call); `None` when not given.
pub(super) fn requested_fields(
    def: &ElementDefinition,
    resource: &Resource,
    params: &[(String, String)],
) -> Result<Option<Vec<String>>, ApiError> {
    match params.iter().find(|(k, _)| k == "fields").map(|(_, v)| v.as_str()).filter(|f| !f.trim().is_empty()) {
        Some(f) => parse_fields(def, resource, f).map(Some).map_err(|e| bad_request(e.to_string())),
        None => Ok(None),
    }
}

/// The route's vendor path, with the record id as the last segment when it has one.
fn vendor_path(route: &RouteMatch<'_>) -> Result<String, ApiError> {
    let mut path = resource_path(route)?;
    if let Some(id) = &route.id {
        path.push('/');
        path.push_str(&segment::encode(id)?);
    }
    Ok(path)
}

/// The resource's vendor path with the route's parameters filled in, each
/// encoded as one path segment.
fn resource_path(route: &RouteMatch<'_>) -> Result<String, ApiError> {
    let mut params = Vec::with_capacity(route.params.len());
    for (name, value) in &route.params {
        params.push((name.as_str(), segment::encode(value)?));
    }
    switchyard_elements::render(&route.resource.vendor_path, |n| {
        params.iter().find(|(k, _)| *k == n).map(|(_, v)| Cow::Borrowed(v.as_str()))
    })
    .map_err(ApiError::internal)
}

/// What `Idempotency-Key` remembers a hub create by.
fn idempotency_request<'a>(
    caller: &Caller,
    row: &InstanceRow,
    method: &'a Method,
    hub_path: &'a str,
    query: Option<&'a str>,
    body: &'a Bytes,
) -> crate::idempotency::Request<'a> {
    crate::idempotency::Request {
        organization_id: caller.organization_id,
        instance_id: row.id,
        method: method.as_str(),
        path: hub_path,
        query: query.unwrap_or(""),
        body,
    }
}

/// A hub read made by the platform itself for an instance (the event poller's
/// lists, the delivery worker's records): the same routing, vendor call and paging
/// as a caller's `GET /hubs/...`. `hub_path` is percent-encoded, ids made with
/// `crate::segment::encode`.
pub(crate) async fn read_for_instance(
    state: &AppState,
    row: &InstanceRow,
    hub_path: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let def = element_of(state, row)?;
    let (hub, path) = hub_and_path(&hub_path.parse::<Uri>().map_err(|_| bad_request(format!("'{hub_path}' is not a hub path")))?)?;
    let (hub, path) = (hub.as_str(), path.as_str());
    if def.hub != hub {
        return Err(ApiError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub)));
    }
    let route = def.route("GET", path).map_err(|_| ApiError::not_found(format!("No resource at {hub_path}")))?;
    let mut config = open_configuration(state, &def, row).await?;
    if def.authentication.oauth2().is_some() {
        if !row.valid {
            return Err(crate::oauth::reauthorize_error(state, row.id).await);
        }
        crate::oauth::ensure_fresh(state, &def, row.id, &mut config).await?;
    }
    let vendor = Vendor::new(state, &def, &config)?.for_instance(row.id);
    if def.protocol == Protocol::XmlRpc {
        return xmlrpc::operation(&vendor, row, hub, path, &route, params, &Bytes::new()).await;
    }
    let mut vendor_path = resource_path(&route)?;
    match (route.operation, &route.id) {
        (Operation::List, _) => list::list(&vendor, row, hub, path, &vendor_path, params, route.resource).await,
        (Operation::Get, Some(id)) => {
            vendor_path.push('/');
            vendor_path.push_str(&segment::encode(id)?);
            json_passthrough(vendor.send(Method::GET, &vendor_path, &[], None).await?)
        }
        _ => Err(bad_request(format!("{hub_path} is not a list or a record"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_paths_are_split_before_decoding() {
        let split = |p: &str| hub_and_path(&p.parse().unwrap());
        assert_eq!(split("/hubs/ecommerce/orders/a%20b/products").unwrap(), ("ecommerce".into(), "orders/a b/products".into()));
        assert_eq!(split("/hubs/ecommerce/orders/a%2Fb").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(split("/hubs/ecommerce/orders/%2e%2e/products").unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
