//! Webhook deliveries: the payload, the POST to the hook's destination, the vendor's
//! retry schedule (compressed by the store's time scale), and the log of attempts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::sync::Semaphore;

use super::events::Event;
use super::hooks::{hex, Hook};
use super::{fmt, lock, read, StoreState};

/// When the retries go out, in seconds after the first attempt (the vendor's schedule).
pub(crate) const RETRY_OFFSETS: [u64; 11] = [60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400];
/// How long a receiver has to answer an attempt.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts in flight at once, across the simulator: bounds sockets, not the queue.
const MAX_IN_FLIGHT: usize = 64;
/// Deliveries alive at once (sending or waiting for a retry); past it events are dropped
/// and the drop is logged, so a flood cannot take the process's memory.
const MAX_PENDING: usize = 50_000;
/// Attempts kept in a store's log.
pub(crate) const LOG_SIZE: usize = 10_000;
/// Bytes of a receiver's answer read (so the connection can be reused) before giving up on it.
const MAX_ANSWER: usize = 64 * 1024;

/// One delivery attempt of a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub hook_id: u64,
    pub scope: String,
    /// The `data.id` of the payload: the order, product or customer id.
    pub object_id: u64,
    /// 1 for the first attempt, up to 12; 0 for an event dropped before any attempt.
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer (`timeout`, `connection failed`, ...), when there was none.
    pub error: Option<String>,
    /// When the attempt started.
    pub at: SystemTime,
}

impl Delivery {
    /// Whether the receiver acknowledged it (any 2xx).
    pub fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What every delivery of a simulator shares: the HTTP client and the bounds.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
}

impl Dispatcher {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("switchyard-sandbox-webhooks")
            .build()
            .unwrap_or_default();
        Dispatcher { client, slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)), pending: Arc::new(AtomicUsize::new(0)) }
    }

    /// Sends `events` to the store's matching active hooks, each delivery on its own task.
    /// Must run inside a Tokio runtime (it is called by the request handlers).
    pub(crate) fn fire(&self, store: &Arc<StoreState>, hash: &str, events: Vec<Event>) {
        let hooks: Vec<Hook> = lock(&store.hooks).values().filter(|h| h.is_active).cloned().collect();
        if hooks.is_empty() || events.is_empty() {
            return;
        }
        let store_id = read(&store.data).info.store_id;
        let now = fmt::now();
        for e in &events {
            let targets: Vec<&Hook> = hooks.iter().filter(|h| e.matches(&h.scope)).collect();
            if targets.is_empty() {
                continue;
            }
            let body = payload(e, hash, store_id, now);
            for h in targets {
                let Some(guard) = Pending::take(&self.pending) else {
                    let at = SystemTime::now();
                    let error = Some("dropped: too many deliveries pending".to_string());
                    record(store, Delivery { hook_id: h.id, scope: e.scope.into(), object_id: e.id, attempt: 0, status: None, error, at });
                    continue;
                };
                let job = Job { hook_id: h.id, scope: e.scope, object_id: e.id, body: body.clone() };
                tokio::spawn(self.clone().deliver(Arc::downgrade(store), job, guard));
            }
        }
    }

    /// The first attempt and the retries of one payload to one hook. Stops when the
    /// receiver acknowledges, when the hook is deleted or switched off, or when the store
    /// is gone; after the last failed retry the hook is switched off, as by the vendor.
    async fn deliver(self, store: Weak<StoreState>, job: Job, _pending: Pending) {
        let start = Instant::now();
        for attempt in 1..=(RETRY_OFFSETS.len() as u32 + 1) {
            if attempt > 1 {
                let Some(scale) = store.upgrade().map(|s| read(&s.cfg).webhook_time_scale) else { return };
                let offset = RETRY_OFFSETS[attempt as usize - 2] as f64;
                tokio::time::sleep_until((start + scaled(offset, scale)).into()).await;
            }
            // The hook as it is now: it may have been changed, switched off or deleted.
            let Some(hook) = store.upgrade().and_then(|s| lock(&s.hooks).get(&job.hook_id).filter(|h| h.is_active).cloned()) else {
                return;
            };
            let at = SystemTime::now();
            let outcome = self.post(&hook, job.body.clone()).await;
            let Some(s) = store.upgrade() else { return };
            let (status, error) = match outcome {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            };
            let d = Delivery { hook_id: job.hook_id, scope: job.scope.into(), object_id: job.object_id, attempt, status, error, at };
            let done = d.acknowledged();
            record(&s, d);
            if done {
                return;
            }
        }
        if let Some(s) = store.upgrade() {
            if let Some(h) = lock(&s.hooks).get_mut(&job.hook_id) {
                h.is_active = false;
                h.updated_at = fmt::now();
            }
        }
    }

    /// One POST: the receiver's status, or why there is none.
    async fn post(&self, hook: &Hook, body: Bytes) -> Result<u16, String> {
        let _slot = self.slots.acquire().await.map_err(|_| "shutting down".to_string())?;
        let mut req = self.client.post(&hook.destination).header(CONTENT_TYPE, "application/json").body(body);
        for (name, value) in hook.headers.iter().flatten() {
            // Checked when the hook was written; anything else is skipped, never sent half-formed.
            if let (Ok(n), Some(Ok(v))) = (HeaderName::from_bytes(name.as_bytes()), value.as_str().map(HeaderValue::from_str)) {
                req = req.header(n, v);
            }
        }
        let mut resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let mut read = 0;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER {
                break;
            }
        }
        Ok(status)
    }
}

