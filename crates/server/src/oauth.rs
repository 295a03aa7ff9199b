//! `GET /elements/{keyOrId}/oauth/url`: the vendor's authorize URL for an OAuth 2.0
//! element. The code exchange and token refreshes are the engine's
//! (`switchyard_engine::oauth`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use switchyard_engine::calls::render;
use switchyard_engine::instance::defaults;
use switchyard_engine::oauth::oauth2;

use crate::caller::Caller;
use crate::extract::Path;
use crate::{ApiError, AppState};

/// `GET /elements/{keyOrId}/oauth/url?apiKey&apiSecret&callbackUrl&state&scope`: the
/// vendor's authorize URL for the caller's app, built on the element's
/// `oauth.authorization.url`.
#[utoipa::path(get, path = "/elements/{keyOrId}/oauth/url", operation_id = "getElementOAuthUrl", tag = "elements",
    params(("keyOrId" = String, Path, description = "Element key or id"),
        ("apiKey" = String, Query, description = "The app's client id (oauth.api.key)"),
        ("apiSecret" = Option<String>, Query, description = "Accepted as Cloud Elements did; not used to build the URL"),
        ("callbackUrl" = String, Query, description = "The redirect URI registered with the app"),
        ("state" = Option<String>, Query), ("scope" = Option<String>, Query, description = "Default: the element's scope")),
    responses((status = 200, description = "`{\"oauthUrl\", \"element\"}`", body = Object),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn url(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(key_or_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let def = state
        .engine
        .catalog
        .get(&key_or_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No element with key or id '{key_or_id}'")))?;
    let o = oauth2(&def)?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
    let missing: Vec<&str> = ["apiKey", "callbackUrl"].into_iter().filter(|k| get(k).is_none()).collect();
    if !missing.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("Missing query parameters: {}", missing.join(", "))));
    }
    let (api_key, callback) = (get("apiKey").unwrap_or_default(), get("callbackUrl").unwrap_or_default());
    if !url::Url::parse(callback).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "callbackUrl must be an http(s) URL"));
    }
    let mut config = defaults(&def);
    config.insert("oauth.api.key".to_owned(), api_key.to_owned());
    config.insert("oauth.callback.url".to_owned(), callback.to_owned());
    let base = render(&o.authorization_url, &config)?;
    let mut authorize = url::Url::parse(&base)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, format!("The element's authorization URL is not a URL: {base}")))?;
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("client_id", api_key)
            .append_pair("redirect_uri", callback)
            .append_pair("response_type", "code")
            .append_pair("scope", get("scope").unwrap_or(&o.scope));
        if let Some(s) = get("state") {
            q.append_pair("state", s);
        }
    }
    Ok(Json(json!({"oauthUrl": authorize.to_string(), "element": def.key})))
}

