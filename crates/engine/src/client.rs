//! HTTP client for vendor APIs and callbacks, bound by an [`OutboundPolicy`].
//!
//! The policy is enforced twice: [`OutboundPolicy::check_url`] before a request
//! (scheme, credentials, IP-literal hosts, which never reach a resolver) and
//! inside the client's DNS resolver, which drops refused addresses at connect
//! time so a name cannot be re-pointed between check and connection.
//! Redirects are followed (at most [`MAX_REDIRECTS`]) only after the new
//! location passes the same policy, and without a `Referer` header.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};

use crate::outbound::{OutboundPolicy, PolicyError};

/// Default bound on a vendor response body (16 MiB).
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;
/// Upper bound on the TCP/TLS connect phase.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Header names whose values are never printed.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-auth-token",
    "cookie",
    "set-cookie",
    "x-api-key",
];

fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name.trim()))
}

/// A request to a vendor or callback URL.
#[derive(Clone)]
pub struct VendorRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Absolute `https` (or allow-listed `http`) URL, without credentials.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Basic authentication as `(user, password)`.
    pub basic_auth: Option<(String, String)>,
    /// Request body.
    pub body: Option<Bytes>,
    /// Largest response body accepted, in bytes; `0` means [`DEFAULT_MAX_BODY`].
    pub max_body: usize,
}

impl VendorRequest {
    /// A request with no headers, auth or body and the default body bound.
    pub fn new(method: http::Method, url: impl Into<String>) -> Self {
        VendorRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            basic_auth: None,
            body: None,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn effective_max_body(&self) -> usize {
        if self.max_body == 0 {
            DEFAULT_MAX_BODY
        } else {
            self.max_body
        }
    }
}

impl Default for VendorRequest {
    fn default() -> Self {
        VendorRequest::new(http::Method::GET, String::new())
    }
}

impl fmt::Debug for VendorRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if is_sensitive_header(n) {
                    (n.as_str(), "***")
                } else {
                    (n.as_str(), v.as_str())
                }
            })
            .collect();
        let auth = self.basic_auth.as_ref().map(|(u, _)| (u.as_str(), "***"));
        let body = self.body.as_ref().map(|b| format!("<{} bytes>", b.len()));
        // A query may carry a credential (an API key as `?api_key=`): names only.
        let url = match self.url.split_once('?') {
            Some((head, query)) => {
                let names: Vec<String> = url::form_urlencoded::parse(query.as_bytes()).map(|(k, _)| format!("{k}=***")).collect();
                format!("{head}?{}", names.join("&"))
            }
            None => self.url.clone(),
        };
        f.debug_struct("VendorRequest")
            .field("method", &self.method)
            .field("url", &url)
            .field("headers", &headers)
            .field("basic_auth", &auth)
            .field("body", &body)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// A vendor's response, body fully read (within the bound).
#[derive(Clone, Debug)]
pub struct VendorResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: Bytes,
}

/// Failure to talk to a vendor. Messages never contain credentials or URLs.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// The outbound policy refused the URL or the resolved address.
    #[error(transparent)]
    Refused(PolicyError),
    /// The vendor did not answer within the timeout.
    #[error("the vendor did not answer in time")]
    Timeout,
    /// The connection could not be established.
    #[error("could not connect to the vendor: {0}")]
    Connect(String),
    /// The response body exceeded the bound (the bound, in bytes).
    #[error("the vendor response body is larger than {0} bytes")]
    TooLarge(usize),
    /// Anything else at the HTTP level (invalid header, broken response, ...).
    #[error("vendor protocol error: {0}")]
    Protocol(String),
    /// The vendor's quota for this account is used up for longer than the time left
    /// (how long it stays used up); nothing was sent.
    #[error("the vendor's rate limit is used up for another {} s", .0.as_secs_f64().ceil())]
    Throttled(Duration),
}

impl From<PolicyError> for VendorError {
    fn from(e: PolicyError) -> Self {
        VendorError::Refused(e)
    }
}

