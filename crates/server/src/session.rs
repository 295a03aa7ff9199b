//! Console login, the way Cloud Elements' console and tools log in (a Spring
//! Security form login): `POST /elements/j_spring_security_check` with the form
//! fields `j_username` (email) and `j_password` starts a server-side session
//! carried by the cookie [`COOKIE`]; `GET /elements/api-v1/ui/getSecrets` then
//! reads the user's and organization's secrets; `GET
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
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::header::{CACHE_CONTROL, COOKIE as COOKIE_HEADER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use switchyard_engine::password;
use switchyard_engine::secret::{hash_secret, new_secret};
use switchyard_store::{tenant_secret_aad, Tenant};

use crate::caller::Caller;
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn idle_ms() -> i64 {
    IDLE.as_millis() as i64
}

/// The session token of the request's cookie, if it has one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// The caller a session cookie stands for. Refuses (403) a state-changing method
/// without `X-Requested-With` or the session's `X-CSRF-Token`.
pub async fn caller_from_cookie(state: &AppState, method: &Method, headers: &HeaderMap, token: &str) -> Result<Caller, ApiError> {
    let token_hash = hash_secret(token);
    let now = now_ms();
    let session = state
        .engine
        .store
        .session(&token_hash, now, idle_ms())
        .await?
        .ok_or_else(|| ApiError::unauthorized("The session has ended; log in again (POST /elements/j_spring_security_check)"))?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !headers.contains_key(REQUESTED_WITH) && !csrf_matches(header_text(headers, CSRF_HEADER), &session.csrf_token) {
        return Err(csrf_refused());
    }
    if now - session.last_used_at >= TOUCH_EVERY_MS {
        state.engine.store.touch_session(&token_hash, now).await?;
    }
    let c = session.caller;
    Ok(Caller {
        user_id: c.user_id,
        organization_id: c.organization_id,
        email: c.email,
        first_name: c.first_name,
        last_name: c.last_name,
        element_token: None,
    })
}

fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "A request that changes something and is authenticated by the session cookie needs the header \
         X-Requested-With, or the session's CSRF token (header X-CSRF-Token or form field _csrf)",
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn csrf_matches(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `POST /elements/j_spring_security_check` form.
#[derive(Deserialize)]
pub struct LoginForm {
    j_username: Option<String>,
    j_password: Option<String>,
}

/// `POST /elements/j_spring_security_check`: 200 with the session cookie and
/// `{"id", "emailAddress", "organizationId", "csrfToken"}`; 401 for a wrong
/// email or password (one answer for both); 429 after [`MAX_FAILURES_PER_MINUTE`].
pub async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|e| {
        ApiError::new(e.status(), "Log in with the form fields j_username and j_password (application/x-www-form-urlencoded)")
    })?;
    let (Some(email), Some(password)) = (form.j_username, form.j_password) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Log in with the form fields j_username and j_password"));
    };
    let email = email.trim().to_owned();
    let client = client_ip(peer.map(|p| p.0 .0.ip()), &headers, &state.trusted_proxies);
    let email_scope = format!("email:{}", email.to_lowercase());
    let ip_scope = client.map(|ip| format!("ip:{ip}"));
    let now = now_ms();
    let store = &state.engine.store;
    let mut throttled = store.login_failures(&email_scope, now).await? >= MAX_FAILURES_PER_MINUTE;
    if let Some(scope) = &ip_scope {
        throttled |= store.login_failures(scope, now).await? >= MAX_FAILURES_PER_MINUTE;
    }
    if throttled {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins; try again in a minute");
        e.retry_after = Some(Duration::from_millis(switchyard_store::LOGIN_WINDOW_MS as u64));
        return Err(e);
    }

    let found = store.password_for_email(&email).await?;
    let stored = found.as_ref().map(|f| f.password_hash.clone());
    let matched = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => password::verify(&password, &stored),
        None => password::verify_nobody(&password),
    })
    .await
    .map_err(ApiError::internal)?;
    let user = match (matched, found) {
        (true, Some(user)) => user,
        _ => {
            let mut scopes = vec![email_scope.as_str()];
            scopes.extend(ip_scope.as_deref());
            store.record_login_failure(&scopes, now).await?;
            tracing::info!(client = ?client, "failed login");
            return Err(ApiError::unauthorized("Wrong email or password"));
        }
    };

    let (token, csrf) = (new_secret(), new_secret());
    store.create_session(&hash_secret(&token), user.user_id, &csrf, now, idle_ms()).await?;
    tracing::info!(user = user.user_id, "logged in");
    let cookie = Cookie::build((COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.engine.public_url.starts_with("https://"));
    let body = json!({
        "id": user.user_id,
        "emailAddress": user.email,
        "organizationId": user.organization_id,
        "csrfToken": csrf,
    });
    Ok(with_cookie(Json(body).into_response(), &cookie.build()))
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

/// A `Set-Cookie` that makes the browser forget the session cookie.
fn removal() -> Cookie<'static> {
    let mut cookie = Cookie::build((COOKIE, "")).path("/").http_only(true).same_site(SameSite::Lax).build();
    cookie.make_removal();
    cookie
}

