//! One instance's view of its vendor: the request builder, the error mapping, and
//! the call log. Every vendor call of the server goes through [`Vendor::exchange`],
//! so retries, per-instance limits, the outbound policy and the log apply to all.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_elements::{Authentication, ElementDefinition};
use switchyard_engine::client::{provider_message, VendorError, VendorRequest, VendorResponse};
use switchyard_store::NewCall;
use tokio::time::Instant;

use super::bad_request;
use crate::{ApiError, AppState};

/// Largest vendor body read into memory.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

fn render(template: &str, config: &BTreeMap<String, String>) -> Result<String, ApiError> {
    switchyard_elements::render(template, |n| config.get(n).map(|v| Cow::Borrowed(v.as_str())))
        .map_err(|e| bad_request(format!("Instance configuration incomplete: {e}")))
}

/// What a request to the vendor carries besides method and path.
#[derive(Default)]
pub(crate) struct Extras<'q> {
    pub query: &'q [(String, String)],
    pub body: Option<Bytes>,
    /// `Content-Type` of `body` (JSON unless said otherwise).
    pub content_type: Option<String>,
    /// `Accept` (JSON unless said otherwise).
    pub accept: Option<String>,
}

/// One instance's view of its vendor.
pub(crate) struct Vendor<'a> {
    pub(super) state: &'a AppState,
    pub(super) def: &'a ElementDefinition,
    config: &'a BTreeMap<String, String>,
    base: String,
    /// The instance whose gate, limits and log the calls use (none before it exists).
    instance: Option<i64>,
    /// End of the time budget shared by all calls of one platform request.
    deadline: Instant,
    /// Whether a request may have reached the vendor (it answered, or we cannot tell).
    reached: AtomicBool,
}

impl<'a> Vendor<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        def: &'a ElementDefinition,
        config: &'a BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        let base = render(&def.base_url, config)?.trim_end_matches('/').to_owned();
        let deadline = Instant::now() + state.vendors.retry_policy().call_budget;
        Ok(Vendor { state, def, config, base, instance: None, deadline, reached: AtomicBool::new(false) })
    }

    /// Calls made for this instance: its limits apply and they are logged.
    pub(crate) fn for_instance(mut self, id: i64) -> Self {
        self.instance = Some(id);
        self
    }


    /// False when no request of this view can have been processed by the vendor (none
    /// sent, refused before sending, or the vendor answered 429 / could not be reached).
    pub(crate) fn maybe_reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// Sends one call; vendor errors become hub errors (4xx passed through with the
    /// vendor's words, 5xx as 502 naming the vendor's status, timeouts as 504).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<VendorResponse, ApiError> {
        let response = self.exchange(method, path, Extras { query, body, ..Extras::default() }).await?;
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
                let words = provider_message(&response.body).unwrap_or_default();
                err.provider_message = Some(format!("Vendor status {other}: {words}").trim_end_matches([' ', ':']).to_owned());
                Err(err)
            }
        }
    }

    /// Sends one call (with retries and limits) and answers whatever the vendor said;
    /// only a call that got no answer is an error (timeout 504, anything else 502,
    /// an exhausted quota 429). Logged when made for an instance.
    pub(crate) async fn exchange(&self, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, ApiError> {
        let mut url = format!("{}{path}", self.base);
        if !extras.query.is_empty() {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(extras.query).finish());
        }
        let Authentication::Basic { username, password } = &self.def.authentication;
        let mut headers = vec![("Accept".to_owned(), extras.accept.unwrap_or_else(|| "application/json".to_owned()))];
        if extras.body.is_some() {
            headers.push(("Content-Type".to_owned(), extras.content_type.unwrap_or_else(|| "application/json".to_owned())));
        }
        let request = VendorRequest {
            method: method.clone(),
            url,
            headers,
            basic_auth: Some((render(username, self.config)?, render(password, self.config)?)),
            body: extras.body,
            max_body: MAX_VENDOR_BODY,
        };
        let at = SystemTime::now();
        let done = self.state.vendors.send(self.instance, request, self.deadline).await;
        let reached = match &done.result {
            Ok(r) => r.status != 429,
            Err(VendorError::Timeout | VendorError::Protocol(_) | VendorError::TooLarge(_)) => true,
            Err(_) => false,
        };
        if reached {
            self.reached.store(true, Ordering::Relaxed);
        }
        if let Some(instance_id) = self.instance {
            self.state.call_log.record(log_entry(instance_id, &method, path, extras.query, &done, at));
        }
        let outcome = match &done.result {
            Ok(r) => Cow::Owned(r.status.to_string()),
            Err(VendorError::Timeout) => Cow::Borrowed("timeout"),
            Err(VendorError::Refused(_)) => Cow::Borrowed("refused"),
            Err(VendorError::Throttled(_)) => Cow::Borrowed("throttled"),
            Err(_) => Cow::Borrowed("error"),
        };
        crate::metrics::vendor_call(&self.def.key, &outcome, done.elapsed);
        done.result.map_err(|e| match e {
            VendorError::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "The vendor did not answer in time"),
            VendorError::Refused(p) => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor URL is not allowed: {p}"))
            }
            VendorError::Throttled(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("The vendor's rate limit for this instance is used up for another {} s", wait.as_secs_f64().ceil()),
            ),
            VendorError::TooLarge(max) => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor's answer is larger than {max} bytes"))
            }
            other => {
                let mut err = ApiError::new(StatusCode::BAD_GATEWAY, "The vendor could not be reached");
                err.provider_message = Some(other.to_string());
                err
            }
        })
    }
}

/// The log line of one call: the path without its query, the query's names only
/// (values can be secrets: tokens, e-mail addresses), no bodies, no headers.
fn log_entry(
    instance_id: i64,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    done: &switchyard_engine::Dispatched,
    at: SystemTime,
) -> NewCall {
    let (path, inline) = path.split_once('?').unwrap_or((path, ""));
    let mut query_names: Vec<String> = url::form_urlencoded::parse(inline.as_bytes()).map(|(k, _)| k.into_owned()).collect();
    query_names.extend(query.iter().map(|(k, _)| k.clone()));
    let (status, outcome) = match &done.result {
        Ok(r) => (Some(r.status), "answered"),
        Err(VendorError::Timeout) => (None, "timeout"),
        Err(VendorError::Connect(_)) => (None, "unreachable"),
        Err(VendorError::Refused(_)) => (None, "refused"),
        Err(VendorError::Throttled(_)) => (None, "throttled"),
        Err(VendorError::TooLarge(_)) => (None, "too-large"),
        Err(VendorError::Protocol(_)) => (None, "protocol"),
    };
    NewCall {
        instance_id,
        method: method.to_string(),
        path: path.to_owned(),
        query_names,
        status,
        outcome: outcome.to_owned(),
        duration_ms: done.elapsed.as_millis() as u64,
        retries: done.retries,
        at,
    }
}

fn malformed() -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON")
}

pub(super) fn parse_json(r: &VendorResponse) -> Result<Value, ApiError> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body).map_err(|_| malformed())
}

/// A vendor answer that needs no rewriting, passed on as its bytes: checked to
/// be JSON without building it, never parsed into values and written again.
pub(super) fn json_passthrough(r: VendorResponse) -> Result<Response, ApiError> {
    if r.body.is_empty() {
        return Ok(Json(json!({})).into_response());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).map_err(|_| malformed())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], r.body).into_response())
}
