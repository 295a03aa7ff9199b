//! The floor of a hop built on Switchyard's HTTP stack (issue 11): a reverse proxy
//! that does nothing but forward `GET`s to one upstream and buffer the answer, as
//! a hub call does, with none of a hub call's work (no caller, no instance, no
//! routing through element data, no call log, no JSON check).
//!
//! `scripts/hop_floor.py` runs it beside nginx and `switchyard serve` so that the
//! CPU a hop costs can be split into what the stack itself costs and what
//! Switchyard adds. Three stacks, all HTTP/1.1 with `TCP_NODELAY` on both sides:
//! - `axum`: an axum router served by `switchyard_server::serve_router` (the accept
//!   loop of `switchyard serve`) and reqwest's client, as `switchyard serve` uses them;
//! - `hyper`: hyper's server connection and hyper-util's pooled client, the
//!   layers both of the others are built on;
//! - `hyper-reqwest`: hyper's server connection and reqwest's client, to tell the
//!   client's share from the server's.
//!
//! Usage: `bare_hop --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT [--stack axum|hyper|hyper-reqwest]`
//! (tokio's default worker count, as `switchyard serve`; an upstream call has 30 s,
//! then the answer is a 502).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

const USAGE: &str = "usage: bare_hop --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT [--stack axum|hyper|hyper-reqwest]";
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    listen: SocketAddr,
    upstream: String,
    stack: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut upstream, mut stack) = (None, None, "axum".to_owned());
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err("".to_owned());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => upstream = Some(value.trim_end_matches('/').to_owned()),
            "--stack" if ["axum", "hyper", "hyper-reqwest"].contains(&value.as_str()) => stack = value,
            _ => return Err(format!("unknown flag or value: {flag} {value}")),
        }
    }
    Ok(Args { listen: listen.ok_or("--listen is required")?, upstream: upstream.ok_or("--upstream is required")?, stack })
}

/// The upstream URL of an incoming request: its path and query after the upstream's base.
fn target(upstream: &str, uri: &axum::http::Uri) -> String {
    format!("{upstream}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}

/// The answer every stack gives: the upstream's status and body, as JSON; a 502
/// with the error when the upstream could not be reached or read.
fn answer(outcome: Result<(StatusCode, Bytes), String>) -> hyper::Response<Full<Bytes>> {
    let (status, body) = outcome.unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, Bytes::from(e)));
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn with_reqwest(client: &reqwest::Client, url: String, headers: &HeaderMap) -> Result<(StatusCode, Bytes), String> {
    let mut outbound = client.get(url);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        outbound = outbound.header(header::AUTHORIZATION, auth.clone());
    }
    let upstream = outbound.send().await.map_err(|e| e.to_string())?;
    let status = upstream.status();
    Ok((status, upstream.bytes().await.map_err(|e| e.to_string())?))
}

async fn with_hyper(client: &Client<HttpConnector, Full<Bytes>>, url: String, headers: &HeaderMap) -> Result<(StatusCode, Bytes), String> {
    let mut outbound = hyper::Request::get(url);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        outbound = outbound.header(header::AUTHORIZATION, auth.clone());
    }
    let upstream = client.request(outbound.body(Full::default()).map_err(|e| e.to_string())?);
    let upstream = tokio::time::timeout(UPSTREAM_TIMEOUT, upstream).await.map_err(|_| "upstream timed out".to_owned())?;
    let upstream = upstream.map_err(|e| e.to_string())?;
    let status = upstream.status();
    let body = upstream.into_body().collect();
    let body = tokio::time::timeout(UPSTREAM_TIMEOUT, body).await.map_err(|_| "upstream timed out".to_owned())?;
    Ok((status, body.map_err(|e| e.to_string())?.to_bytes()))
}

async fn axum_handler(State(hop): State<Arc<(reqwest::Client, String)>>, request: Request) -> Response {
    let (client, upstream) = &*hop;
    answer(with_reqwest(client, target(upstream, request.uri()), request.headers()).await).into_response()
}

#[tokio::main]
async fn main() {
    let args = args().unwrap_or_else(|e| {
        if !e.is_empty() {
            eprintln!("bare_hop: {e}");
        }
        eprintln!("{USAGE}");
        std::process::exit(2);
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap_or_else(|e| {
        eprintln!("bare_hop: cannot listen on {}: {e}", args.listen);
        std::process::exit(2);
    });
    // reqwest sets TCP_NODELAY on its connections by default.
    let reqwest = reqwest::Client::builder().no_proxy().timeout(UPSTREAM_TIMEOUT).build().expect("the TLS backend initialises");
    if args.stack == "axum" {
        let app = axum::Router::new().fallback(axum_handler).with_state(Arc::new((reqwest, args.upstream)));
        let served = switchyard_server::serve_router(listener, app, Default::default(), std::future::pending()).await;
        served.expect("serves");
        return;
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let hyper_client = Arc::new(Client::builder(TokioExecutor::new()).build(connector));
    let reqwest = (args.stack == "hyper-reqwest").then_some(reqwest);
    let upstream = Arc::new(args.upstream);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (hyper_client, reqwest, upstream) = (hyper_client.clone(), reqwest.clone(), upstream.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (hyper_client, reqwest, url) = (hyper_client.clone(), reqwest.clone(), target(&upstream, request.uri()));
            async move {
                let outcome = match &reqwest {
                    Some(client) => with_reqwest(client, url, request.headers()).await,
                    None => with_hyper(&hyper_client, url, request.headers()).await,
                };
                Ok::<_, Infallible>(answer(outcome))
            }
        });
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}
