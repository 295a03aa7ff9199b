//! Starts a simulator on 127.0.0.1:0 and calls it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchyard_simulators::bigcommerce::{serve, BigCommerceSimulator, StoreConfig, DEMO_API_TOKEN};

pub struct Sim {
    pub sim: BigCommerceSimulator,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the vendor's error array shape and status; returns the first error.
    pub fn error(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let v = self.json();
        let arr = v.as_array().unwrap_or_else(|| panic!("error body is not an array: {v}"));
        assert!(!arr.is_empty());
        assert_eq!(arr[0]["status"], status, "{v}");
        assert!(arr[0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        arr[0].clone()
    }
}

pub async fn start(stores: Vec<StoreConfig>) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = BigCommerceSimulator::new(stores);
    tokio::spawn(serve(listener, sim.clone()));
    Sim { sim, addr, client: reqwest::Client::builder().no_proxy().build().unwrap() }
}

pub async fn demo() -> Sim {
    start(vec![StoreConfig::default()]).await
}

impl Sim {
    /// The legacy base of a store.
    pub fn base(&self, hash: &str) -> String {
        format!("http://{}/stores/{hash}/api/v2", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A call to the demo store with the demo credentials.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as("abc123", "sandbox", DEMO_API_TOKEN, method, path, body).await
    }

    pub async fn call_as(&self, hash: &str, user: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base(hash))).basic_auth(user, Some(token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    /// A token-mode call to the demo store: `version` is `v2` or `v3`.
    pub async fn token_call(&self, version: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = self.url(&format!("/stores/abc123/{version}{path}"));
        let mut req = self.client.request(method, url).header("X-Auth-Token", DEMO_API_TOKEN).header("X-Auth-Client", "sandbox-client");
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }
}

/// Sends a request and reads the whole answer.
pub async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    Answer { status: resp.status(), headers: resp.headers().clone(), text: resp.text().await.unwrap() }
}

impl Sim {

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// GET that must answer 200 with JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.text);
        assert_eq!(a.header("content-type"), Some("application/json"));
        a.json()
    }

    /// Every page of a collection, following `page` until 204.
    pub async fn all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        for page in 1.. {
            let a = self.get(&format!("{path}{sep}page={page}&limit=250")).await;
            if a.status == StatusCode::NO_CONTENT {
                break;
            }
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            out.extend(a.json().as_array().unwrap().iter().cloned());
        }
        out
    }

    pub async fn count(&self, path: &str) -> u64 {
        self.ok(path).await["count"].as_u64().unwrap()
    }
}

/// Polls `check` until it holds; panics naming `what` once `limit` has passed.
pub async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the clock (the simulator's: UTC, whole seconds) is past `secs`, so
/// that a write from now on is stamped later than one stamped `secs`.
pub async fn past_second(secs: i64) {
    until(Duration::from_secs(5), "the clock to pass a second", || chrono::Utc::now().timestamp() > secs).await;
}

/// Parses an RFC 2822 date of an answer.
pub fn date(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc2822(v.as_str().unwrap_or_else(|| panic!("not a date: {v}"))).unwrap_or_else(|e| panic!("{v}: {e}")).timestamp()
}
