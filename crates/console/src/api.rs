//! The platform API called inside this process: a request goes through the same
//! router, extractors and handlers as one from the network, with the user it acts
//! for set as a request extension ([`ActingAs`]) instead of credentials.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use switchyard_server::ActingAs;
use tower::ServiceExt;

/// The API's own prefix.
pub const PREFIX: &str = "/elements/api-v2";

/// Largest API answer the console reads (a call log or event page is far less).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The API router, called in-process. Cheap to clone.
#[derive(Clone)]
pub struct Api(Router);

/// An API answer: status, headers and JSON body (`Null` when there was none).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// What went wrong, as the API says it: its `message`, then the vendor's own
    /// words (`providerMessage`) when they are not already in it.
    pub fn problem(&self) -> String {
        let message = self.body.get("message").and_then(Value::as_str).unwrap_or("The request failed");
        match self.body.get("providerMessage").and_then(Value::as_str) {
            Some(vendor) if !vendor.is_empty() && !message.contains(vendor) => format!("{message} — the vendor said: {vendor}"),
            _ => message.to_owned(),
        }
    }
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api(router)
    }

    /// `method` `PREFIX + path` (with its query) as `acting`, with a JSON body.
    pub async fn call(&self, acting: &ActingAs, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(format!("{PREFIX}{path}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = match request.body(Body::from(bytes)) {
            Ok(r) => r,
            // The path or query holds what a URI cannot (the explorer encodes what it is given).
            Err(_) => {
                return Answer {
                    status: StatusCode::BAD_REQUEST,
                    headers: HeaderMap::new(),
                    body: serde_json::json!({"message": "The path or query is not a valid URI"}),
                }
            }
        };
        request.extensions_mut().insert(acting.clone());
        self.send(request).await
    }

    /// Sends a request as built by the caller (the login form, forwarded).
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = match self.0.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(e) => return internal(format!("an API answer could not be read: {e}")),
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status: parts.status, headers: parts.headers, body }
    }
}

fn internal(message: String) -> Answer {
    tracing::error!(%message, "console API call");
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: HeaderMap::new(),
        body: serde_json::json!({"message": "The console could not reach the API in this process; the server log says why"}),
    }
}
