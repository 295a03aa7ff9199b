//! The delivery worker: claims due jobs with a lease, POSTs the signed message to
//! the instance's callback URL, and writes the outcomes back in batches.
//!
//! No lock is held while a request is in flight: the claim (`UPDATE ... RETURNING`
//! that sets `lease_until`) commits first. A worker that dies leaves leases that
//! run out, and the jobs are claimed again: at-least-once. Outcomes of finished
//! requests are collected by one committer task and written many to a
//! transaction, so SQLite commits stay few under load.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchyard_engine::client::{VendorClient, VendorError, VendorRequest};
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_store::{ClaimedDelivery, DeliveryOutcome, DeliveryState};
use tokio::sync::{mpsc, Semaphore};

use crate::config::EventConfig;
use crate::message::message_body;
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::sign::{elements_signature, standard_webhooks_signature};
use crate::{now_ms, Context, EventWaker, EventsError, HubLister};

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub retry: RetryPolicy,
    /// A callback that has not answered (headers and body) by then is a failed attempt.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Jobs claimed per query.
    pub batch: usize,
    /// Longest sleep between two looks at the database when nothing is due (other
    /// processes may have queued events; redeliver calls queue them too).
    pub idle_poll: Duration,
    /// Bytes of a callback's answer read at most; a longer answer is a failure.
    pub max_response_body: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(15),
            concurrency: 64,
            batch: 256,
            idle_poll: Duration::from_secs(1),
            max_response_body: 64 * 1024,
        }
    }
}

impl DeliverySettings {
    /// How long a claim holds a job: the request timeout twice over (the request,
    /// then the wait for the batched commit) plus a margin.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// The delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Context,
    client: VendorClient,
    settings: DeliverySettings,
    waker: EventWaker,
    /// Reads the records that vendor webhooks name (see [`Deliverer::enriching_with`]).
    hub: Option<Arc<dyn HubLister>>,
}

impl Deliverer {
    /// A worker whose callback requests go through `policy` (the server's outbound
    /// policy: private and loopback addresses refused unless allow-listed).
    pub fn new(ctx: Context, policy: OutboundPolicy, settings: DeliverySettings) -> Deliverer {
        let client = VendorClient::new(policy, settings.timeout);
        Deliverer { inner: Arc::new(Inner { ctx, client, settings, waker: EventWaker::default(), hub: None }) }
    }

    /// The same worker, reading through `hub` the records that vendor webhooks'
    /// thin payloads name. Without it, such events go out with the payload as is.
    pub fn enriching_with(self, hub: Arc<dyn HubLister>) -> Deliverer {
        let i = &self.inner;
        let inner = Inner {
            ctx: i.ctx.clone(),
            client: i.client.clone(),
            settings: i.settings.clone(),
            waker: i.waker.clone(),
            hub: Some(hub),
        };
        Deliverer { inner: Arc::new(inner) }
    }

    /// Wakes this worker; hand it to whatever stores events in this process.
    pub fn waker(&self) -> EventWaker {
        self.inner.waker.clone()
    }

    pub fn settings(&self) -> &DeliverySettings {
        &self.inner.settings
    }

    /// One step: claims up to one batch of due jobs, attempts them all, writes the
    /// outcomes. Returns how many jobs were attempted.
    pub async fn run_once(&self) -> Result<usize, EventsError> {
        let claimed = self.claim(self.inner.settings.batch).await?;
        let n = claimed.len();
        let prepared = self.prepare(claimed).await;
        let outcomes = futures::future::join_all(prepared.into_iter().map(|(job, cfg, stopped)| {
            let this = self.clone();
            async move { this.attempt(job, cfg, stopped).await }
        }))
        .await;
        self.inner.ctx.store.finish_deliveries(&outcomes).await?;
        Ok(n)
    }

