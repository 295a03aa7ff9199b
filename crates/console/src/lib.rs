//! The web console (`/console`, for an organization's users, behind the password
//! login's session cookie) and the Connect page (`/connect/{token}`, for their
//! customers, behind a single-use Connect session token): server-rendered HTML.
//!
//! Neither has logic of its own about instances: every action is a call to the
//! platform API inside this process ([`api::Api`]), made as the logged-in user (or
//! the Connect session's creator) through [`switchyard_server::ActingAs`], so the
//! console checks, refuses and logs exactly what the API does. What is here: the
//! pages, the forms generated from element data, CSRF tokens, the OAuth round trip
//! (`/connect/oauth/callback`), and the security headers.
//!
//! Templates are Jinja (minijinja) files under `templates/`, compiled into the
//! binary and HTML-escaped by default; the one script (`assets/console.js`) only
//! refreshes live tables. No asset comes from elsewhere.

// Handlers answer an HTML page for every outcome, refusals included, so helpers
// return `Result<_, Response>`; boxing each would only add noise to one-per-request values.
#![allow(clippy::result_large_err)]

pub mod api;
mod auth;
mod callback;
mod connect;
mod explorer;
mod forms;
mod oauth;
mod pages;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use switchyard_server::AppState;

pub use api::Api;

/// How the console and Connect page are served (`serve` flags).
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Origins allowed to show the Connect page in a frame
    /// (`serve --connect-frame-ancestors`); empty: no site may (`frame-ancestors 'none'`).
    /// The console itself is never framed.
    pub connect_frame_ancestors: Vec<String>,
}

/// What every console handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

struct Inner {
    app: AppState,
    api: Api,
    templates: minijinja::Environment<'static>,
    connect_csp: HeaderValue,
    /// Some origins may frame the Connect page (`X-Frame-Options` is left off there).
    connect_framable: bool,
}

impl std::ops::Deref for Console {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0.app
    }
}

/// The templates, compiled into the binary (`templates/`).
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("elements.html", include_str!("../templates/elements.html")),
    ("element.html", include_str!("../templates/element.html")),
    ("config_form.html", include_str!("../templates/config_form.html")),
    ("instances.html", include_str!("../templates/instances.html")),
    ("instance.html", include_str!("../templates/instance.html")),
    ("events.html", include_str!("../templates/events.html")),
    ("calls.html", include_str!("../templates/calls.html")),
    ("delete.html", include_str!("../templates/delete.html")),
    ("explorer.html", include_str!("../templates/explorer.html")),
    ("connect.html", include_str!("../templates/connect.html")),
    ("problem.html", include_str!("../templates/problem.html")),
];

/// The Content-Security-Policy of every page: scripts, styles and images from
/// this server only, no inline script or style, no plugin, no `<base>`, no frame.
/// `form-action` is left open on purpose: an "Authorize" form's answer redirects
/// to the vendor's page, and Chromium applies `form-action` to that redirect.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

impl Console {
    /// The console over `app`, whose platform API `api` serves (see [`Api`]).
    pub fn new(app: AppState, api: Router, options: &ConsoleOptions) -> Console {
        let mut templates = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            // The files are part of this crate: a syntax error is ours, caught by
            // the tests that render every page.
            templates.add_template(name, source).unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        let ancestors = if options.connect_frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            options.connect_frame_ancestors.join(" ")
        };
        let connect_csp = CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {ancestors}"));
        let connect_csp = HeaderValue::from_str(&connect_csp).unwrap_or_else(|_| HeaderValue::from_static(CSP));
        let connect_framable = !options.connect_frame_ancestors.is_empty();
        Console(Arc::new(Inner { app, api: Api::new(api), templates, connect_csp, connect_framable }))
    }

    pub(crate) fn api(&self) -> &Api {
        &self.0.api
    }

    /// A page: `template` rendered with `context`, with `status`.
    pub(crate) fn page(&self, status: StatusCode, template: &str, context: Value) -> Response {
        let rendered = self
            .0
            .templates
            .get_template(template)
            .and_then(|t| t.render(minijinja::Value::from_serialize(&context)));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "a console page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, Html("<!doctype html><title>Error</title><p>This page failed to render; the server log says why.</p>"))
                    .into_response()
            }
        }
    }

    /// A page that says what went wrong, in the platform's or the vendor's words.
    pub(crate) fn problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.page(status, "problem.html", json!({"title": title, "message": message}))
    }

    /// [`Console::problem`] for a customer on the Connect page: no console link.
    pub(crate) fn connect_problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.page(status, "problem.html", json!({"title": title, "message": message, "connect": true}))
    }
}

