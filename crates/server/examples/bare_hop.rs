//! The floor of a hop built on Switchyard's HTTP stack (issue 11): a reverse proxy
//! that does nothing but forward `GET`s to one upstream and buffer the answer, as
//! a hub call does, with none of a hub call's work (no caller, no instance, no
//! routing through element data, no call log, no JSON check).
//!
//! `scripts/hop_floor.py` runs it beside nginx and `switchyard serve` so that the
//! CPU a hop costs can be split into what the stack itself costs and what
//! Switchyard adds. Two stacks:
//! - `axum`: axum's router and reqwest's client, as `switchyard serve` uses them;
//! - `hyper`: hyper's server connection and hyper-util's pooled client, the
//!   layers both of the above are built on;
//! - `hyper-reqwest`: hyper's server connection and reqwest's client, to tell the
//!   client's share from the server's.
//!
//! Usage: `bare_hop --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT [--stack axum|hyper|hyper-reqwest]`
//! (the runtime has tokio's default worker count, as `switchyard serve`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

struct Args {
    listen: SocketAddr,
    upstream: String,
    stack: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut upstream, mut stack) = (None, None, "axum".to_owned());
    while let Some(flag) = it.next() {
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

fn bad_gateway(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_GATEWAY, e.to_string()).into_response()
}

async fn via_reqwest(State(hop): State<Arc<(reqwest::Client, String)>>, request: Request) -> Response {
    let (client, upstream) = &*hop;
    let mut outbound = client.get(target(upstream, request.uri()));
    if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
        outbound = outbound.header(header::AUTHORIZATION, auth.clone());
    }
    let answer = match outbound.send().await {
        Ok(answer) => answer,
        Err(e) => return bad_gateway(e),
    };
    let status = answer.status();
    match answer.bytes().await {
        Ok(body) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Err(e) => bad_gateway(e),
    }
}

type HyperClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn via_hyper(
    client: Arc<HyperClient>,
    reqwest: Option<reqwest::Client>,
    upstream: Arc<String>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let failed = |e: String| {
        let mut r = hyper::Response::new(Full::from(e));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(r)
    };
    if let Some(reqwest) = reqwest {
        let mut outbound = reqwest.get(target(&upstream, request.uri()));
        if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
            outbound = outbound.header(header::AUTHORIZATION, auth.clone());
        }
        let answer = match outbound.send().await {
            Ok(answer) => answer,
            Err(e) => return failed(e.to_string()),
        };
        let status = answer.status();
        return match answer.bytes().await {
            Ok(body) => {
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() = status;
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(r)
            }
            Err(e) => failed(e.to_string()),
        };
    }
    let mut outbound = hyper::Request::get(target(&upstream, request.uri()));
    if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
        outbound = outbound.header(header::AUTHORIZATION, auth.clone());
    }
    let outbound = match outbound.body(Full::default()) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let answer = match client.request(outbound).await {
        Ok(answer) => answer,
        Err(e) => return failed(e.to_string()),
    };
    let status = answer.status();
    match answer.into_body().collect().await {
        Ok(body) => {
            let mut r = hyper::Response::new(Full::new(body.to_bytes()));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        Err(e) => failed(e.to_string()),
    }
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare_hop: {e}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.expect("the listen address is free");
    if args.stack == "axum" {
        let client = reqwest::Client::builder().no_proxy().build().expect("the TLS backend initialises");
        let app = axum::Router::new().fallback(via_reqwest).with_state(Arc::new((client, args.upstream)));
        axum::serve(listener, app).await.expect("serves");
        return;
    }
    let client = Arc::new(Client::builder(TokioExecutor::new()).build_http());
    let reqwest = (args.stack == "hyper-reqwest").then(|| reqwest::Client::builder().no_proxy().build().expect("the TLS backend initialises"));
    let upstream = Arc::new(args.upstream);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (client, reqwest, upstream) = (client.clone(), reqwest.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |r| via_hyper(client.clone(), reqwest.clone(), upstream.clone(), r));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