    /// Runs until `shutdown` completes, then lets requests in flight finish and
    /// writes their outcomes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let settings = self.inner.settings.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let committer = tokio::spawn(commit_outcomes(self.clone(), rx));
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            let free = slots.available_permits().min(settings.batch);
            if free == 0 {
                tokio::select! {
                    permit = slots.acquire() => drop(permit),
                    _ = &mut shutdown => break,
                }
                continue;
            }
            let claimed = match self.claim(free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming event deliveries failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(settings.idle_poll) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            };
            let full = claimed.len() == free;
            for (job, cfg, stopped) in self.prepare(claimed).await {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let (this, tx) = (self.clone(), tx.clone());
                tokio::spawn(async move {
                    let outcome = this.attempt(job, cfg, stopped).await;
                    let _ = tx.send(outcome);
                    drop(permit);
                });
            }
            if full {
                continue;
            }
            let wait = match self.inner.ctx.store.next_delivery_due().await {
                Ok(Some(due)) => Duration::from_millis((due - now_ms()).max(0) as u64).min(settings.idle_poll),
                _ => settings.idle_poll,
            };
            tokio::select! {
                _ = self.inner.waker.woken() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = &mut shutdown => break,
            }
        }
        // Requests in flight finish (each bounded by the timeout), then their outcomes are written.
        let _ = slots.acquire_many(settings.concurrency.max(1) as u32).await;
        drop(tx);
        let _ = committer.await;
    }

    async fn claim(&self, limit: usize) -> Result<Vec<ClaimedDelivery>, EventsError> {
        let now = now_ms();
        let lease = self.inner.settings.lease().as_millis() as i64;
        Ok(self.inner.ctx.store.claim_deliveries(now, now + lease, limit as i64).await?)
    }

    /// Each job with its instance's configuration (read once per instance per
    /// batch, fresh from the database) and whether its URL was stopped by a 410.
    async fn prepare(&self, claimed: Vec<ClaimedDelivery>) -> Vec<(ClaimedDelivery, Arc<Result<EventConfig, String>>, bool)> {
        let ctx = &self.inner.ctx;
        let mut configs: HashMap<i64, Arc<Result<EventConfig, String>>> = HashMap::new();
        for job in &claimed {
            if configs.contains_key(&job.instance_id) {
                continue;
            }
            let def = ctx.catalog.get(&job.element_key).cloned();
            let cfg = EventConfig::load(ctx, def.as_deref(), job.instance_id).await.map_err(|e| e.to_string());
            configs.insert(job.instance_id, Arc::new(cfg));
        }
        let ids: Vec<i64> = configs.keys().copied().collect();
        let stopped: HashSet<(i64, String)> = match ctx.store.stopped_callbacks(&ids).await {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading stopped callbacks failed");
                HashSet::new()
            }
        };
        claimed
            .into_iter()
            .map(|job| {
                let cfg = configs[&job.instance_id].clone();
                let is_stopped = match cfg.as_ref() {
                    Ok(c) => c.callback_url.as_ref().is_some_and(|u| stopped.contains(&(job.instance_id, u.clone()))),
                    Err(_) => false,
                };
                (job, cfg, is_stopped)
            })
            .collect()
    }

    /// One attempt at one job.
    async fn attempt(&self, job: ClaimedDelivery, cfg: Arc<Result<EventConfig, String>>, stopped: bool) -> DeliveryOutcome {
        let started = now_ms();
        let cfg = match cfg.as_ref() {
            Ok(c) => c,
            Err(e) => return self.failure(&job, started, None, format!("the instance configuration could not be read: {e}"), None),
        };
        let Some(url) = cfg.callback_url.clone() else {
            return self.failure(&job, started, None, "no event.notification.callback.url is configured".into(), None);
        };
        if stopped {
            return DeliveryOutcome {
                last_error: Some("the callback URL answered 410 Gone before; delivery to it is stopped".into()),
                ..outcome(&job, DeliveryState::Stopped, job.attempts, started)
            };
        }
        // A vendor webhook's thin payload becomes the record, read through the hub,
        // before the first attempt; a read that fails is a failed attempt.
        let enriched = if job.status == "RECEIVED" {
            match self.enrich(&job).await {
                Ok(raw) => Some(raw),
                Err(error) => return self.failure(&job, started, None, error, None),
            }
        } else {
            None
        };
        let raw = enriched.as_deref().unwrap_or(&job.raw);
        let body = message_body(&job.event_id, job.instance_id, &job.element_key, &job.notified_data, raw);
        let mut request = VendorRequest::new(http::Method::POST, url.clone())
            .header("Content-Type", "application/json")
            .header("Elements-Webhook-Id", job.event_id.clone());
        if let Some(key) = &cfg.signature_key {
            let timestamp = started / 1000;
            request = request
                .header("Elements-Webhook-Signature", elements_signature(key.expose(), &body))
                .header("webhook-id", job.event_id.clone())
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", standard_webhooks_signature(key.expose(), &job.event_id, timestamp, &body));
        }
        request.max_body = self.inner.settings.max_response_body;
        request.body = Some(body.into());
        let sent = job.attempts + 1;
        let done = match self.inner.client.send(request).await {
            Ok(r) if (200..300).contains(&r.status) => {
                DeliveryOutcome { last_status: Some(r.status.into()), ..outcome(&job, DeliveryState::Delivered, sent, started) }
            }
            Ok(r) if r.status == 410 => DeliveryOutcome {
                last_status: Some(410),
                last_error: Some("the callback URL answered 410 Gone; delivery to it is stopped".into()),
                stop_url: Some(url),
                ..outcome(&job, DeliveryState::Stopped, sent, started)
            },
            Ok(r) => {
                let retry_after = r
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                let message = format!("the callback answered {}", r.status);
                self.failure(&job, started, Some(r.status.into()), message, retry_after)
            }
            // Judged now, after DNS (by the client's resolver) and at every redirect:
            // the name may point elsewhere later, or the operator allow it, so a
            // refusal is a failed attempt like any other, retried on the schedule.
            Err(VendorError::Refused(p)) => {
                self.failure(&job, started, None, format!("the callback URL is refused by the outbound policy: {p}"), None)
            }
            Err(e) => self.failure(&job, started, None, e.to_string(), None),
        };
        DeliveryOutcome { raw: enriched, ..done }
    }

    /// `message.raw` for a vendor webhook's event: the record read through the hub
    /// with `objectType` added, or the stored thin payload when there is nothing to
    /// read (a deletion, a record gone since, or no hub to read from).
    async fn enrich(&self, job: &ClaimedDelivery) -> Result<String, String> {
        let Some(hub) = &self.inner.hub else {
            return Ok(job.raw.clone());
        };
        let events: Vec<serde_json::Value> = serde_json::from_str(&job.notified_data).unwrap_or_default();
        let Some(event) = events.first() else {
            return Ok(job.raw.clone());
        };
        let field = |name: &str| event.get(name).and_then(serde_json::Value::as_str).unwrap_or_default();
        let (event_type, object, id) = (field("eventType"), field("objectType"), field("objectId"));
        if event_type == "DELETED" || object.is_empty() || id.is_empty() {
            return Ok(job.raw.clone());
        }
        match hub.get_record(job.organization_id, job.instance_id, object, id).await {
            Ok(Some(serde_json::Value::Object(mut record))) => {
                record.insert("objectType".into(), object.into());
                Ok(serde_json::Value::Object(record).to_string())
            }
            Ok(_) => Ok(job.raw.clone()),
            Err(e) => Err(format!("reading {object} {id} through the hub failed: {e}")),
        }
    }

    /// A failed attempt: retried on the schedule, or `failed` when none is left.
    fn failure(
        &self,
        job: &ClaimedDelivery,
        started: i64,
        status: Option<i64>,
        error: String,
        retry_after: Option<Duration>,
    ) -> DeliveryOutcome {
        let policy = &self.inner.settings.retry;
        let failed = (job.attempts + 1) as u32;
        let (state, next) = if policy.exhausted(failed) {
            (DeliveryState::Failed, None)
        } else {
            let delay = policy.delay(failed, retry_after, rand::thread_rng().gen::<f64>());
            (DeliveryState::Pending, Some(now_ms() + delay.as_millis() as i64))
        };
        tracing::debug!(event = %job.event_id, attempt = failed, %error, "event delivery failed");
        DeliveryOutcome {
            next_attempt_at: next,
            last_status: status,
            last_error: Some(error),
            ..outcome(job, state, failed.into(), started)
        }
    }
}

