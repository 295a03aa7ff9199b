//! One instance's view of its vendor: the request builder and the error mapping.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_elements::{Authentication, ElementDefinition};
use switchyard_engine::client::{provider_message, VendorError, VendorRequest, VendorResponse};

use super::bad_request;
use crate::{ApiError, AppState};

/// Largest vendor body read into memory.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

fn render(template: &str, config: &BTreeMap<String, String>) -> Result<String, ApiError> {
    switchyard_elements::render(template, |n| config.get(n).map(|v| Cow::Borrowed(v.as_str())))
        .map_err(|e| bad_request(format!("Instance configuration incomplete: {e}")))
}

/// One instance's view of its vendor.
pub(crate) struct Vendor<'a> {
    pub(super) state: &'a AppState,
    pub(super) def: &'a ElementDefinition,
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
        let started = std::time::Instant::now();
        let sent = self.state.client.send(request).await;
        let outcome = match &sent {
            Ok(r) => Cow::Owned(r.status.to_string()),
            Err(VendorError::Timeout) => Cow::Borrowed("timeout"),
            Err(VendorError::Refused(_)) => Cow::Borrowed("refused"),
            Err(_) => Cow::Borrowed("error"),
        };
        crate::metrics::vendor_call(&self.def.key, &outcome, started.elapsed());
        let response = sent.map_err(|e| match e {
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

pub(super) fn parse_json(r: &VendorResponse) -> Result<Value, ApiError> {
    if r.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&r.body).map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON"))
}

