//! The event log's retention: events whose delivery is over (delivered, stopped
//! or failed) are deleted once their last attempt is older than the retention, and
//! the oldest of them beyond a per-instance and a global number of rows, in
//! batches, so the log and its jobs do not grow without end. Pending events stay,
//! whatever the caps. On SQLite the freed pages then go back to the file system.
//! The digests that recognise a vendor's repeated webhook calls go once they are
//! older than the dedupe window.
//!
//! Every server process runs the loop, but one at a time prunes: each period
//! starts by taking the [`LEASE`] for the whole period (never given back), so the
//! others skip it; if the pruning node dies, another prunes the next period.

use std::future::Future;
use std::time::Duration;

use switchyard_store::Store;

use crate::now_ms;

#[derive(Debug, Clone)]
pub struct Retention {
    /// How long a finished event stays in the log.
    pub keep: Duration,
    /// How often old events are looked for.
    pub every: Duration,
    /// Events deleted per statement (one short write transaction each).
    pub batch: i64,
    /// Events the whole log keeps at most (`serve --event-log-max-rows`): past
    /// it the oldest finished ones go.
    pub max_rows: u64,
    /// Events each instance keeps at most (`serve --event-log-max-rows-per-instance`).
    pub per_instance: u64,
    /// How long a vendor webhook call's digest is kept: a call sent again within
    /// this is a repeat (`serve --event-dedupe-hours`).
    pub dedupe: Duration,
}

/// Events the whole log keeps by default: a million (about 1.5 GB of 2.5 KB
/// records, at the sizes measured in docs/deploy.md).
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
/// Events each instance keeps by default.
pub const DEFAULT_PER_INSTANCE: u64 = 100_000;

/// How long a repeated vendor webhook call is recognised by default: 72 hours.
pub const DEFAULT_DEDUPE: Duration = Duration::from_secs(72 * 3600);

impl Default for Retention {
    /// Seven days, as the call log, and [`DEFAULT_MAX_ROWS`] and
    /// [`DEFAULT_PER_INSTANCE`] events; digests for 72 hours; looked at every ten minutes.
    fn default() -> Self {
        Retention {
            keep: Duration::from_secs(7 * 86_400),
            every: Duration::from_secs(600),
            batch: 5_000,
            max_rows: DEFAULT_MAX_ROWS,
            per_instance: DEFAULT_PER_INSTANCE,
            dedupe: DEFAULT_DEDUPE,
        }
    }
}

/// The name of the lease that lets one node prune per period.
pub const LEASE: &str = "retention";

/// Deletes every finished event older than the retention, then the oldest
/// finished ones beyond the caps, and the webhook call digests older than the
/// dedupe window; gives the space back (SQLite); how many events went.
pub async fn prune_once(store: &Store, retention: &Retention) -> Result<u64, switchyard_store::StoreError> {
    let now = now_ms();
    let digests_before = now - retention.dedupe.as_millis() as i64;
    while store.prune_webhook_digests(digests_before, retention.batch).await? >= retention.batch as u64 {
        tokio::task::yield_now().await;
    }
    let before = now - retention.keep.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = store.prune_events(before, retention.batch).await?;
        total += n;
        if n < retention.batch as u64 {
            break;
        }
        // Let other writers in between batches.
        tokio::task::yield_now().await;
    }
    total += store.prune_events_over(retention.max_rows, retention.per_instance, retention.batch).await?;
    store.reclaim_space().await?;
    Ok(total)
}

/// Prunes at start and then every `retention.every` until `shutdown` completes,
/// in the periods this node holds the [`LEASE`] for.
pub async fn run(store: Store, retention: Retention, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let now = now_ms();
        match store.take_lease(LEASE, now, now + retention.every.as_millis() as i64).await {
            Ok(true) => match prune_once(&store, &retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned finished events past the retention"),
                Err(e) => tracing::warn!(error = %e, "pruning the event log failed; trying again later"),
            },
            Ok(false) => tracing::debug!("another node prunes the event log this period"),
            Err(e) => tracing::warn!(error = %e, "taking the pruning lease failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retention.every) => {}
            _ = &mut shutdown => return,
        }
    }
}
