//! `ANY /proxy/{vendor path}`: a vendor endpoint no hub resource maps, reached with
//! the instance's credentials through the same retries, limits, outbound policy and
//! call log as hub calls. The vendor's status, body and headers come back as they
//! are, less hop-by-hop and credential headers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::Response;

use switchyard_engine::segment;
use switchyard_engine::vendor::Extras;

use crate::caller::Caller;
use crate::{hub, ApiError, AppState};

/// Response headers never passed back: hop-by-hop (RFC 9110 7.6.1), framing we redo,
/// and anything that carries or asks for credentials.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "authorization",
    "www-authenticate",
    "set-cookie",
    "x-auth-token",
    "x-auth-client",
];

/// The vendor path under the instance's base URL, from the request's still
/// percent-encoded path after `/proxy/`: each segment decoded once, checked and
/// encoded again as one segment (see `crate::segment`); empty segments are dropped.
fn vendor_path(raw: &str) -> Result<String, ApiError> {
    let mut out = String::new();
    for value in segment::decode(raw, "The proxy path", true)? {
        out.push('/');
        out.push_str(&segment::encode(&value)?);
    }
    Ok(out)
}

#[utoipa::path(method(get, post, put, patch, delete), path = "/proxy/{path}", operation_id = "proxyCall", tag = "hubs",
    request_body(content = Option<Object>, description = "Passed to the vendor as is, with its Content-Type"),
    params(("path" = String, Path, description = "Vendor path under the instance's base URL")),
    responses((status = 200, description = "The vendor's answer as is: status, body and Content-Type"),
        (status = 400, description = "A path that leaves the base URL", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody), (status = 504, body = crate::error::ErrorBody)))]
pub async fn call(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    crate::extract::Body(body): crate::extract::Body,
) -> Result<Response, ApiError> {
    let raw = uri.path().trim_start_matches('/').strip_prefix("proxy");
    let path = vendor_path(raw.ok_or_else(|| ApiError::internal(format!("'{}' is not a proxy path", uri.path())))?)?;
    let open = hub::open_instance(&state, &caller).await?;
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let extras = Extras {
        query: &query,
        body: (!body.is_empty()).then_some(body),
        content_type: header("content-type"),
        accept: header("accept"),
    };
    let answer = state.engine.proxy(&open, method, &path, extras).await?;
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers.iter() {
        if !DROPPED.contains(&name.as_str()) {
            response.headers_mut().append(HeaderName::clone(name), value.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_base() {
        assert_eq!(vendor_path("orders/100/products").unwrap(), "/orders/100/products");
        assert_eq!(vendor_path("a%20b/c%3Fd").unwrap(), "/a%20b/c%3Fd");
        assert_eq!(vendor_path("//time/").unwrap(), "/time");
        for bad in ["..", "../x", "a/../../b", "a/./b", ".", "a/%2e%2E/b", "x%2F..%2Fy", "a%00"] {
            assert_eq!(vendor_path(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
