//! Console login, the way Cloud Elements' console and tools log in (a Spring
//! Security form login): `POST /elements/j_spring_security_check` with the form
//! fields `j_username` (email) and `j_password` starts a server-side session
//! carried by the cookie [`COOKIE`]; `GET /elements/api-v1/ui/getSecrets` (`secrets`)
//! then reads the user's and organization's secrets; `GET
//! /elements/j_spring_security_logout` or `POST /elements/api-v2/logout` ends it.
//!
//! Sessions and failed-login counters live in the database, so logout, password
//! changes and throttling hold on every node. The cookie authenticates platform
//! calls only: it never carries an instance token, so hub calls still need the
//! `Authorization` header. A state-changing call made with the cookie must show it
//! comes from a script of ours (`X-Requested-With`, which a cross-site form cannot
//! send) or carry the session's CSRF token (`X-CSRF-Token`, or the form field
//! `_csrf`), else 403.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, COOKIE as COOKIE_HEADER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cookie::{Cookie, SameSite};
use serde_json::json;
use subtle::ConstantTimeEq;
use switchyard_engine::password;
use switchyard_events::now_ms;
use switchyard_engine::secret::{hash_secret, new_secret};

use crate::{ApiError, AppState};

/// The session cookie's name.
pub const COOKIE: &str = "SWITCHYARD_SESSION";

/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// Failed logins per email, and per client address, within a minute before
/// further tries answer 429 for the rest of that minute.
pub const MAX_FAILURES_PER_MINUTE: i64 = 10;

/// A session's last use is written at most this often (not on every call).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Header a script sets and a cross-site HTML form cannot.
const REQUESTED_WITH: &str = "x-requested-with";
/// The session's CSRF token, as a header (Spring Security's name) or form field.
const CSRF_HEADER: &str = "x-csrf-token";
const CSRF_FIELD: &str = "_csrf";

fn idle_ms() -> i64 {
    IDLE.as_millis() as i64
}

/// The session cookies a request carries (at most [`MAX_SESSION_COOKIES`]). A
/// browser may send several of one name (another app on the host, or a sibling
/// domain, can set one with a longer path, which comes first), so each is tried.
pub fn cookie_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == COOKIE && !c.value().is_empty())
        .take(MAX_SESSION_COOKIES)
        .map(|c| c.value().to_owned())
        .collect()
}

/// Session cookies looked up per request, at most.
pub const MAX_SESSION_COOKIES: usize = 4;

/// The caller the first live one of `tokens` (session cookies) stands for.
/// Refuses (403) a state-changing method without `X-Requested-With` or the
/// session's `X-CSRF-Token`.
pub async fn caller_from_cookie(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    tokens: &[String],
) -> Result<switchyard_store::Caller, ApiError> {
    let session = live_session(state, tokens)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The session has ended; log in again (POST /elements/j_spring_security_check)"))?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !headers.contains_key(REQUESTED_WITH) && !csrf_matches(header_text(headers, CSRF_HEADER), &session.csrf_token) {
        return Err(csrf_refused());
    }
    Ok(session.caller)
}

/// A live console session: who it is, and the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub caller: switchyard_store::Caller,
    pub csrf_token: String,
}

/// The session of the first live one of `tokens` (session cookies), its last use
/// recorded; `None` when every one has ended. Checks no CSRF token: that is the
/// caller's part for requests that change something.
pub async fn live_session(state: &AppState, tokens: &[String]) -> Result<Option<LiveSession>, ApiError> {
    let now = now_ms();
    for token in tokens {
        let token_hash = hash_secret(token);
        if let Some(session) = state.engine.store.session(&token_hash, now, idle_ms()).await? {
            if now - session.last_used_at >= TOUCH_EVERY_MS {
                state.engine.store.touch_session(&token_hash, now).await?;
            }
            return Ok(Some(LiveSession { caller: session.caller, csrf_token: session.csrf_token }));
        }
    }
    Ok(None)
}

fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "A request that changes something and is authenticated by the session cookie needs the header \
         X-Requested-With (any value), or the header X-CSRF-Token with the session's csrfToken",
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `given` is the session's CSRF token (compared in constant time).
pub fn csrf_matches(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
}

/// Longest `j_username` accepted, in bytes (RFC 5321's path limit, with room).
pub const MAX_EMAIL_BYTES: usize = 320;

/// Largest login form, in bytes: the two fields at their limits, encoded.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// Argon2 checks running at once (each holds 19 MiB): a burst of logins waits
/// here instead of taking the server's memory.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

