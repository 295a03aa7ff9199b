//! The console's login: the password login of `switchyard_server::session`
//! (`POST /elements/j_spring_security_check`) behind an HTML form, its session
//! cookie, and the session's CSRF token in every form that changes something.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde_json::json;
use switchyard_server::session::{cookie_tokens, csrf_matches, live_session};
use switchyard_server::ActingAs;

use crate::Console;

/// The logged-in user of a console request.
pub struct User {
    pub caller: switchyard_store::Caller,
    /// The session's CSRF token: every form that changes something carries it as `_csrf`.
    pub csrf: String,
}

impl User {
    /// Acting as this user in the API.
    pub fn acting(&self) -> ActingAs {
        ActingAs { caller: self.caller.clone(), instance_id: None }
    }

    /// Acting as this user, hub calls as instance `id`.
    pub fn acting_as_instance(&self, id: i64) -> ActingAs {
        ActingAs { caller: self.caller.clone(), instance_id: Some(id) }
    }

    /// Refuses a form without the session's CSRF token (a page of another site
    /// can post a form to us, with the cookie, but cannot read the token).
    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        if csrf_matches(form.get("_csrf"), &self.csrf) {
            Ok(())
        } else {
            Err((StatusCode::FORBIDDEN, "This form is out of date or came from another site; reload the page and send it again")
                .into_response())
        }
    }

    /// The user's fields for the page header.
    pub fn context(&self) -> serde_json::Value {
        json!({"email": self.caller.email, "csrf": self.csrf})
    }
}

/// A form's fields, in order (a repeated name: the first value counts).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        // Larger than any form of ours: a configuration's values, a hub record.
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(Form::parse(&bytes))
    }
}

impl FromRequestParts<Console> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let tokens = cookie_tokens(&parts.headers);
        let session = match live_session(console, &tokens).await {
            Ok(s) => s,
            Err(e) => return Err(console.problem(e.status, "The console is unavailable", &e.message)),
        };
        match session {
            Some(s) => Ok(User { caller: s.caller, csrf: s.csrf_token }),
            // The live tables' script asks with this header: it reloads the page,
            // which goes to the login, instead of filling a table with it.
            None if parts.headers.contains_key(FRAGMENT_HEADER) => Err(StatusCode::UNAUTHORIZED.into_response()),
            None => {
                // Back to this page after logging in (GET pages only: a form's
                // answer would be lost anyway).
                let here = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
                let next = if parts.method == Method::GET { here } else { "/console/instances" };
                let target = format!("/console/login?next={}", percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC));
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// Sent by `assets/console.js` when it refreshes a live table.
const FRAGMENT_HEADER: &str = "x-console-fragment";

/// Where a login may send the browser next: a console page of this server only
/// (visible ASCII, no `//`, `\\` or `..` segment: nothing a browser or a header
/// could read as another place).
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with("/console/")
            && n.bytes().all(|b| b.is_ascii_graphic())
            && !n.contains("//")
            && !n.contains('\\')
            && !n.split(['/', '?']).any(|s| s == ".." || s == ".")
    })
    .unwrap_or("/console/instances")
}

/// `GET /console/login`.
pub async fn login_page(State(console): State<Console>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = live_session(&console, &cookie_tokens(&headers)).await {
        return Redirect::to(safe_next(q.get("next").map(String::as_str))).into_response();
    }
    console.page(StatusCode::OK, "login.html", json!({"next": safe_next(q.get("next").map(String::as_str)), "email": ""}))
}

/// `POST /console/login`: the form goes, as sent, to the platform's login; its
/// session cookie comes back to the browser with a redirect to the console.
pub async fn login(
    State(console): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let mut request = Request::builder().method(Method::POST).uri("/elements/j_spring_security_check");
    // What the login reads: the form's type, and the origin and client address
    // its cross-site check and throttling use.
    for name in [header::CONTENT_TYPE, header::ORIGIN, header::HOST, header::HeaderName::from_static("x-forwarded-for")] {
        for value in headers.get_all(&name) {
            request = request.header(&name, value);
        }
    }
    let Ok(mut request) = request.body(Body::from(body.clone())) else {
        return console.problem(StatusCode::BAD_REQUEST, "Login", "The login form could not be read");
    };
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer.0);
    }
    let answer = console.api().send(request).await;
    let next = safe_next(form.get("next")).to_owned();
    if !answer.ok() {
        let context = json!({"next": next, "email": form.get("j_username").unwrap_or(""), "error": answer.problem()});
        return console.page(answer.status, "login.html", context);
    }
    let mut response = Redirect::to(&next).into_response();
    for cookie in answer.headers.get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// `POST /console/logout` (form with `_csrf`): ends the session through the API's
/// logout, which checks the token and clears the cookie.
pub async fn logout(State(console): State<Console>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/logout", crate::api::PREFIX))
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    for value in headers.get_all(header::COOKIE) {
        request = request.header(header::COOKIE, value);
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return console.problem(StatusCode::BAD_REQUEST, "Log out", "The form could not be read");
    };
    let answer = console.api().send(request).await;
    if !answer.ok() {
        return console.problem(answer.status, "Log out", &answer.problem());
    }
    let mut response = Redirect::to("/console/login").into_response();
    for cookie in answer.headers.get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_returns_to_console_pages_only() {
        assert_eq!(safe_next(Some("/console/instances/4")), "/console/instances/4");
        assert_eq!(safe_next(Some("/console/elements/bigcommerce?mode=custom")), "/console/elements/bigcommerce?mode=custom");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil.example",
            "/elements/api-v2/instances",
            "/console/\\evil",
            "/console/../elements/api-v2/instances",
            "/console/a\nb",
            "/console/ä",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/instances", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/instances");
    }
}