/// An attempt's outcome with nothing but its state and count set.
fn outcome(job: &ClaimedDelivery, state: DeliveryState, attempts: i64, started: i64) -> DeliveryOutcome {
    DeliveryOutcome {
        event_row: job.event_row,
        lease_until: job.lease_until,
        state,
        attempts,
        next_attempt_at: None,
        last_status: None,
        last_error: None,
        attempted_at: started,
        stop_url: None,
        raw: None,
    }
}

/// Writes outcomes as they arrive, as many per transaction as are waiting.
async fn commit_outcomes(deliverer: Deliverer, mut rx: mpsc::UnboundedReceiver<DeliveryOutcome>) {
    const MAX_BATCH: usize = 1024;
    let store = &deliverer.inner.ctx.store;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        // A write that keeps failing is given up: the leases run out and the jobs
        // are attempted again, so nothing is lost (a receiver may see a duplicate).
        for attempt in 1..=5u32 {
            match store.finish_deliveries(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "writing delivery outcomes failed");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        // Retries may now be due sooner than the worker's current sleep.
        deliverer.inner.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live worker is never overtaken: its claim lasts the request, the wait for
    /// the batched commit (each up to the timeout) and a margin, and no longer, so a
    /// dead worker's attempt is taken over soon after.
    #[test]
    fn a_claim_outlasts_a_live_attempt_by_five_seconds() {
        for secs in [1, 10, 30] {
            let settings = DeliverySettings { timeout: Duration::from_secs(secs), ..Default::default() };
            assert_eq!(settings.lease(), Duration::from_secs(2 * secs + 5), "timeout {secs} s");
        }
    }
}