fn form_error(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `j_username` and `j_password` of the login form body (the first of each, as
/// Spring's `getParameter` reads them).
fn login_fields(headers: &HeaderMap, uri: &axum::http::Uri, body: &[u8]) -> Result<(String, String), ApiError> {
    let form_type = header_text(headers, "content-type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Log in with a form: Content-Type application/x-www-form-urlencoded, fields j_username and j_password",
        ));
    }
    // A password in the URL ends up in proxies' and browsers' histories.
    if url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).any(|(k, _)| k.starts_with("j_")) {
        return Err(form_error("Send j_username and j_password in the form body, not in the URL"));
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("A login form has at most {MAX_FORM_BYTES} bytes")));
    }
    let field = |name: &str| url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let (Some(email), Some(password)) = (field("j_username"), field("j_password")) else {
        return Err(form_error("Log in with the form fields j_username and j_password"));
    };
    let email = email.trim().to_owned();
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return Err(form_error(&format!("j_username is an email address of 1 to {MAX_EMAIL_BYTES} bytes")));
    }
    Ok((email, password))
}

/// A browser's cross-site POST carries its page's `Origin`; a login from another
/// site could put the attacker's session in the user's browser (login CSRF).
/// Scripts and tools send no `Origin`, and pass.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = header_text(headers, "origin") else {
        return true;
    };
    let host = header_text(headers, "host").unwrap_or("");
    url::Url::parse(origin).ok().is_some_and(|o| {
        let port = o.port().map(|p| format!(":{p}")).unwrap_or_default();
        o.host_str().is_some_and(|h| format!("{h}{port}").eq_ignore_ascii_case(host))
    })
}

/// `POST /elements/j_spring_security_check`: 200 with the session cookie and
/// `{"id", "emailAddress", "organizationId", "csrfToken"}`; 401 for a wrong
/// email or password (one answer for both); 429 after [`MAX_FAILURES_PER_MINUTE`];
/// 403 for a browser's form posted from another origin.
pub async fn login(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (email, password) = login_fields(&headers, &uri, &body)?;
    if !same_origin(&headers) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "A login form posted from another origin is refused"));
    }
    let client = client_ip(peer.map(|p| p.0 .0.ip()), &headers, &state.trusted_proxies);
    let email_scope = format!("email:{}", email.to_lowercase());
    let ip_scope = client.map(|ip| format!("ip:{ip}"));
    let mut scopes = vec![email_scope.as_str()];
    scopes.extend(ip_scope.as_deref());
    let now = now_ms();
    let store = &state.engine.store;
    // Counted as failed until the password matches: concurrent tries see each other.
    if store.record_login_failure(&scopes, now).await? > MAX_FAILURES_PER_MINUTE {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins; try again in a minute");
        e.retry_after = Some(Duration::from_millis(switchyard_store::LOGIN_WINDOW_MS as u64));
        return Err(e);
    }

    let found = store.password_for_email(&email).await?;
    let stored = found.as_ref().map(|f| f.password_hash.clone());
    let permit = PASSWORD_CHECKS.acquire().await.map_err(ApiError::internal)?;
    let matched = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => password::verify(&password, &stored),
        None => password::verify_nobody(&password),
    })
    .await
    .map_err(ApiError::internal)?;
    drop(permit);
    let Some(user) = found.filter(|_| matched) else {
        tracing::info!(client = ?client, "failed login");
        return Err(ApiError::unauthorized("Wrong email or password"));
    };
    store.forgive_login_failure(&scopes, now).await?;

    let (token, csrf) = (new_secret(), new_secret());
    store.create_session(&hash_secret(&token), user.user_id, &csrf, now, idle_ms()).await?;
    tracing::info!(user = user.user_id, "logged in");
    let cookie = Cookie::build((COOKIE, token)).path("/").http_only(true).same_site(SameSite::Lax).secure(secure(&state));
    let body = json!({
        "id": user.user_id,
        "emailAddress": user.email,
        "organizationId": user.organization_id,
        "csrfToken": csrf,
    });
    Ok(with_cookie(Json(body).into_response(), &cookie.build()))
}

/// Whether cookies get `Secure`: the public URL is https.
fn secure(state: &AppState) -> bool {
    state.engine.public_url.starts_with("https://")
}

