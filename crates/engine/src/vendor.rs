//! One instance's view of its vendor: the request builder, the authentication the
//! element declares (HTTP Basic, custom headers and query parameters, a bearer
//! token, or an OAuth 2.0 bearer token refreshed once after a vendor 401), the
//! error mapping, and the call log. Every
//! vendor call of the engine goes through [`Vendor::exchange`], so retries,
//! per-instance limits, the outbound policy and the log apply to all.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use http::Method;
use switchyard_elements::{Authentication, ElementDefinition, Zone};
use tokio::time::Instant;

use crate::calls::{check_status, log_entry, render, throttled, unreached};
use crate::client::{VendorError, VendorRequest, VendorResponse};
use crate::{Engine, EngineError};

/// Largest vendor body read into memory.
pub const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

/// What a request to the vendor carries besides method and path.
#[derive(Default, Clone)]
pub struct Extras<'q> {
    pub query: &'q [(String, String)],
    pub body: Option<Bytes>,
    /// `Content-Type` of `body` (JSON unless said otherwise).
    pub content_type: Option<String>,
    /// `Accept` (JSON unless said otherwise).
    pub accept: Option<String>,
}

/// One instance's view of its vendor.
pub struct Vendor<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) def: &'a ElementDefinition,
    pub(crate) config: &'a BTreeMap<String, String>,
    /// The base URL paths are appended to: `baseUrl`, or another of `baseUrls`.
    base: String,
    /// `baseUrl` rendered: the call log shows paths relative to it.
    home: String,
    /// The instance whose gate, limits and log the calls use (none before it exists).
    instance: Option<i64>,
    /// End of the time budget shared by all calls of one platform request.
    deadline: Instant,
    /// Whether a request may have reached the vendor (it answered, or we cannot tell).
    reached: AtomicBool,
    /// The OAuth 2.0 access token in use; replaced after a refresh.
    token: Mutex<Option<String>>,
    /// After a "slow down" answer: how long until the instance may call again.
    retry_after: Mutex<Option<std::time::Duration>>,
    /// The zone of the vendor's zoneless dates (the account's own; UTC when unknown).
    pub(crate) zone: Zone,
}

impl<'a> Vendor<'a> {
    pub fn new(engine: &'a Engine, def: &'a ElementDefinition, config: &'a BTreeMap<String, String>) -> Result<Self, EngineError> {
        let base = render(&def.base_url, config)?.trim_end_matches('/').to_owned();
        let deadline = Instant::now() + engine.vendors.retry_policy().call_budget;
        let token = Mutex::new(config.get(crate::oauth::ACCESS_TOKEN).cloned());
        let home = base.clone();
        Ok(Vendor { engine, def, config, base, home, instance: None, deadline, reached: AtomicBool::new(false), token, retry_after: Mutex::default(), zone: Zone::UTC })
    }

    /// Calls go to the element's base URL named `name` (under `baseUrls`) instead of
    /// `baseUrl`; `None` keeps `baseUrl`. The name is checked when the catalog loads.
    pub fn on_base(mut self, name: Option<&str>) -> Result<Self, EngineError> {
        if let Some(name) = name {
            let template = self
                .def
                .base_url_of(Some(name))
                .ok_or_else(|| EngineError::internal(format!("element {} has no base URL '{name}'", self.def.key)))?;
            self.base = render(template, self.config)?.trim_end_matches('/').to_owned();
        }
        Ok(self)
    }

    /// The vendor writes zoneless dates as local times of `zone` (the account's).
    pub fn in_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// The zone a vendor that writes dates without an offset (`xml-rpc`: Keap) writes
    /// them in; `None` for vendors whose dates carry their offset.
    pub(crate) fn local_dates_zone(&self) -> Option<Zone> {
        (self.def.protocol == switchyard_elements::Protocol::XmlRpc).then_some(self.zone)
    }

    /// Calls made for this instance: its limits apply and they are logged; an OAuth
    /// 2.0 token the vendor refuses (401) is refreshed and the call sent again, once.
    pub fn for_instance(mut self, id: i64) -> Self {
        self.instance = Some(id);
        self
    }


