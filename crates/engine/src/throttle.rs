//! Per-instance traffic limits: a concurrency cap and a pause while the vendor's quota
//! for that account is used up.
//!
//! Each instance has its own gate, so a throttled store waits alone while other
//! instances go on. The map from instance to gate sits behind a mutex held only for a
//! lookup (never across an await); the waiting happens on the gate itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Concurrent vendor calls per instance unless configured: BigCommerce allows a few
/// parallel requests per store, and more only burns the quota faster.
pub const DEFAULT_PER_INSTANCE: usize = 8;

/// Gates kept before idle ones are dropped (a bound on memory, not on instances).
const GATES_BEFORE_SWEEP: usize = 4096;

struct Gate {
    permits: Arc<Semaphore>,
    /// No call starts before this instant (the vendor's quota reset).
    resume_at: Mutex<Option<Instant>>,
}

/// The gates of all instances. Cheap to clone.
#[derive(Clone)]
pub struct InstanceLimits {
    per_instance: usize,
    gates: Arc<Mutex<HashMap<i64, Arc<Gate>>>>,
}

impl std::fmt::Debug for InstanceLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceLimits").field("per_instance", &self.per_instance).finish()
    }
}

/// Waiting for the instance would outlast the caller's time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// How long the instance is still paused (zero when the wait was for a free slot).
    pub paused_for: Duration,
}