fn logged_out() -> Response {
    with_cookie(Json(json!({"message": "Logged out"})).into_response(), &removal())
}

/// `GET /elements/j_spring_security_logout`: ends the cookie's session (if any)
/// and clears the cookie; always 200.
pub async fn logout_get(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        state.engine.store.end_session(&hash_secret(&token)).await?;
    }
    Ok(logged_out())
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
pub async fn logout_post(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let Some(token) = cookie_token(&headers) else {
        return Ok(logged_out());
    };
    let token_hash = hash_secret(&token);
    if let Some(session) = state.engine.store.session(&token_hash, now_ms(), idle_ms()).await? {
        let field = url::form_urlencoded::parse(&body).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned());
        let shown = headers.contains_key(REQUESTED_WITH)
            || csrf_matches(header_text(&headers, CSRF_HEADER), &session.csrf_token)
            || csrf_matches(field.as_deref(), &session.csrf_token);
        if !shown {
            return Err(csrf_refused());
        }
        state.engine.store.end_session(&token_hash).await?;
    }
    Ok(logged_out())
}

/// `GET /elements/api-v1/ui/getSecrets`: `{"user": "<user secret>", "company":
/// "<organization secret>"}` for the logged-in user (or a header caller). 409 for
/// a secret made before secrets were kept sealed: only its hash exists, and the
/// answer names the `reset-secret` command that makes a readable one.
pub async fn get_secrets(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let sealed = state
        .engine
        .store
        .sealed_secrets(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("No such user"))?;
    let open = |tenant: Tenant, pair: Option<(Vec<u8>, Vec<u8>)>, id: i64, command: &str| -> Result<String, ApiError> {
        let (hash, blob) = pair.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "This {} secret was made before Switchyard kept secrets readable, so it cannot be shown; \
                     make a new one with `switchyard {command} reset-secret {id}` (the old one stops working)",
                    match tenant {
                        Tenant::User => "user",
                        Tenant::Organization => "organization",
                    }
                ),
            )
        })?;
        let secret = state.engine.vault.decrypt_str(&blob, &tenant_secret_aad(tenant, &hash)).map_err(ApiError::internal)?;
        Ok(secret.expose().to_owned())
    };
    let user = open(Tenant::User, sealed.user, sealed.user_id, "users")?;
    let company = open(Tenant::Organization, sealed.organization, sealed.organization_id, "orgs")?;
    let mut response = Json(json!({"user": user, "company": company})).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
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
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
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
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE_HEADER, HeaderValue::from_static("a=1; SWITCHYARD_SESSION=tok; b=2"));
        assert_eq!(cookie_token(&headers).as_deref(), Some("tok"));
        headers.insert(COOKIE_HEADER, HeaderValue::from_static("SWITCHYARD_SESSION="));
        assert_eq!(cookie_token(&headers), None);
    }
}
