//! OAuth 2.0 as Keap runs it: the authorize page (`/app/oauth/authorize`) and the token
//! endpoint (`/token`) with single-use codes and rotating refresh tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode, Uri};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::json;

use super::{lock, page, read, KeapSimulator};

/// Access tokens are remembered this long after they expire, so that a late caller is
/// told "expired" rather than "invalid".
const EXPIRED_MEMORY: Duration = Duration::from_secs(86_400);

/// An authorize request waiting for its person: first to sign in, then to decide.
struct Consent {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    expires: Instant,
    /// The account's user signed in on the sign-in page; only then can it be approved.
    signed_in: bool,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    scope: String,
    expires: Instant,
}

struct Access {
    client_id: String,
    expires: Instant,
}

struct Refresh {
    client_id: String,
    scope: String,
}

/// Everything issued by the authorization server.
#[derive(Default)]
pub(crate) struct Grants {
    consents: HashMap<String, Consent>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
}

/// Why a bearer token is refused.
pub(crate) enum AccessError {
    Invalid,
    Expired,
}

fn random_token(len: usize) -> String {
    // thread_rng is a CSPRNG seeded from the OS.
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

impl Grants {
    /// Drops everything of a client; the number of access and refresh tokens dropped.
    pub(crate) fn forget_client(&mut self, client_id: &str) -> usize {
        let before = self.access.len() + self.refresh.len();
        self.access.retain(|_, a| a.client_id != client_id);
        self.refresh.retain(|_, r| r.client_id != client_id);
        self.codes.retain(|_, c| c.client_id != client_id);
        self.consents.retain(|_, c| c.client_id != client_id);
        before - self.access.len() - self.refresh.len()
    }

    pub(crate) fn expire_access(&mut self, client_id: &str) -> usize {
        let now = Instant::now();
        let mut n = 0;
        for a in self.access.values_mut().filter(|a| a.client_id == client_id && a.expires > now) {
            a.expires = now;
            n += 1;
        }
        n
    }

    /// The client a bearer token was issued to.
    pub(crate) fn check_access(&self, token: &str) -> Result<String, AccessError> {
        match self.access.get(token) {
            None => Err(AccessError::Invalid),
            Some(a) if Instant::now() >= a.expires => Err(AccessError::Expired),
            Some(a) => Ok(a.client_id.clone()),
        }
    }

    fn prune(&mut self) {
        let now = Instant::now();
        self.consents.retain(|_, c| c.expires > now);
        self.codes.retain(|_, c| c.expires > now);
        self.access.retain(|_, a| a.expires + EXPIRED_MEMORY > now);
    }

    fn issue(&mut self, client_id: &str, scope: &str, lifetime: Duration) -> (String, String) {
        self.prune();
        let access = random_token(32);
        let refresh = random_token(32);
        self.access.insert(access.clone(), Access { client_id: client_id.into(), expires: Instant::now() + lifetime });
        self.refresh.insert(refresh.clone(), Refresh { client_id: client_id.into(), scope: scope.into() });
        (access, refresh)
    }
}

// ---------------------------------------------------------------- authorize

fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/html; charset=utf-8")
        .header(CACHE_CONTROL, "no-store")
        .header("x-frame-options", "DENY")
        .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn error_page(message: &str) -> Response {
    html(StatusCode::BAD_REQUEST, page::error("Authorization failed", message))
}

fn redirect(to: &url::Url) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, to.as_str())
        .header(CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .unwrap_or_default()
}

/// `redirect_uri` with `pairs` added to its query.
fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else { return error_page("The redirect_uri is not a valid URL.") };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    redirect(&url)
}

/// The sandbox app accepts any https URL and any loopback http URL (a real app
/// registers exactly one). No fragment, as OAuth requires.
fn acceptable_redirect(uri: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(uri).map_err(|_| "The redirect_uri is not a valid absolute URL.")?;
    if url.fragment().is_some() {
        return Err("The redirect_uri must not contain a fragment.");
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err("The redirect_uri must name a host."),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("The redirect_uri is not registered for this application: use an https URL or an http URL on a loopback address."),
    }
}

/// Form or query parameters; a repeated parameter is an error (OAuth forbids them).
fn params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("The parameter {k} is repeated."));
        }
    }
    Ok(out)
}

