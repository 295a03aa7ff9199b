//! A real store in a temporary directory, an instance with event configuration,
//! and a receiver on 127.0.0.1:0 that records every request and answers as told.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use switchyard_elements::Catalog;
use switchyard_events::Context;
use switchyard_store::{config_aad, InstanceRow, NewInstance, NewValue, Sealer, Store};
use switchyard_vault::{KeyRing, Vault};

pub struct VaultSealer(pub Vault);

impl Sealer for VaultSealer {
    fn seal(&self, instance_id: i64, key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        let blob = self.0.encrypt_str(plaintext, &config_aad(instance_id, key));
        (blob, self.0.current_id())
    }
}

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub ctx: Context,
    pub org: i64,
    pub user: i64,
}

pub async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    let (org, user) = store.create_organization("o", b"org-hash", "a@b.c", b"user-hash").await.unwrap();
    let ctx = Context { store, vault: Vault::new(KeyRing::generate()), catalog: Arc::new(Catalog::builtin()) };
    Setup { _dir: dir, ctx, org: org.id, user: user.id }
}

impl Setup {
    /// A BigCommerce instance with these event keys (the signature key sealed).
    pub async fn instance(&self, config: &[(&str, &str)]) -> InstanceRow {
        let values: Vec<(String, NewValue)> = config
            .iter()
            .map(|(k, v)| {
                let v = v.to_string();
                (k.to_string(), if *k == "event.notification.signature.key" { NewValue::Secret(v) } else { NewValue::Plain(v) })
            })
            .collect();
        let new = NewInstance {
            organization_id: self.org,
            user_id: self.user,
            element_key: "bigcommerce".into(),
            name: "shop".into(),
            token_hash: rand_hash(),
            tags: vec![],
            events_enabled: config.iter().any(|(k, v)| *k == "event.notification.enabled" && *v == "true"),
            webhook: None,
        };
        let id = self.ctx.store.create_instance(&new, &values, &VaultSealer(self.ctx.vault.clone())).await.unwrap();
        self.ctx.store.instance(self.org, id).await.unwrap().unwrap()
    }
}

fn rand_hash() -> Vec<u8> {
    use rand::RngCore;
    let mut b = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A status and extra headers.
pub type Answer = (u16, Vec<(&'static str, &'static str)>);

#[derive(Clone, Default)]
pub struct Receiver {
    pub seen: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order; 200 when none is left.
    pub script: Arc<Mutex<VecDeque<Answer>>>,
    /// Answer to give once the script is used up.
    pub then: Arc<Mutex<u16>>,
    /// Requests to leave unanswered (the connection held open for ever) before
    /// answering any, as a receiver that hangs.
    pub hold: Arc<Mutex<usize>>,
}

impl Receiver {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
    pub fn answer(&self, status: u16) {
        *self.then.lock().unwrap() = status;
    }
    pub fn script(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().cloned());
    }
    pub fn hold(&self, requests: usize) {
        *self.hold.lock().unwrap() = requests;
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.seen.lock().unwrap().push(Received { at: Instant::now(), headers, body });
    let held = {
        let mut hold = r.hold.lock().unwrap();
        let held = *hold > 0;
        *hold = hold.saturating_sub(1);
        held
    };
    if held {
        std::future::pending::<()>().await;
    }
    let then = match *r.then.lock().unwrap() {
        0 => 200,
        status => status,
    };
    let next = r.script.lock().unwrap().pop_front();
    let (status, extra) = next.unwrap_or((then, vec![]));
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    for (k, v) in extra {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

/// Starts a receiver on `addr` (use "127.0.0.1:0" for a free port); returns its URL.
pub async fn start_receiver(addr: &str, receiver: Receiver) -> String {
    start_receiver_on(tokio::net::TcpListener::bind(addr).await.unwrap(), receiver)
}

/// A loopback port kept for a receiver that is not up yet: bound but not
/// listening, so connections to it are refused (as by a receiver that is down) and
/// nothing else can take the port meanwhile. `listen` on it starts the receiver.
pub fn reserve_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Starts a receiver on `listener`; returns its URL.
pub fn start_receiver_on(listener: tokio::net::TcpListener, receiver: Receiver) -> String {
    let local = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{local}/hook")
}

/// Waits until `check` holds, failing after `limit`.
pub async fn until<F: FnMut() -> bool>(limit: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the async `check` holds, failing after `limit`.
pub async fn until_async<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the async `check` gives a value, failing after `limit`.
pub async fn until_some<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
