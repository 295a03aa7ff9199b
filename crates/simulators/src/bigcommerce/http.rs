//! The transport: routes, authentication, rate limits, fault injection, and a server
//! that can drop connections.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::sync::Notify;

use super::api::{self, Ctx};
use super::hooks;
use super::query::Query;
use super::table::{ApiError, Reply};
use super::{control, fmt, lock, read, BigCommerceSimulator, Quota, QuotaWindow, SeenRequest, StoreConfig, StoreState, RECENT_REQUESTS};

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `/stores/{hash}/api/v2`, HTTP Basic.
    Legacy,
    /// `/stores/{hash}/v2`, `X-Auth-Token`.
    Token,
    /// `/stores/{hash}/v3` (the hooks API), `X-Auth-Token`; errors in the v3 shape.
    V3,
}

impl Mode {
    /// The base path after `/stores/{hash}/`.
    fn base(self) -> &'static str {
        match self {
            Mode::Legacy => "api/v2",
            Mode::Token => "v2",
            Mode::V3 => "v3",
        }
    }

    /// An error in the shape of this API version.
    fn error(self, e: &ApiError) -> Reply {
        match self {
            Mode::V3 => e.v3_reply(),
            Mode::Legacy | Mode::Token => e.reply(),
        }
    }
}

/// Lets a handler close its connection without answering (set by [`serve`]).
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

pub(crate) fn router(sim: BigCommerceSimulator) -> Router {
    Router::new()
        .route("/stores/{hash}/api/v2/{*rest}", any(legacy))
        .route("/stores/{hash}/v2/{*rest}", any(token))
        .route("/stores/{hash}/v3/{*rest}", any(v3))
        .merge(control::routes())
        .fallback(fallback)
        .with_state(sim)
}

async fn legacy(State(sim): State<BigCommerceSimulator>, Path((hash, rest)): Path<(String, String)>, req: Request) -> Response {
    handle(sim, Mode::Legacy, hash, rest, req).await
}

async fn token(State(sim): State<BigCommerceSimulator>, Path((hash, rest)): Path<(String, String)>, req: Request) -> Response {
    handle(sim, Mode::Token, hash, rest, req).await
}

async fn v3(State(sim): State<BigCommerceSimulator>, Path((hash, rest)): Path<(String, String)>, req: Request) -> Response {
    handle(sim, Mode::V3, hash, rest, req).await
}

async fn fallback() -> Response {
    respond(ApiError::not_found().reply(), None)
}

fn check_auth(cfg: &StoreConfig, mode: Mode, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    match mode {
        Mode::Legacy => {
            let Some(h) = headers.get(AUTHORIZATION).and_then(|h| h.to_str().ok()) else {
                return Err(unauthorized("No credentials were supplied with the request. Use HTTP Basic authentication with your API username and token."));
            };
            let decoded = h
                .strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|s| s.split_once(':')) {
                Some((u, p)) if u == cfg.username && p == cfg.api_token => Ok(()),
                _ => Err(unauthorized("The username or API token supplied is invalid.")),
            }
        }
        Mode::Token | Mode::V3 => match headers.get("x-auth-token").and_then(|h| h.to_str().ok()) {
            None => Err(unauthorized("No X-Auth-Token header was supplied with the request.")),
            Some(t) if t == cfg.api_token => Ok(()),
            Some(_) => Err(unauthorized("The X-Auth-Token supplied is invalid or has been revoked.")),
        },
    }
}

/// The rate-limit state after counting one request: (allowed, left, reset in ms).
fn take_quota(store: &StoreState, q: &Quota) -> (bool, u32, u64) {
    let now = Instant::now();
    let mut w = lock(&store.window);
    if now.duration_since(w.start) >= q.window {
        *w = QuotaWindow { start: now, used: 0 };
    }
    let reset = q.window.saturating_sub(now.duration_since(w.start)).as_millis() as u64;
    if w.used < q.requests {
        w.used += 1;
        (true, q.requests - w.used, reset)
    } else {
        (false, 0, reset)
    }
}

fn rate_headers(q: &Quota, left: u32, reset_ms: u64) -> [(HeaderName, HeaderValue); 4] {
    [
        (HeaderName::from_static("x-rate-limit-requests-left"), HeaderValue::from(left)),
        (HeaderName::from_static("x-rate-limit-requests-quota"), HeaderValue::from(q.requests)),
        (HeaderName::from_static("x-rate-limit-time-reset-ms"), HeaderValue::from(reset_ms)),
        (HeaderName::from_static("x-rate-limit-time-window-ms"), HeaderValue::from(q.window.as_millis() as u64)),
    ]
}