/// What one delivery task carries.
struct Job {
    hook_id: u64,
    scope: &'static str,
    object_id: u64,
    body: Bytes,
}

/// A slot among the [`MAX_PENDING`] deliveries, given back when the task ends (or is dropped).
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn take(count: &Arc<AtomicUsize>) -> Option<Pending> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_PENDING).then_some(n + 1)).ok()?;
        Some(Pending(count.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `seconds * scale` as a duration; a scale that is not a finite non-negative number
/// counts as 1 (the control API and the setter refuse those anyway).
fn scaled(seconds: f64, scale: f64) -> Duration {
    let scale = if scale.is_finite() && scale >= 0.0 { scale } else { 1.0 };
    Duration::try_from_secs_f64(seconds * scale).unwrap_or(Duration::MAX)
}

/// The callback body: `hash` is the SHA-1 of `data` as JSON, so a retry (or another hook
/// of the same event) carries the same hash.
fn payload(e: &Event, hash: &str, store_id: u64, now: i64) -> Bytes {
    let data = e.data();
    let digest = Sha1::digest(data.to_string().as_bytes());
    let body = json!({
        "created_at": now,
        "store_id": store_id.to_string(),
        "producer": format!("stores/{hash}"),
        "scope": e.scope,
        "hash": hex(&digest),
        "data": data,
    });
    Bytes::from(body.to_string())
}

/// The reason for a failed attempt, without the URL (it may carry a receiver's secret).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

fn record(store: &StoreState, d: Delivery) {
    let mut log = lock(&store.deliveries);
    if log.len() >= LOG_SIZE {
        log.pop_front();
    }
    log.push_back(d);
}

/// The store's delivery log, oldest first.
pub(crate) fn log(store: &StoreState) -> Vec<Delivery> {
    lock(&store.deliveries).iter().cloned().collect()
}

pub(crate) type Log = VecDeque<Delivery>;

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::events;

    #[test]
    fn payload_shape_and_hash() {
        let e = Event::new(events::ORDER_CREATED, 250);
        let v: serde_json::Value = serde_json::from_slice(&payload(&e, "abc123", 1025646, 1561482670)).unwrap();
        assert_eq!(v["store_id"], "1025646");
        assert_eq!(v["producer"], "stores/abc123");
        assert_eq!(v["scope"], "store/order/created");
        assert_eq!(v["created_at"], 1561482670);
        assert_eq!(v["data"], json!({"type": "order", "id": 250}));
        // SHA-1 of `{"type":"order","id":250}`, from `sha1sum`.
        assert_eq!(v["hash"], "6562e2e63c263f14480da44c6dba0e868d10fa8d");
    }

    #[test]
    fn scaling() {
        assert_eq!(scaled(60.0, 0.001), Duration::from_millis(60));
        assert_eq!(scaled(60.0, 0.0), Duration::ZERO);
        assert_eq!(scaled(60.0, f64::NAN), Duration::from_secs(60));
        assert_eq!(scaled(60.0, -1.0), Duration::from_secs(60));
    }
}
