//! One vendor call's pieces shared by every caller of the vendor (hub calls,
//! token endpoint calls, webhook registrations): templates rendered over an
//! instance's configuration, the call log entry, and what vendor answers and
//! failures become for the caller.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_store::NewCall;

use crate::client::{provider_message, VendorError, VendorResponse};
use crate::{Dispatched, EngineError};

/// `template` with `{key}` placeholders filled from `config`; a missing key, or a
/// value its filter cannot take (`{store.url|parent}` of a URL without a path), is
/// a 400 naming it.
pub fn render(template: &str, config: &BTreeMap<String, String>) -> Result<String, EngineError> {
    switchyard_elements::render(template, |n| config.get(n).map(|v| Cow::Borrowed(v.as_str()))).map_err(|e| match e {
        switchyard_elements::TemplateError::Missing { .. } => EngineError::bad_request(format!("Instance configuration incomplete: {e}")),
        other => EngineError::bad_request(format!("Instance configuration unusable: {other}")),
    })
}

/// A call that got no answer from the vendor (also for the token endpoint):
/// timeout 504, an exhausted quota 429, anything else 502.
pub fn unreached(e: VendorError) -> EngineError {
    match e {
        VendorError::Timeout => EngineError::new(StatusCode::GATEWAY_TIMEOUT, "The vendor did not answer in time"),
        VendorError::Refused(p) => EngineError::new(StatusCode::BAD_GATEWAY, format!("The vendor URL is not allowed: {p}")),
        VendorError::Throttled(wait) => EngineError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("The vendor's rate limit for this instance is used up for another {} s", wait.as_secs_f64().ceil()),
        )
        .with_retry_after(wait),
        VendorError::TooLarge(max) => {
            EngineError::new(StatusCode::BAD_GATEWAY, format!("The vendor's answer is larger than {max} bytes"))
        }
        other => EngineError::new(StatusCode::BAD_GATEWAY, "The vendor could not be reached").with_provider_message(Some(other.to_string())),
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1 (a pause that
/// just ended still asks the caller not to come back at once).
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// A vendor answer that means "slow down" (a status of the element's throttle
/// dialect, after the retries): 429 with the vendor's words, whatever status the
/// vendor used (BigCommerce legacy stores: 509), and `Retry-After` = `wait`, how
/// long until the instance may call again. Never a 502: nothing failed.
pub fn throttled(response: &VendorResponse, wait: std::time::Duration) -> EngineError {
    let message = match response.status {
        429 => "The vendor answered 429".to_owned(),
        other => format!("The vendor answered {other}: its rate limit is used up"),
    };
    EngineError::new(StatusCode::TOO_MANY_REQUESTS, message).with_provider_message(provider_message(&response.body)).with_retry_after(wait)
}

/// 2xx passes; 4xx keeps its status with the vendor's words; anything else is a
/// 502 naming the vendor's status.
pub fn check_status(response: VendorResponse) -> Result<VendorResponse, EngineError> {
    match response.status {
        200..=299 => Ok(response),
        400..=499 => {
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_REQUEST);
            Err(EngineError::new(status, format!("The vendor answered {}", response.status))
                .with_provider_message(provider_message(&response.body)))
        }
        other => {
            let words = provider_message(&response.body).unwrap_or_default();
            let words = format!("Vendor status {other}: {words}").trim_end_matches([' ', ':']).to_owned();
            Err(EngineError::new(StatusCode::BAD_GATEWAY, format!("The vendor failed with status {other}")).with_provider_message(Some(words)))
        }
    }
}

/// The log line of one call: the path without its query, the query's names only
/// (values can be secrets: tokens, e-mail addresses), no bodies, no headers.
pub fn log_entry(
    instance_id: i64,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    done: &Dispatched,
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

pub(crate) fn malformed() -> EngineError {
    EngineError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON")
}

/// The vendor's JSON answer as a value (`{}` for an empty body).
pub(crate) fn parse_json(r: &VendorResponse) -> Result<Value, EngineError> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body).map_err(|_| malformed())
}