pub(crate) async fn authorize_get(State(sim): State<KeapSimulator>, uri: Uri) -> Response {
    let p = match params(uri.query().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let Some(client_id) = p.get("client_id").filter(|c| !c.is_empty()) else { return error_page("The client_id parameter is missing.") };
    let Some(app) = sim.state(client_id) else { return error_page("The client_id is not known: no such application.") };
    let Some(redirect_uri) = p.get("redirect_uri").filter(|r| !r.is_empty()) else { return error_page("The redirect_uri parameter is missing.") };
    if let Err(e) = acceptable_redirect(redirect_uri) {
        return error_page(e);
    }
    // From here on errors go back to the client, as OAuth says.
    let state = p.get("state").map(String::as_str);
    if p.get("response_type").map(String::as_str) != Some("code") {
        return redirect_with(redirect_uri, &[("error", "unsupported_response_type")], state);
    }
    let scope = p.get("scope").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("full");
    if scope != "full" {
        return redirect_with(redirect_uri, &[("error", "invalid_scope"), ("error_description", "Keap knows only the scope 'full'")], state);
    }
    let settings = sim.settings();
    let mut grants = lock(&sim.inner.grants);
    grants.prune();
    if settings.auto_approve {
        let code = random_token(24);
        grants.codes.insert(
            code.clone(),
            Code { client_id: client_id.clone(), redirect_uri: redirect_uri.clone(), scope: scope.into(), expires: Instant::now() + settings.code_lifetime },
        );
        return redirect_with(redirect_uri, &[("code", &code)], state);
    }
    let consent_id = random_token(24);
    grants.consents.insert(
        consent_id.clone(),
        Consent {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            scope: scope.into(),
            state: state.map(str::to_owned),
            // A person has this long to sign in and decide.
            expires: Instant::now() + Duration::from_secs(1_800),
            signed_in: false,
        },
    );
    drop(grants);
    let cfg = read(&app.cfg);
    html(StatusCode::OK, page::sign_in(&cfg.app_name, &consent_id, false))
}

/// The sign-in form's answer: the consent page under a fresh consent id when the user
/// name and password are the account's, the sign-in page again (401) otherwise.
fn sign_in(sim: &KeapSimulator, p: &HashMap<String, String>) -> Response {
    let mut grants = lock(&sim.inner.grants);
    grants.prune();
    let Some(mut consent) = p.get("consent").and_then(|c| grants.consents.remove(c)) else {
        return error_page("This authorization request has expired or was already answered. Start again from the application.");
    };
    // The grants are not held while the app is looked up.
    drop(grants);
    let Some(app) = sim.state(&consent.client_id) else { return error_page("The client_id is not known: no such application.") };
    let cfg = read(&app.cfg);
    let username = p.get("username").map(|u| u.trim()).unwrap_or("");
    let password = p.get("password").map(String::as_str).unwrap_or("");
    // Keap's sign-in is an e-mail address: its case does not matter, the password's does.
    let good = username.eq_ignore_ascii_case(&cfg.username) && password == cfg.password;
    let id = random_token(24);
    consent.signed_in = good;
    let redirect = url::Url::parse(&consent.redirect_uri).ok();
    let page = if good {
        page::consent(&page::Consent {
            app_name: &cfg.app_name,
            account: &cfg.account,
            scope: &consent.scope,
            redirect_host: redirect.as_ref().and_then(url::Url::host_str).unwrap_or(""),
            consent_id: &id,
        })
    } else {
        page::sign_in(&cfg.app_name, &id, true)
    };
    drop(cfg);
    lock(&sim.inner.grants).consents.insert(id, consent);
    html(if good { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, page)
}

pub(crate) async fn authorize_post(State(sim): State<KeapSimulator>, body: Bytes) -> Response {
    let p = match params(&body) {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    if p.contains_key("username") || p.contains_key("password") {
        return sign_in(&sim, &p);
    }
    let decision = p.get("decision").map(String::as_str);
    if !matches!(decision, Some("approve" | "deny")) {
        return error_page("Choose Approve or Deny.");
    }
    let settings = sim.settings();
    let mut grants = lock(&sim.inner.grants);
    grants.prune();
    // Single use: a consent is consumed by the first answer.
    // Answering before the sign-in leaves the request pending.
    if p.get("consent").and_then(|c| grants.consents.get(c)).is_some_and(|c| !c.signed_in) {
        return error_page("Sign in before answering.");
    }
    let Some(consent) = p.get("consent").and_then(|c| grants.consents.remove(c)) else {
        return error_page("This authorization request has expired or was already answered. Start again from the application.");
    };
    if decision == Some("deny") {
        drop(grants);
        return redirect_with(&consent.redirect_uri, &[("error", "access_denied")], consent.state.as_deref());
    }
    let code = random_token(24);
    grants.codes.insert(
        code.clone(),
        Code {
            client_id: consent.client_id,
            redirect_uri: consent.redirect_uri.clone(),
            scope: consent.scope,
            expires: Instant::now() + settings.code_lifetime,
        },
    );
    drop(grants);
    redirect_with(&consent.redirect_uri, &[("code", &code)], consent.state.as_deref())
}

// ---------------------------------------------------------------- token

fn token_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(CACHE_CONTROL, "no-store")
        .header(PRAGMA, "no-cache");
    if status == StatusCode::UNAUTHORIZED {
        b = b.header(WWW_AUTHENTICATE, "Basic realm=\"Keap token endpoint\"");
    }
    b.body(Body::from(body.to_string())).unwrap_or_default()
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    token_json(status, json!({ "error": error, "error_description": description }))
}

fn invalid_client() -> Response {
    token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client credentials")
}

/// The client's credentials: HTTP Basic, or `client_id`/`client_secret` in the form.
/// `Err` is a malformed `Authorization` header.
fn client_credentials(headers: &HeaderMap, p: &HashMap<String, String>) -> Result<Option<(String, String)>, ()> {
    if let Some(h) = headers.get(AUTHORIZATION) {
        let decoded = h
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        return match decoded.as_deref().and_then(|s| s.split_once(':')) {
            Some((id, secret)) => Ok(Some((id.to_owned(), secret.to_owned()))),
            None => Err(()),
        };
    }
    match (p.get("client_id"), p.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(Some((id.clone(), secret.clone()))),
        _ => Ok(None),
    }
}

pub(crate) async fn token(State(sim): State<KeapSimulator>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = token_answer(&sim, &headers, &body);
    // A granted pair is live from here on, however late the answer arrives.
    let delay = sim.settings().token_answer_delay;
    if answer.status() == StatusCode::OK && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer
}

fn token_answer(sim: &KeapSimulator, headers: &HeaderMap, body: &Bytes) -> Response {
    let parsed = params(body);
    let grant_type = parsed.as_ref().ok().and_then(|p| p.get("grant_type").cloned());
    sim.inner.token_calls.lock().unwrap_or_else(|e| e.into_inner()).count(grant_type.as_deref());
    let p = match parsed {
        Ok(p) => p,
        Err(e) => return token_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let creds = client_credentials(headers, &p);
    // Count per app whenever the call names a known client, whatever the outcome.
    let named = match &creds {
        Ok(Some((id, _))) => Some(id.clone()),
        _ => p.get("client_id").cloned(),
    };
    if let Some(app) = named.and_then(|id| sim.state(&id)) {
        lock(&app.token_calls).count(grant_type.as_deref());
    }
    let Ok(creds) = creds else { return invalid_client() };
    match grant_type.as_deref() {
        None | Some("") => return token_error(StatusCode::BAD_REQUEST, "invalid_request", "The grant_type parameter is missing."),
        Some("authorization_code" | "refresh_token") => {}
        Some(_) => return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Supported grant types: authorization_code, refresh_token."),
    }
    let Some((client_id, secret)) = creds else {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication is required.");
    };
    let Some(app) = sim.state(&client_id) else { return invalid_client() };
    let (account, known_secret) = {
        let cfg = read(&app.cfg);
        (cfg.account.clone(), cfg.client_secret.clone())
    };
    if known_secret != secret {
        return invalid_client();
    }
    let lifetime = sim.settings().access_token_lifetime;
    let mut grants = lock(&sim.inner.grants);
    let scope = if grant_type.as_deref() == Some("authorization_code") {
        let (Some(code), Some(redirect_uri)) = (p.get("code").filter(|c| !c.is_empty()), p.get("redirect_uri").filter(|r| !r.is_empty())) else {
            return token_error(StatusCode::BAD_REQUEST, "invalid_request", "The code and redirect_uri parameters are required.");
        };
        let Some(found) = grants.codes.get(code) else {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid authorization code");
        };
        if found.client_id != client_id {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid authorization code");
        }
        // Presented by its client: consumed now, whatever follows.
        let Some(found) = grants.codes.remove(code) else { return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid authorization code") };
        if Instant::now() >= found.expires {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Authorization code has expired");
        }
        if found.redirect_uri != *redirect_uri {
            return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Redirect URI does not match the one used to authorize");
        }
        found.scope
    } else {
        let Some(token) = p.get("refresh_token").filter(|t| !t.is_empty()) else {
            return token_error(StatusCode::BAD_REQUEST, "invalid_request", "The refresh_token parameter is required.");
        };
        match grants.refresh.get(token) {
            Some(r) if r.client_id == client_id => {}
            _ => return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token"),
        }
        // Rotation: the presented refresh token dies before the new pair exists.
        let Some(old) = grants.refresh.remove(token) else { return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token") };
        old.scope
    };
    let (access, refresh) = grants.issue(&client_id, &scope, lifetime);
    drop(grants);
    token_json(
        StatusCode::OK,
        json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": lifetime.as_secs(),
            "token_type": "bearer",
            "scope": format!("{scope}|{account}.infusionsoft.com"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        assert!(acceptable_redirect("https://app.example.com/cb?x=1").is_ok());
        assert!(acceptable_redirect("http://127.0.0.1:9/cb").is_ok());
        assert!(acceptable_redirect("http://[::1]:9/cb").is_ok());
        assert!(acceptable_redirect("http://localhost/cb").is_ok());
        assert!(acceptable_redirect("http://example.com/cb").is_err());
        assert!(acceptable_redirect("https://example.com/cb#frag").is_err());
        assert!(acceptable_redirect("ftp://example.com/").is_err());
        assert!(acceptable_redirect("/relative").is_err());
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(params(b"a=1&b=2").is_ok());
        assert!(params(b"a=1&a=2").is_err());
    }
}