fn respond(reply: Reply, rate: Option<&[(HeaderName, HeaderValue)]>) -> Response {
    let mut b = Response::builder().status(reply.status);
    if reply.body.is_some() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    if let Some(h) = rate {
        for (k, v) in h {
            b = b.header(k, v);
        }
    }
    if let Some((k, v)) = reply.extra {
        b = b.header(k, v);
    }
    let body = reply.body.map(Body::from).unwrap_or_else(Body::empty);
    b.body(body).unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(sim: BigCommerceSimulator, mode: Mode, hash: String, rest: String, req: Request) -> Response {
    let Some(store) = sim.state(&hash) else {
        return respond(mode.error(&ApiError::new(StatusCode::NOT_FOUND, format!("The store '{hash}' was not found."))), None);
    };
    store.requests.fetch_add(1, Ordering::Relaxed);
    {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut recent = lock(&store.recent);
        if recent.len() == RECENT_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(SeenRequest { at, method: req.method().to_string(), path: rest.clone() });
    }
    let (auth, faults, quota, legacy_limits) = {
        let cfg = read(&store.cfg);
        (check_auth(&cfg, mode, req.headers()), cfg.faults.clone(), cfg.quota.clone(), mode == Mode::Legacy && cfg.legacy_rate_limits)
    };

    if let Some(l) = faults.latency {
        tokio::time::sleep(l).await;
    }
    if faults.drop_rate > 0.0 && rand::random::<f64>() < faults.drop_rate {
        return drop_connection(req.extensions().get::<ConnKill>().cloned()).await;
    }
    if let Err(e) = auth {
        let mut reply = mode.error(&e);
        if mode == Mode::Legacy {
            reply.extra = Some((WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"BigCommerce API\"")));
        }
        return respond(reply, None);
    }
    let rate = match &quota {
        // The legacy API's way (developer docs of 2013, "API rate limits"): the calls
        // left in X-BC-ApiLimit-Remaining on every answer, and once they are spent a
        // 509 that names no wait.
        Some(q) if legacy_limits => {
            let (allowed, left, _) = take_quota(&store, q);
            let headers = vec![(HeaderName::from_static("x-bc-apilimit-remaining"), HeaderValue::from(left))];
            if !allowed {
                let status = StatusCode::from_u16(509).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
                let reply = mode.error(&ApiError::new(status, "The requests-per-hour limit has been reached."));
                return respond(reply, Some(&headers));
            }
            Some(headers)
        }
        Some(q) => {
            let (allowed, left, reset) = take_quota(&store, q);
            let headers = rate_headers(q, left, reset).to_vec();
            if !allowed {
                let mut reply = mode.error(&ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "You have exceeded your request quota. Wait for the time given in X-Retry-After before retrying.",
                ));
                reply.extra = Some((HeaderName::from_static("x-retry-after"), HeaderValue::from(reset.div_ceil(1000).max(1))));
                return respond(reply, Some(&headers));
            }
            Some(headers)
        }
        None => None,
    };
    if faults.error_rate > 0.0
        && rand::random::<f64>() < faults.error_rate
        && faults.max_errors.is_none_or(|max| store.injected.fetch_add(1, Ordering::Relaxed) < max)
    {
        let status = match faults.error_status.and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(s) => s,
            None if rand::random::<bool>() => StatusCode::INTERNAL_SERVER_ERROR,
            None => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "The service is temporarily unavailable. Please try again later."
        } else {
            "An internal error occurred. Please try again later."
        };
        return respond(mode.error(&ApiError::new(status, message)), rate.as_deref());
    }

    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return respond(mode.error(&ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.")), rate.as_deref());
        }
    };
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.contains(['"', '\\']))
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("127.0.0.1");
    let scheme = match parts.headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    let base = format!("{scheme}://{host}/stores/{hash}/{}", mode.base());
    let mut segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(last) = segs.last_mut() {
        *last = last.strip_suffix(".json").unwrap_or(last);
    }
    let ctx = Ctx { base: &base, now: fmt::now(), query: Query::parse(parts.uri.query()), body: &body };
    let reply = if mode == Mode::V3 {
        hooks::dispatch(&sim, &store, &hash, &parts.method, &segs, &ctx)
    } else {
        let (reply, events) = api::dispatch(&store, &parts.method, &segs, &ctx);
        sim.inner.webhooks.fire(&store, &hash, events);
        reply
    };

    match (faults.slow_body, reply.body.clone()) {
        (Some(total), Some(bytes)) if !bytes.is_empty() => {
            let len = bytes.len();
            let mut resp = respond(Reply { status: reply.status, body: None, extra: reply.extra }, rate.as_deref());
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
            *resp.body_mut() = slow_body(bytes, total);
            resp
        }
        _ => respond(reply, rate.as_deref()),
    }
}

/// The body in up to 8 chunks, each after `total / chunks`.
fn slow_body(bytes: Bytes, total: Duration) -> Body {
    use futures::StreamExt;
    let n = bytes.len().clamp(1, 8);
    let size = bytes.len().div_ceil(n);
    let pause = total / n as u32;
    let chunks: Vec<Bytes> = (0..n).map(|i| bytes.slice(i * size..((i + 1) * size).min(bytes.len()))).filter(|c| !c.is_empty()).collect();
    let stream = futures::stream::iter(chunks).then(move |c| async move {
        tokio::time::sleep(pause).await;
        Ok::<Bytes, Infallible>(c)
    });
    Body::from_stream(stream)
}

/// Closes the connection without an answer: through [`serve`]'s kill switch when
/// there is one, otherwise (router mounted elsewhere) by failing the body stream, which
/// makes the server abort the connection after the status line at most.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    if let Some(k) = kill {
        k.0.notify_one();
        std::future::pending::<()>().await;
    }
    let stream = futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by fault injection")) });
    Response::new(Body::from_stream(stream))
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, sim: BigCommerceSimulator) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use tower::Service;

    let app = router(sim);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait and go on, as axum does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let kill = ConnKill(Arc::new(Notify::new()));
            let k = kill.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(k.clone());
                let mut app = app.clone();
                async move { app.call(req.map(Body::new)).await }
            });
            let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.0.notified() => {}
            }
        });
    }
}

/// A JSON body for the control API.
pub(crate) fn control_json(status: StatusCode, v: &serde_json::Value) -> Response {
    respond(Reply::json(status, v), None)
}

pub(crate) fn control_error(status: StatusCode, message: &str) -> Response {
    control_json(status, &json!({ "error": message }))
}