    /// False when no request of this view can have been processed by the vendor (none
    /// sent, refused before sending, or the vendor answered 429 / could not be reached).
    pub fn maybe_reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// The rendered base URL, without a trailing `/`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn access_token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends one call; vendor errors become hub errors (4xx passed through with the
    /// vendor's words, 5xx as 502 naming the vendor's status, timeouts as 504).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<VendorResponse, EngineError> {
        let answered = self.exchange(method, path, Extras { query, body, ..Extras::default() }).await;
        answered.and_then(|r| self.check(r)).map_err(|e| self.scrubbed(e))
    }

    /// The values of the query parameters the authentication adds, rendered.
    fn auth_query(&self) -> Result<Vec<(String, String)>, EngineError> {
        match self.def.authentication_for(self.config) {
            Some(Authentication::Headers { query, .. }) => {
                query.iter().map(|(name, template)| Ok((name.clone(), render(template, self.config)?))).collect()
            }
            _ => Ok(Vec::new()),
        }
    }

    /// `e` without the values of authentication query parameters, which a vendor
    /// may echo in its words (`Invalid api_key abc123`): they are secrets, and
    /// errors reach callers and the server log.
    fn scrubbed(&self, mut e: EngineError) -> EngineError {
        let Ok(values) = self.auth_query() else { return e };
        for (_, value) in values.iter().filter(|(_, v)| !v.is_empty()) {
            e.message = e.message.replace(value.as_str(), "********");
            if let Some(words) = e.provider_message.take() {
                e.provider_message = Some(words.replace(value.as_str(), "********"));
            }
        }
        e
    }

    /// A vendor answer as [`Vendor::send`] takes it: a "slow down" in the element's
    /// throttle dialect is a 429 with `Retry-After` ([`throttled`]); otherwise
    /// [`check_status`].
    pub fn check(&self, response: VendorResponse) -> Result<VendorResponse, EngineError> {
        if self.def.throttle().is_throttle(response.status) {
            return Err(throttled(&response, self.retry_after().unwrap_or_default()));
        }
        check_status(response)
    }

    /// After a "slow down" answer of the last call: how long until the instance may
    /// call its vendor again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        *self.retry_after.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one call (with retries and limits) and answers whatever the vendor said;
    /// only a call that got no answer is an error (timeout 504, anything else 502,
    /// an exhausted quota 429). Logged when made for an instance. With OAuth 2.0, a
    /// 401 from the vendor refreshes the token (single flight, see `crate::oauth`)
    /// and the call is sent once more; a second 401 is the answer (no loop).
    pub async fn exchange(&self, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, EngineError> {
        let first = self.exchange_once(method.clone(), path, extras.clone()).await?;
        let (401, Some(id), Some(_)) = (first.status, self.instance, self.def.authentication.oauth2()) else {
            return Ok(first);
        };
        let used = self.access_token().unwrap_or_default();
        let (token, refreshed) = crate::oauth::refresh_after_401(self.engine, self.def, id, &used).await?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        let second = self.exchange_once(method.clone(), path, extras.clone()).await?;
        if second.status != 401 || refreshed {
            return Ok(second);
        }
        // The stored token we were handed was newer than ours but refused too (our
        // view was a moment old): this time the refresh is ours to make, once.
        let (token, _) = crate::oauth::refresh_after_401(self.engine, self.def, id, &token).await?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        self.exchange_once(method, path, extras).await
    }

    async fn exchange_once(&self, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, EngineError> {
        // An absolute path is a next-page link (element paths and ids always start
        // with '/'); whoever passes one, it never leaves the base URL's origin.
        let mut url = if is_absolute(path) {
            let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
            if origin(path).is_none() || origin(path) != origin(&self.base) {
                return Err(EngineError::new(http::StatusCode::BAD_GATEWAY, "A vendor link leaves the instance's base URL; it was not followed"));
            }
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        if !extras.query.is_empty() {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(extras.query).finish());
        }
        let mut headers = vec![("Accept".to_owned(), extras.accept.unwrap_or_else(|| "application/json".to_owned()))];
        if extras.body.is_some() {
            headers.push(("Content-Type".to_owned(), extras.content_type.unwrap_or_else(|| "application/json".to_owned())));
        }
        let auth = self.def.authentication_for(self.config).ok_or_else(|| {
            EngineError::bad_request(format!("Instance configuration names no authentication mode of element {}", self.def.key))
        })?;
        let mut auth_query = Vec::new();
        let basic_auth = match auth {
            Authentication::Basic { username, password } => Some((render(username, self.config)?, render(password, self.config)?)),
            Authentication::Headers { headers: templates, query } => {
                for (name, template) in templates {
                    headers.push((name.clone(), render(template, self.config)?));
                }
                for (name, template) in query {
                    auth_query.push((name.clone(), render(template, self.config)?));
                }
                None
            }
            Authentication::Bearer { token } => {
                headers.push(("Authorization".to_owned(), format!("Bearer {}", render(token, self.config)?)));
                None
            }
            // Resolved above: a choice is never the scheme in use.
            Authentication::Choice(_) => None,
            Authentication::OAuth2(_) => {
                let token = self.access_token().filter(|t| !t.is_empty()).ok_or_else(|| {
                    EngineError::unauthorized("The instance has no access token; authorize it again (providerData.code)")
                })?;
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
                None
            }
        };
        // What the call log shows: the path as sent, read before the URL moves and
        // before credentials join its query (the log never holds their values).
        let sent = self.instance.map(|_| self.sent_path(&url, path));
        if !auth_query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&auth_query).finish());
        }
        let request = VendorRequest {
            method: method.clone(),
            url,
            headers,
            basic_auth,
            body: extras.body,
            max_body: MAX_VENDOR_BODY,
        };
        let at = SystemTime::now();
        let done = self.engine.vendors.send(self.instance, request, self.deadline, self.def.throttle()).await;
        *self.retry_after.lock().unwrap_or_else(|e| e.into_inner()) = done.retry_after;
        let reached = match &done.result {
            // "Slow down" says the vendor did nothing.
            Ok(r) => !self.def.throttle().is_throttle(r.status),
            Err(VendorError::Timeout | VendorError::Protocol(_) | VendorError::TooLarge(_)) => true,
            Err(_) => false,
        };
        if reached {
            self.reached.store(true, Ordering::Relaxed);
        }
        if let (Some(instance_id), Some(sent)) = (self.instance, sent) {
            self.engine.call_log.record(log_entry(instance_id, &method, &sent, extras.query, &done, at));
        }
        let outcome = match &done.result {
            Ok(r) => Cow::Owned(r.status.to_string()),
            Err(VendorError::Timeout) => Cow::Borrowed("timeout"),
            Err(VendorError::Refused(_)) => Cow::Borrowed("refused"),
            Err(VendorError::Throttled(_)) => Cow::Borrowed("throttled"),
            Err(_) => Cow::Borrowed("error"),
        };
        crate::metrics::vendor_call(&self.def.key, &outcome, done.elapsed);
        done.result.map_err(unreached)
    }
}