/// Sets a cookie on a response, which also must not be cached.
fn with_cookie(mut response: Response, cookie: &Cookie<'_>) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(SET_COOKIE, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer to a logout: a `Set-Cookie` that makes the browser forget the session cookie.
fn logged_out(state: &AppState) -> Response {
    let mut cookie = Cookie::build((COOKIE, "")).path("/").http_only(true).same_site(SameSite::Lax).secure(secure(state)).build();
    cookie.make_removal();
    with_cookie(Json(json!({"message": "Logged out"})).into_response(), &cookie)
}

/// `GET /elements/j_spring_security_logout`: ends the cookie's session (if any)
/// and clears the cookie; always 200.
pub async fn logout_get(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    for token in cookie_tokens(&headers) {
        state.engine.store.end_session(&hash_secret(&token)).await?;
    }
    Ok(logged_out(&state))
}

/// Log out: ends the session of the `SWITCHYARD_SESSION` cookie and clears the cookie.
///
/// The session is the one the form login at `POST /elements/j_spring_security_check`
/// started. A live session is ended only with `X-Requested-With`, the session's
/// `X-CSRF-Token` header or the form field `_csrf` (a logout button's form); otherwise
/// 403. `GET /elements/j_spring_security_logout` does the same without that check.
#[utoipa::path(post, path = "/logout", operation_id = "logout", tag = "login",
    request_body(content = Option<String>, content_type = "application/x-www-form-urlencoded",
        description = "Optional: `_csrf=<the session's csrfToken>`, for a logout form"),
    responses((status = 200, description = "Logged out (also when there was no session)", body = Object),
        (status = 403, description = "A live session without X-Requested-With or its CSRF token", body = crate::ErrorBody)),
    security(()))]
pub async fn logout_post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let field = url::form_urlencoded::parse(&body).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned());
    for token in cookie_tokens(&headers) {
        let token_hash = hash_secret(&token);
        let Some(session) = state.engine.store.session(&token_hash, now_ms(), idle_ms()).await? else {
            continue;
        };
        let shown = headers.contains_key(REQUESTED_WITH)
            || csrf_matches(header_text(&headers, CSRF_HEADER), &session.csrf_token)
            || csrf_matches(field.as_deref(), &session.csrf_token);
        if !shown {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Logging out with the session cookie needs the header X-Requested-With, or the session's CSRF \
                 token (header X-CSRF-Token or form field _csrf)",
            ));
        }
        state.engine.store.end_session(&token_hash).await?;
    }
    Ok(logged_out(&state))
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy (the
/// left part of the header is whatever the client chose to send).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    for hop in hops.rsplit(',') {
        let Some(ip) = hop_address(hop.trim()) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` hop: an address, or an address with a port as some load
/// balancers write it (`1.2.3.4:5555`, `[2001:db8::1]:443`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_client_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        // A direct client's header is its own claim: ignored.
        assert_eq!(client_ip(Some(stranger), &forwarded("203.0.113.9"), &trusted), Some(stranger));
        // Behind the proxy: the right-most untrusted hop, not the spoofable left one.
        let ip = client_ip(Some(proxy), &forwarded("1.2.3.4, 203.0.113.9, 10.2.2.2"), &trusted);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
        // Nothing usable: the proxy itself.
        assert_eq!(client_ip(Some(proxy), &HeaderMap::new(), &trusted), Some(proxy));
        assert_eq!(client_ip(Some(proxy), &forwarded("garbage"), &trusted), Some(proxy));
        assert_eq!(client_ip(None, &forwarded("1.2.3.4"), &trusted), None);
        // Hops with ports, as some load balancers write them.
        let ip = client_ip(Some(proxy), &forwarded("203.0.113.9:5555"), &trusted);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
        let ip = client_ip(Some(proxy), &forwarded("[2001:db8::1]:443, 10.2.2.2"), &trusted);
        assert_eq!(ip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE_HEADER, HeaderValue::from_static("a=1; SWITCHYARD_SESSION=tok; b=2"));
        assert_eq!(cookie_tokens(&headers), ["tok"]);
        headers.insert(COOKIE_HEADER, HeaderValue::from_static("SWITCHYARD_SESSION="));
        assert!(cookie_tokens(&headers).is_empty());
        // Every one of the name, in order, from every Cookie header; a bounded number.
        headers.insert(COOKIE_HEADER, HeaderValue::from_static("SWITCHYARD_SESSION=planted; x=1; SWITCHYARD_SESSION=mine"));
        headers.append(COOKIE_HEADER, HeaderValue::from_static("SWITCHYARD_SESSION=third"));
        assert_eq!(cookie_tokens(&headers), ["planted", "mine", "third"]);
        let many = ["SWITCHYARD_SESSION=t"; 10].join("; ");
        headers.insert(COOKIE_HEADER, HeaderValue::from_str(&many).unwrap());
        assert_eq!(cookie_tokens(&headers).len(), MAX_SESSION_COOKIES);
    }
}
