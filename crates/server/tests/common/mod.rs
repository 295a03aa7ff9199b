//! What the server's test binaries share: waiting on a condition with a deadline,
//! and a server with one organization over a given catalog.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it holds; panics naming `what` once `limit` has passed.
pub async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the async `check` until it answers `Some`, and answers that; panics naming
/// `what` once `limit` has passed.
pub async fn until_some<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server on a loopback port (vendor calls to loopback allowed) with one
/// organization and `catalog`: the API's base URL, the user's `Authorization`
/// value, and the directory of its database, which must outlive the server.
pub async fn serve_catalog(catalog: switchyard_elements::Catalog) -> (String, String, tempfile::TempDir) {
    use switchyard_server::caller::hash_secret;
    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (switchyard_server::new_secret(), switchyard_server::new_secret());
    store.create_organization("t", &hash_secret(&org_secret), "t@localhost", &hash_secret(&user_secret)).await.unwrap();
    let state = switchyard_server::AppState::new(
        store,
        switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate()),
        switchyard_engine::client::VendorClient::new(switchyard_engine::outbound::OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
        catalog,
        vec![9u8; 32],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    (format!("http://{addr}/elements/api-v2"), format!("User {user_secret}, Organization {org_secret}"), dir)
}

/// An answer of the API as the tests read it: status, headers, and the body as JSON
/// (a string when it is not JSON, `null` when empty).
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// Sends `request` and reads the whole answer.
    pub async fn of(request: reqwest::RequestBuilder) -> Answer {
        let r = request.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let text = r.text().await.unwrap();
        let body = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)) };
        Answer { status, headers, body }
    }

    /// The body of a 200.
    pub fn ok(self) -> serde_json::Value {
        assert_eq!(self.status, reqwest::StatusCode::OK, "{}", self.body);
        self.body
    }

    /// An error in the Cloud Elements shape with `status`: its message and providerMessage.
    pub fn error(&self, status: reqwest::StatusCode) -> (String, Option<String>) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.body["requestId"].is_string(), "{}", self.body);
        (self.body["message"].as_str().unwrap().to_owned(), self.body["providerMessage"].as_str().map(str::to_owned))
    }

    /// `Elements-Next-Page-Token`.
    pub fn next(&self) -> Option<String> {
        self.headers.get("Elements-Next-Page-Token").map(|v| v.to_str().unwrap().to_owned())
    }
}