/// A slot to call the vendor for one instance; freed on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves the data whole; a panic elsewhere must not stop calls.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InstanceLimits {
    /// At most `per_instance` concurrent calls per instance (at least 1).
    pub fn new(per_instance: usize) -> Self {
        InstanceLimits { per_instance: per_instance.max(1), gates: Arc::default() }
    }

    fn gate(&self, instance: i64) -> Arc<Gate> {
        let mut gates = lock(&self.gates);
        if gates.len() >= GATES_BEFORE_SWEEP && !gates.contains_key(&instance) {
            let now = Instant::now();
            gates.retain(|_, g| {
                let busy = g.permits.available_permits() < self.per_instance;
                let paused = lock(&g.resume_at).is_some_and(|t| t > now);
                busy || paused || Arc::strong_count(g) > 1
            });
        }
        gates
            .entry(instance)
            .or_insert_with(|| {
                Arc::new(Gate { permits: Arc::new(Semaphore::new(self.per_instance)), resume_at: Mutex::new(None) })
            })
            .clone()
    }

    /// Waits for a free slot of `instance` and for the end of its quota pause; gives up
    /// if either would pass `deadline`, or at once when the pause has more than
    /// `longest_pause` left (the longest wait a caller is held for a vendor's "slow
    /// down", as a retry would be: [`crate::RetryPolicy::max_vendor_wait`]).
    pub async fn acquire(&self, instance: i64, deadline: Instant, longest_pause: Duration) -> Result<Slot, OverBudget> {
        let gate = self.gate(instance);
        let permit = tokio::time::timeout_at(deadline, gate.permits.clone().acquire_owned())
            .await
            .map_err(|_| OverBudget { paused_for: Duration::ZERO })?
            .expect("the semaphore is never closed");
        // The pause can be extended while we sleep (another call saw a fresh reset), so look again.
        loop {
            let resume = *lock(&gate.resume_at);
            let now = Instant::now();
            match resume {
                Some(t) if t > now => {
                    if t > deadline || t - now > longest_pause {
                        return Err(OverBudget { paused_for: t - now });
                    }
                    tokio::time::sleep_until(t).await;
                }
                _ => return Ok(Slot { _permit: permit }),
            }
        }
    }

    /// Pauses `instance` for `wait` from now (a later pause already set is kept).
    pub fn pause(&self, instance: i64, wait: Duration) {
        let gate = self.gate(instance);
        let until = Instant::now() + wait;
        let mut resume = lock(&gate.resume_at);
        if resume.is_none_or(|t| t < until) {
            *resume = Some(until);
        }
    }

    /// How long `instance` is still paused.
    pub fn paused_for(&self, instance: i64) -> Duration {
        let gate = self.gate(instance);
        let resume = *lock(&gate.resume_at);
        resume.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default()
    }
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits::new(DEFAULT_PER_INSTANCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No bound on the pause but the deadline.
    const FOREVER: Duration = Duration::from_secs(u32::MAX as u64);

    #[tokio::test(start_paused = true)]
    async fn a_paused_instance_waits_while_others_proceed() {
        let limits = InstanceLimits::new(2);
        limits.pause(1, Duration::from_secs(5));
        let far = Instant::now() + Duration::from_secs(60);
        // Instance 2 is not held up by instance 1's pause.
        let before = Instant::now();
        drop(limits.acquire(2, far, FOREVER).await.unwrap());
        assert_eq!(Instant::now(), before);
        // Instance 1 starts only once its pause is over (virtual time).
        drop(limits.acquire(1, far, FOREVER).await.unwrap());
        assert!(Instant::now() >= before + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_past_the_deadline_is_refused_at_once() {
        let limits = InstanceLimits::new(2);
        limits.pause(7, Duration::from_secs(20));
        let err = limits.acquire(7, Instant::now() + Duration::from_secs(3), FOREVER).await.unwrap_err();
        assert!(err.paused_for > Duration::from_secs(19));
        // A shorter pause never replaces a longer one; a longer one extends it.
        limits.pause(7, Duration::from_secs(1));
        assert!(limits.paused_for(7) > Duration::from_secs(19));
        limits.pause(7, Duration::from_secs(40));
        assert_eq!(limits.paused_for(7), Duration::from_secs(40));
    }

    /// A pause within the deadline but longer than the longest hold is refused at
    /// once, as the call that met the vendor's 429 was: a caller is never held longer
    /// for a pause than the first one was for the same "slow down".
    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_longest_hold_is_refused_at_once() {
        let limits = InstanceLimits::new(2);
        limits.pause(3, Duration::from_secs(45));
        let far = Instant::now() + Duration::from_secs(60);
        let before = Instant::now();
        let err = limits.acquire(3, far, Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(Instant::now(), before, "not held");
        assert!(err.paused_for > Duration::from_secs(44), "{err:?}");
        // A pause that fits is waited out.
        limits.pause(4, Duration::from_secs(20));
        drop(limits.acquire(4, far, Duration::from_secs(30)).await.unwrap());
        assert!(Instant::now() >= before + Duration::from_secs(20));
        // So is one exactly as long as the longest hold, or ending exactly at the deadline.
        limits.pause(5, Duration::from_secs(30));
        drop(limits.acquire(5, far, Duration::from_secs(30)).await.unwrap());
        limits.pause(6, Duration::from_secs(3));
        drop(limits.acquire(6, Instant::now() + Duration::from_secs(3), FOREVER).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_is_per_instance() {
        let limits = InstanceLimits::new(2);
        let far = Instant::now() + Duration::from_secs(60);
        let a = limits.acquire(1, far, FOREVER).await.unwrap();
        let _b = limits.acquire(1, far, FOREVER).await.unwrap();
        // A third slot of instance 1 is not free before the deadline...
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(limits.acquire(1, soon, FOREVER).await.unwrap_err().paused_for, Duration::ZERO);
        // ... while instance 2 has its own slots.
        let _c = limits.acquire(2, far, FOREVER).await.unwrap();
        drop(a);
        let _d = limits.acquire(1, far, FOREVER).await.unwrap();
    }

    /// With `GATES_BEFORE_SWEEP` instances known, the next new one sweeps the gates nobody
    /// needs: an instance with a call in flight keeps its cap, a paused one its pause.
    #[tokio::test(start_paused = true)]
    async fn the_sweep_drops_only_idle_gates() {
        let limits = InstanceLimits::new(2);
        let far = Instant::now() + Duration::from_secs(60);
        let held = limits.acquire(1, far, FOREVER).await.unwrap();
        limits.pause(2, Duration::from_secs(30));
        // Time stands still in this test: a pause ending now is over.
        limits.pause(3, Duration::ZERO);
        let bound = GATES_BEFORE_SWEEP as i64;
        for id in 4..=bound {
            drop(limits.acquire(id, far, FOREVER).await.unwrap());
        }
        let count = || lock(&limits.gates).len();
        assert_eq!(count(), GATES_BEFORE_SWEEP);
        // A known instance never sweeps; the first new one past the bound does.
        limits.paused_for(1);
        assert_eq!(count(), GATES_BEFORE_SWEEP);
        limits.paused_for(bound + 1);
        let mut kept: Vec<i64> = lock(&limits.gates).keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [1, 2, bound + 1]);
        assert_eq!(limits.paused_for(2), Duration::from_secs(30));
        // Instance 1's cap holds across the sweep: one slot of two is left.
        let _second = limits.acquire(1, far, FOREVER).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(limits.acquire(1, soon, FOREVER).await.unwrap_err().paused_for, Duration::ZERO);
        drop(held);
    }
}
