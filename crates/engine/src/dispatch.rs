//! One vendor call as the platform makes it: through the instance's gate, retried by
//! the [`RetryPolicy`], within the caller's time budget.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::client::{VendorClient, VendorError, VendorRequest, VendorResponse};
use crate::retry::{quota_reset, should_retry, vendor_wait, RetryPolicy};
use crate::throttle::InstanceLimits;

/// What became of a call: the last answer (or failure), and what it took.
#[derive(Debug)]
pub struct Dispatched {
    pub result: Result<VendorResponse, VendorError>,
    /// Attempts after the first.
    pub retries: u32,
    /// From the first wait for a slot to the last byte read.
    pub elapsed: Duration,
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
    /// credential check at creation, which has no gate), retrying as the policy says.
    ///
    /// A retry whose wait would pass `deadline` is not made: the last answer is
    /// returned instead. A quota pause that outlasts the deadline gives
    /// [`VendorError::Throttled`] without calling the vendor.
    pub async fn send(&self, instance: Option<i64>, req: VendorRequest, deadline: Instant) -> Dispatched {
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let slot = match instance {
                Some(id) => match self.limits.acquire(id, deadline).await {
                    Ok(slot) => Some(slot),
                    Err(over) => {
                        let result = Err(VendorError::Throttled(over.paused_for));
                        return Dispatched { result, retries, elapsed: started.elapsed() };
                    }
                },
                None => None,
            };
            let result = match tokio::time::timeout_at(deadline, self.client.send(req.clone())).await {
                Ok(r) => r,
                Err(_) => Err(VendorError::Timeout),
            };
            drop(slot);
            if let (Some(id), Ok(r)) = (instance, &result) {
                // A used-up quota or a 429 pauses the whole instance, not only this call.
                let pause = quota_reset(&r.headers).or_else(|| (r.status == 429).then(|| vendor_wait(&r.headers)).flatten());
                if let Some(wait) = pause {
                    self.limits.pause(id, wait);
                }
            }
            if retries + 1 >= self.retry.max_attempts || !should_retry(&req.method, &result) {
                return Dispatched { result, retries, elapsed: started.elapsed() };
            }
            let unit: f64 = rand::thread_rng().gen();
            let wait = self.retry.delay(retries, unit, result.as_ref().ok().map(|r| &r.headers));
            let Some(wait) = wait.filter(|w| Instant::now() + *w < deadline) else {
                // The vendor asks for longer than we wait, or the budget is spent: answer now.
                return Dispatched { result, retries, elapsed: started.elapsed() };
            };
            tracing::debug!(retry = retries + 1, wait_ms = wait.as_millis() as u64, "retrying a vendor call");
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }
}