/// DNS resolver that resolves with tokio and keeps only allowed addresses.
#[derive(Debug)]
struct PolicyResolver {
    policy: OutboundPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = policy.resolve_filtered(&host, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Idle connections kept per vendor host by default (`serve
/// --vendor-max-idle-per-host`). Hub calls to one host from many instances share
/// them; with fewer idle slots than calls in flight, each call past the slots
/// closes its connection and the next opens a new one.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 256;

/// Policy-bound HTTP client; cheap to clone (shares the connection pool).
#[derive(Clone, Debug)]
pub struct VendorClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl VendorClient {
    /// Builds a client; `timeout` bounds each whole request (including the body).
    /// Keeps [`DEFAULT_MAX_IDLE_PER_HOST`] idle connections per host.
    pub fn new(policy: OutboundPolicy, timeout: Duration) -> Self {
        VendorClient::with_idle_per_host(policy, timeout, DEFAULT_MAX_IDLE_PER_HOST)
    }

    /// As [`VendorClient::new`], keeping up to `max_idle_per_host` idle
    /// connections to each host for reuse (by any instance: connections carry no
    /// credentials, each request sends its own).
    pub fn with_idle_per_host(policy: OutboundPolicy, timeout: Duration, max_idle_per_host: usize) -> Self {
        let redirect_policy = policy.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds the URLs requested so far, the first one included:
            // at the n-th redirect it has n entries.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(VendorRedirectError(MAX_REDIRECTS));
            }
            match redirect_policy.check_url(attempt.url().as_str()) {
                Ok(_) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            // Proxies would resolve names themselves and bypass the policy.
            .no_proxy()
            .redirect(redirect)
            // A redirect must not tell where it came from: the URL may carry a
            // credential in its query, and the new location may be another host.
            .referer(false)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .timeout(timeout)
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initialises");
        VendorClient {
            http,
            policy: Arc::new(policy),
        }
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Sends `req` and reads the response body up to `req.max_body` bytes.
    pub async fn send(&self, req: VendorRequest) -> Result<VendorResponse, VendorError> {
        let url = self.policy.check_url(&req.url)?;
        let max = req.effective_max_body();
        let mut builder = self.http.request(req.method.clone(), url);
        for (name, value) in &req.headers {
            let hn = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| VendorError::Protocol(format!("invalid header name `{name}`")))?;
            let mut hv = HeaderValue::from_str(value)
                .map_err(|_| VendorError::Protocol(format!("invalid value for header `{name}`")))?;
            if is_sensitive_header(name) {
                hv.set_sensitive(true);
            }
            builder = builder.header(hn, hv);
        }
        if let Some((user, password)) = &req.basic_auth {
            builder = builder.basic_auth(user, Some(password));
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let mut resp = builder.send().await.map_err(map_reqwest_error)?;
        if let Some(len) = resp.content_length() {
            if len > max as u64 {
                return Err(VendorError::TooLarge(max));
            }
        }
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let initial = resp
            .content_length()
            .map(|l| l as usize)
            .unwrap_or(8 * 1024)
            .min(max)
            .min(1024 * 1024);
        let mut buf = BytesMut::with_capacity(initial);
        while let Some(chunk) = resp.chunk().await.map_err(map_reqwest_error)? {
            if buf.len() + chunk.len() > max {
                return Err(VendorError::TooLarge(max));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(VendorResponse {
            status,
            headers,
            body: buf.freeze(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("more than {0} redirects")]
struct VendorRedirectError(usize);

fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        src = s.source();
    }
    msg
}

fn map_reqwest_error(e: reqwest::Error) -> VendorError {
    let mut src: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(s) = src {
        if let Some(p) = s.downcast_ref::<PolicyError>() {
            return VendorError::Refused(p.clone());
        }
        src = s.source();
    }
    if e.is_timeout() {
        return VendorError::Timeout;
    }
    let e = e.without_url();
    if e.is_connect() {
        VendorError::Connect(error_chain(&e))
    } else {
        VendorError::Protocol(error_chain(&e))
    }
}

/// Cut `s` to at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

const MESSAGE_MAX_CHARS: usize = 500;

fn nonempty_str(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn object_message(obj: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    if let Some(m) = obj.get("message").and_then(nonempty_str) {
        return Some(m);
    }
    for key in ["error_description", "error", "title", "detail"] {
        match obj.get(key) {
            Some(serde_json::Value::Object(inner)) => {
                if let Some(m) = object_message(inner) {
                    return Some(m);
                }
            }
            Some(v) => {
                if let Some(m) = nonempty_str(v) {
                    return Some(m);
                }
            }
            None => {}
        }
    }
    obj.get("fault")
        .and_then(|f| f.get("faultstring"))
        .and_then(nonempty_str)
}

/// The field-level words of an error object (`"errors": {"field": "why"}` or
/// `"errors": ["why"]`, as BigCommerce's v3 API and others send beside a generic
/// title), as `field: why; ...`.
fn error_details(obj: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let parts: Vec<String> = match obj.get("errors")? {
        serde_json::Value::Object(fields) => fields
            .iter()
            .filter_map(|(k, v)| nonempty_str(v).map(|m| format!("{k}: {m}")))
            .collect(),
        serde_json::Value::Array(items) => items.iter().filter_map(nonempty_str).collect(),
        _ => Vec::new(),
    };
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(obj) => match (object_message(obj), error_details(obj)) {
            (Some(m), Some(details)) => Some(format!("{m} ({details})")),
            (m, details) => m.or(details),
        },
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    serde_json::Value::Object(o) => object_message(o),
                    other => nonempty_str(other),
                })
                .collect();
            if parts.is_empty() {
                None
            } else {
                Some(parts.join("; "))
            }
        }
        _ => None,
    }
}

/// The vendor's own words from an error body.
///
/// Understands `[{"status":..,"message":".."}]` (messages joined with `; `),
/// `{"message":..}`, `{"error_description"|"error"|"title"|"detail":..}`
/// (an `error` object is searched the same way) and
/// `{"fault":{"faultstring":..}}`. Otherwise the body as text, trimmed and cut
/// to 500 characters. `None` for an empty body.
pub fn provider_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.starts_with('{') || text.starts_with('[') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(text.as_bytes()) {
            if let Some(m) = json_message(&v) {
                return Some(cut(&m, MESSAGE_MAX_CHARS));
            }
        }
    }
    Some(cut(text, MESSAGE_MAX_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_message_shapes() {
        let pm = |s: &str| provider_message(s.as_bytes());
        assert_eq!(
            pm(
                r#"[{"status":400,"message":"Name is required"},{"status":400,"message":"Price is invalid"}]"#
            ),
            Some("Name is required; Price is invalid".into())
        );
        assert_eq!(pm(r#"{"message":"Not found"}"#), Some("Not found".into()));
        assert_eq!(
            pm(r#"{"error":"invalid_grant","error_description":"Bad refresh token"}"#),
            Some("Bad refresh token".into())
        );
        assert_eq!(
            pm(r#"{"error":"unauthorized"}"#),
            Some("unauthorized".into())
        );
        assert_eq!(
            pm(r#"{"error":{"code":403,"message":"Forbidden here"}}"#),
            Some("Forbidden here".into())
        );
        assert_eq!(
            pm(r#"{"title":"Bad Request","status":400}"#),
            Some("Bad Request".into())
        );
        assert_eq!(pm(r#"{"detail":"Too many"}"#), Some("Too many".into()));
        // BigCommerce v3: a generic title, the reasons by field under `errors`.
        assert_eq!(
            pm(r#"{"status":422,"title":"JSON data is missing or invalid","type":"/x","errors":{"destination":"error.path.missing.","scope":"bad"}}"#),
            Some("JSON data is missing or invalid (destination: error.path.missing.; scope: bad)".into())
        );
        assert_eq!(
            pm(r#"{"title":"Input is invalid.","errors":{}}"#),
            Some("Input is invalid.".into()),
            "an empty errors object adds nothing"
        );
        assert_eq!(pm(r#"{"errors":["first","second"]}"#), Some("first; second".into()));
        assert_eq!(
            pm(r#"{"fault":{"faultstring":"Invalid ApiKey","detail":{}}}"#),
            Some("Invalid ApiKey".into())
        );
        assert_eq!(
            pm("  Service Unavailable \n"),
            Some("Service Unavailable".into())
        );
        assert_eq!(pm(r#"{"other":1}"#), Some(r#"{"other":1}"#.into()));
        assert_eq!(pm(r#"{"message":""}"#), Some(r#"{"message":""}"#.into()));
        assert_eq!(pm(""), None);
        assert_eq!(pm("  \n\t"), None);
        let long = "é".repeat(800);
        let m = pm(&long).unwrap();
        assert_eq!(m.chars().count(), 500);
        assert_eq!(
            provider_message(&[0xff, b'o', b'k']),
            Some("\u{fffd}ok".into())
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let req = VendorRequest::new(http::Method::POST, "https://api.example.com/x?api_key=SECRET6&page=2")
            .header("Authorization", "Bearer tok-SECRET1")
            .header("X-Auth-Token", "SECRET2")
            .header("cookie", "sid=SECRET3")
            .header("Accept", "application/json")
            .body("password=SECRET4");
        let req = VendorRequest {
            basic_auth: Some(("alice".into(), "SECRET5".into())),
            ..req
        };
        let dbg = format!("{req:?}");
        for s in ["SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "SECRET6"] {
            assert!(!dbg.contains(s), "{s} leaked: {dbg}");
        }
        assert!(
            dbg.contains("alice") && dbg.contains("application/json") && dbg.contains("api_key=***&page=***"),
            "{dbg}"
        );
        assert_eq!(VendorRequest::default().max_body, DEFAULT_MAX_BODY);
    }

    #[test]
    fn error_messages() {
        assert!(VendorError::TooLarge(10).to_string().contains("10 bytes"));
        let e = VendorError::from(PolicyError::HttpNotAllowed("h".into()));
        assert!(e.to_string().contains("--outbound-allow"));
    }
}
