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
