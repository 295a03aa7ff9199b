//! One instance's view of its vendor: the request builder, the authentication the
//! element declares (HTTP Basic, or an OAuth 2.0 bearer token refreshed once after a
//! vendor 401), and the error mapping.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_elements::{Authentication, ElementDefinition};
use switchyard_engine::client::{provider_message, VendorError, VendorRequest, VendorResponse};

use super::bad_request;
use crate::{ApiError, AppState};

/// Largest vendor body read into memory.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

pub(crate) fn render(template: &str, config: &BTreeMap<String, String>) -> Result<String, ApiError> {
    switchyard_elements::render(template, |n| config.get(n).map(|v| Cow::Borrowed(v.as_str())))
        .map_err(|e| bad_request(format!("Instance configuration incomplete: {e}")))
}

/// What a request to the vendor carries besides method and path.
#[derive(Default, Clone)]
pub(crate) struct Extras<'q> {
    pub query: &'q [(String, String)],
    pub body: Option<Bytes>,
    /// `Content-Type` of `body` (JSON unless said otherwise).
    pub content_type: Option<&'static str>,
    /// `Accept` (JSON unless said otherwise).
    pub accept: Option<&'static str>,
}

/// One instance's view of its vendor.
pub(crate) struct Vendor<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) def: &'a ElementDefinition,
    pub(crate) config: &'a BTreeMap<String, String>,
    base: String,
    /// The instance the calls are for (none while an instance is being created).
    instance: Option<i64>,
    /// The OAuth 2.0 access token in use; replaced after a refresh.
    token: Mutex<Option<String>>,
}

impl<'a> Vendor<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        def: &'a ElementDefinition,
        config: &'a BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        let base = render(&def.base_url, config)?.trim_end_matches('/').to_owned();
        let token = Mutex::new(config.get(crate::oauth::ACCESS_TOKEN).cloned());
        Ok(Vendor { state, def, config, base, instance: None, token })
    }

    /// Calls made for this instance: an OAuth 2.0 token the vendor refuses (401) is
    /// refreshed, and the call sent again, once.
    pub(crate) fn for_instance(mut self, id: i64) -> Self {
        self.instance = Some(id);
        self
    }

    fn access_token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        let response = self.exchange(method, path, Extras { query, body, ..Extras::default() }).await?;
        check_status(response)
    }

    /// Sends one call and answers whatever the vendor said; only a call that got
    /// no answer is an error. With OAuth 2.0, a 401 from the vendor refreshes the
    /// token (single flight, see `crate::oauth`) and the call is sent once more;
    /// a second 401 is the answer (no loop).
    pub(crate) async fn exchange(&self, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, ApiError> {
        let first = self.exchange_once(method.clone(), path, extras.clone()).await?;
        let (401, Some(id), Some(_)) = (first.status, self.instance, self.def.authentication.oauth2()) else {
            return Ok(first);
        };
        let used = self.access_token().unwrap_or_default();
        let fresh = crate::oauth::refresh_after_401(self.state, self.def, id, &used).await?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
        self.exchange_once(method, path, extras).await
    }

    async fn exchange_once(&self, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, ApiError> {
        let mut url = format!("{}{path}", self.base);
        if !extras.query.is_empty() {
            url.push('?');
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(extras.query).finish());
        }
        let mut headers = vec![("Accept".to_owned(), extras.accept.unwrap_or("application/json").to_owned())];
        if extras.body.is_some() {
            headers.push(("Content-Type".to_owned(), extras.content_type.unwrap_or("application/json").to_owned()));
        }
        let basic_auth = match &self.def.authentication {
            Authentication::Basic { username, password } => Some((render(username, self.config)?, render(password, self.config)?)),
            Authentication::OAuth2(_) => {
                let token = self.access_token().filter(|t| !t.is_empty()).ok_or_else(|| {
                    ApiError::unauthorized("The instance has no access token; authorize it again (providerData.code)")
                })?;
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
                None
            }
        };
        let request = VendorRequest { method, url, headers, basic_auth, body: extras.body, max_body: MAX_VENDOR_BODY };
        let started = std::time::Instant::now();
        let sent = self.state.client.send(request).await;
        let outcome = match &sent {
            Ok(r) => Cow::Owned(r.status.to_string()),
            Err(VendorError::Timeout) => Cow::Borrowed("timeout"),
            Err(VendorError::Refused(_)) => Cow::Borrowed("refused"),
            Err(_) => Cow::Borrowed("error"),
        };
        crate::metrics::vendor_call(&self.def.key, &outcome, started.elapsed());
        sent.map_err(unreached)
    }
}

/// A call that got no answer from the vendor.
pub(crate) fn unreached(e: VendorError) -> ApiError {
    match e {
        VendorError::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "The vendor did not answer in time"),
        VendorError::Refused(p) => ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor URL is not allowed: {p}")),
        other => {
            let mut err = ApiError::new(StatusCode::BAD_GATEWAY, "The vendor could not be reached");
            err.provider_message = Some(other.to_string());
            err
        }
    }
}

/// 2xx passes; 4xx keeps its status with the vendor's words; anything else is a 502.
pub(crate) fn check_status(response: VendorResponse) -> Result<VendorResponse, ApiError> {
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

pub(super) fn parse_json(r: &VendorResponse) -> Result<Value, ApiError> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body).map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON"))
}

