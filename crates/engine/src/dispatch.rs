//! One vendor call as the platform makes it: through the instance's gate, retried by
//! the [`RetryPolicy`], within the caller's time budget.

use std::time::{Duration, SystemTime};

use rand::Rng;
use switchyard_elements::Throttle;
use tokio::time::Instant;

use crate::client::{VendorClient, VendorError, VendorRequest, VendorResponse};
use crate::retry::{retry_after_wait, should_retry, throttle_pause, RetryPolicy};
use crate::throttle::InstanceLimits;

/// What became of a call: the last answer (or failure), and what it took.
#[derive(Debug)]
pub struct Dispatched {
    pub result: Result<VendorResponse, VendorError>,
    /// Attempts after the first.
    pub retries: u32,
    /// From the first wait for a slot to the last byte read.
    pub elapsed: Duration,
    /// When the result is a "slow down" (a throttled answer, or
    /// [`VendorError::Throttled`]): how long until the instance may call again,
    /// what the caller's `Retry-After` says.
    pub retry_after: Option<Duration>,
}

/// The client with retries and per-instance limits. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    client: VendorClient,
    retry: RetryPolicy,
    limits: InstanceLimits,
}

impl Dispatcher {
    pub fn new(client: VendorClient, retry: RetryPolicy, limits: InstanceLimits) -> Self {
        Dispatcher { client, retry, limits }
    }

    /// The underlying client (its policy decides what may be reached).
    pub fn client(&self) -> &VendorClient {
        &self.client
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends `req` for `instance` (`None`: a call with no instance yet, such as the
    /// credential check at creation, which has no gate), retrying as the policy says
    /// and reading "slow down" in the element's `throttle` dialect.
    ///
    /// Every answer is read for a pause ([`throttle_pause`]: whatever the vendor sent,
    /// else its documented window), which holds the whole instance: its other calls
    /// wait instead of hammering. A throttled answer is retried (the vendor did
    /// nothing) after that pause, unless the pause is longer than the policy's
    /// `max_vendor_wait` or would pass `deadline`: then it is the answer, with
    /// `retry_after` set. A pause already running past `deadline`, or longer than
    /// `max_vendor_wait` (what the call that met the "slow down" would have waited),
    /// gives [`VendorError::Throttled`] without calling the vendor.
    pub async fn send(&self, instance: Option<i64>, req: VendorRequest, deadline: Instant, throttle: &Throttle) -> Dispatched {
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let slot = match instance {
                Some(id) => match self.limits.acquire(id, deadline, self.retry.max_vendor_wait).await {
                    Ok(slot) => Some(slot),
                    Err(over) => {
                        let result = Err(VendorError::Throttled(over.paused_for));
                        return Dispatched { result, retries, elapsed: started.elapsed(), retry_after: Some(over.paused_for) };
                    }
                },
                None => None,
            };
            let result = match tokio::time::timeout_at(deadline, self.client.send(req.clone())).await {
                Ok(r) => r,
                Err(_) => Err(VendorError::Timeout),
            };
            drop(slot);
            let now = SystemTime::now();
            // One wait from whatever the vendor sent; it pauses the whole instance.
            let pause = result.as_ref().ok().and_then(|r| throttle_pause(throttle, r.status, &r.headers, now));
            if let (Some(id), Some(wait)) = (instance, pause) {
                self.limits.pause(id, wait);
            }
            let throttled = matches!(&result, Ok(r) if throttle.is_throttle(r.status));
            let done = |result, retries| {
                let retry_after = throttled.then(|| self.pause_left(instance, pause));
                Dispatched { result, retries, elapsed: started.elapsed(), retry_after }
            };
            if retries + 1 >= self.retry.max_attempts || !(throttled || should_retry(&req.method, &result)) {
                return done(result, retries);
            }
            let asked = match &result {
                Ok(_) if throttled => pause,
                // A 503 may say when to come back; a used-up quota is a floor too.
                Ok(r) => retry_after_wait(throttle, &r.headers, now).into_iter().chain(pause).max(),
                Err(_) => None,
            };
            let unit: f64 = rand::thread_rng().gen();
            let wait = self.retry.delay_for(retries, unit, asked);
            let Some(wait) = wait.filter(|w| Instant::now() + *w < deadline) else {
                // The vendor asks for longer than we wait, or the budget is spent: answer now.
                return done(result, retries);
            };
            tracing::debug!(retry = retries + 1, wait_ms = wait.as_millis() as u64, "retrying a vendor call");
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// How long until `instance` may call again: its pause (which another call may
    /// have made longer), else the wait this answer asked for.
    fn pause_left(&self, instance: Option<i64>, pause: Option<Duration>) -> Duration {
        instance.map(|id| self.limits.paused_for(id)).filter(|d| !d.is_zero()).or(pause).unwrap_or_default()
    }
}