/// Validates the `--connect-frame-ancestors` origins: `https://host[:port]`
/// (or `http://` for loopback development), nothing else.
pub fn parse_frame_ancestors(given: &[String]) -> Result<Vec<String>, String> {
    given
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let url = url::Url::parse(s).map_err(|_| format!("'{s}' is not an origin such as https://app.example.com"))?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || url.query().is_some() || origin == "null" {
                return Err(format!("'{s}' is not an origin such as https://app.example.com"));
            }
            // Plain http only where nobody else can be on the path: this machine.
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if url.scheme() == "http" && !loopback {
                return Err(format!("'{s}' must be https (http only for loopback development)"));
            }
            Ok(origin)
        })
        .collect()
}

/// The console's and the Connect page's routes; merge them into the API's router.
pub fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/instances") }))
        .route("/console/", get(|| async { Redirect::to("/console/instances") }))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/elements", get(pages::elements))
        .route("/console/elements/{key}", get(pages::element))
        .route("/console/elements/{key}/connect", post(pages::connect_instance))
        .route("/console/instances", get(pages::instances))
        .route("/console/instances/{id}", get(pages::instance))
        .route("/console/instances/{id}/enabled", post(pages::set_enabled))
        .route("/console/instances/{id}/delete", get(pages::confirm_delete).post(pages::delete))
        .route("/console/instances/{id}/reauthorize", post(pages::reauthorize))
        .route("/console/instances/{id}/events", get(pages::events_fragment))
        .route("/console/instances/{id}/calls", get(pages::calls_fragment))
        .route("/console/instances/{id}/events/{event_id}/redeliver", post(pages::redeliver))
        .route("/console/instances/{id}/explorer", get(explorer::page).post(explorer::try_it))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("../assets/console.css")) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("../assets/console.js")) }))
        // Every other console path: the console's own "not found" page, with its headers.
        .route("/console/{*rest}", axum::routing::any(not_found))
        .route("/connect/oauth/callback", get(callback::callback))
        .route("/connect/{token}", get(connect::page).post(connect::submit))
        .route("/connect/{token}/cancel", post(connect::cancel));
    pages.layer(middleware::from_fn_with_state(console.clone(), security_headers)).with_state(console)
}

async fn not_found(State(console): State<Console>) -> Response {
    console.problem(StatusCode::NOT_FOUND, "No such page", "This console page does not exist")
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// Security headers on every console and Connect answer. Pages are not cached
/// (they hold CSRF tokens and account data), and no `Referer` leaves this site: a
/// Connect page's address is its credential. (`same-origin`, not `no-referrer`:
/// under `no-referrer` browsers send `Origin: null` on our own form posts, which
/// the login's cross-site check must refuse.)
async fn security_headers(State(console): State<Console>, request: Request, next: Next) -> Response {
    let connect = request.uri().path().starts_with("/connect/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = if connect { console.0.connect_csp.clone() } else { HeaderValue::from_static(CSP) };
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    if !(connect && console.0.connect_framable) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_are_origins() {
        let given = vec!["https://app.example.com, http://127.0.0.1:3000".to_owned()];
        assert_eq!(parse_frame_ancestors(&given).unwrap(), ["https://app.example.com", "http://127.0.0.1:3000"]);
        for bad in ["app.example.com", "https://app.example.com/path", "javascript:alert(1)", "https://a.example.com?x=1", "http://evil.example"] {
            assert!(parse_frame_ancestors(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
