//! Hub calls over HTTP: `/hubs/{hub}/{path}` with the `Element` token. The engine
//! executes them (`switchyard_engine::Engine::execute`); here are the caller's
//! authorization, the path read segment by segment, `Idempotency-Key` on creates,
//! and the answer's headers.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchyard_elements::Operation;
use switchyard_engine::{segment, HubAnswer, HubRequest, OpenInstance};

use crate::caller::{hash_secret, Caller};
use crate::extract::Body;
use crate::{ApiError, AppState};

/// The instance named by the caller's `Element` token, usable for hub calls: in
/// the caller's organization and enabled.
pub(crate) async fn open_instance(state: &AppState, caller: &Caller) -> Result<Arc<OpenInstance>, ApiError> {
    let open = match (caller.acting_instance, caller.element_token.as_deref()) {
        (Some(id), _) => state.engine.open_by_id(id).await?,
        (None, Some(token)) => state.engine.open_by_token(&hash_secret(token)).await?,
        (None, None) => return Err(ApiError::unauthorized("Hub calls need 'Element <token>' in Authorization")),
    };
    let open = open.filter(|o| o.row.organization_id == caller.organization_id).ok_or_else(|| ApiError::unauthorized("Invalid Element token"))?;
    if open.row.disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Instance {} is disabled", open.row.id)));
    }
    Ok(open)
}

/// `{hub}` and the resource path of a `/hubs/{hub}/{path}` request, read from the
/// still percent-encoded URI so that every id stays one segment (see
/// `switchyard_engine::segment`).
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
    responses((status = 200, description = "The vendor's records, normalized; lists carry Elements-Returned-Count, when more exist Elements-Next-Page-Token, and Elements-Total-Count where the vendor tells; a field the vendor wrote undecodably is replaced and named in Elements-Warning"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "The instance is disabled", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 502, description = "The vendor failed; its status and words in providerMessage", body = crate::error::ErrorBody),
        (status = 504, description = "The vendor did not answer in time", body = crate::error::ErrorBody)))]
pub async fn call(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let (hub, path) = hub_and_path(&uri)?;
    let open = open_instance(&state, &caller).await?;
    // Only creates are POSTs (`Operation::hub_shape`); they alone take Idempotency-Key.
    let create = method == Method::POST && state.engine.operation(&open, &method, &hub, &path).await? == Operation::Create;
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let request = HubRequest { method, hub, path, params, body, page_scope: None };
    if create {
        // Run as its own task under Idempotency-Key, so it owns what it uses.
        let hub_path = format!("/hubs/{}/{}", request.hub, request.path);
        let fingerprint = crate::idempotency::Request {
            organization_id: caller.organization_id,
            instance_id: open.row.id,
            method: request.method.as_str(),
            path: &hub_path,
            query: query.as_deref().unwrap_or(""),
            body: &request.body,
        };
        let (engine, open, owned) = (state.engine.clone(), open.clone(), request.clone());
        let job = async move {
            let outcome = engine.execute(&open, &owned).await;
            crate::idempotency::Attempt { answer: outcome.answer.map(respond).map_err(ApiError::from), reached: outcome.maybe_reached }
        };
        return Box::pin(crate::idempotency::once(&state, &headers, fingerprint, job)).await;
    }
    // Boxed: the engine's future is large, and axum moves the handler's future
    // (a copy of all its state) several times per request.
    Ok(respond(Box::pin(state.engine.execute(&open, &request)).await.answer?))
}

/// A hub answer as HTTP: its JSON body, on lists the paging headers, and one
/// `Elements-Warning` per field the engine replaced.
fn respond(answer: HubAnswer) -> Response {
    let Some(body) = answer.body else { return StatusCode::OK.into_response() };
    let mut response = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    for warning in answer.warnings.iter().filter_map(|w| HeaderValue::from_str(w).ok()) {
        response.headers_mut().append("Elements-Warning", warning);
    }
    if let Some(count) = answer.returned_count {
        response.headers_mut().insert("Elements-Returned-Count", HeaderValue::from(count));
    }
    if let Some(v) = answer.next_page.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert("Elements-Next-Page-Token", v);
    }
    if let Some(total) = answer.total_count {
        response.headers_mut().insert("Elements-Total-Count", HeaderValue::from(total));
    }
    response
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