impl Vendor<'_> {
    /// The path a URL parser makes of `url` (what reaches the vendor after dot
    /// segments are resolved and unsafe characters encoded), relative to `baseUrl`
    /// when it stays under it (a call to another of `baseUrls` shows its whole
    /// path), with `path`'s own inline query kept for the log's query names. Parsed
    /// only when the parser could change something: caller ids are already single
    /// encoded segments.
    fn sent_path(&self, url: &str, path: &str) -> String {
        if is_absolute(path) {
            // A next-page link outside the base path: the log shows its path and query names.
            return url::Url::parse(path).map(|u| format!("{}{}", u.path(), u.query().map(|q| format!("?{q}")).unwrap_or_default())).unwrap_or_default();
        }
        let plain = |s: &str| !s.contains("/.") && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%!$&'()*+,;=:@?".contains(&b));
        if plain(path) && plain(&self.base) && self.base == self.home {
            return path.to_owned();
        }
        let (Ok(parsed), Ok(base)) = (url::Url::parse(url), url::Url::parse(&self.home)) else { return path.to_owned() };
        let full = parsed.path();
        let mut sent = match full.strip_prefix(base.path().trim_end_matches('/')) {
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            _ => full.to_owned(),
        };
        if let Some((_, inline)) = path.split_once('?') {
            sent.push('?');
            sent.push_str(inline);
        }
        sent
    }
}

/// Whether `path` is a whole `http(s)` URL rather than a path under the base URL.
pub(crate) fn is_absolute(path: &str) -> bool {
    path.starts_with("https://") || path.starts_with("http://")
}
