//! Writes the vendor call log off the request path: handlers hand entries to a channel,
//! one task writes them in batches (one transaction each) and prunes old rows.

use std::time::Duration;

use switchyard_store::{NewCall, Store};
use tokio::sync::mpsc;

/// How long log rows and what else the writer prunes are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Rows older than this are removed.
    pub max_age: Duration,
    /// Each instance keeps at most this many newest rows
    /// (`serve --call-log-max-rows-per-instance`).
    pub per_instance: u64,
    /// The whole log keeps at most this many newest rows (`serve --call-log-max-rows`).
    pub max_rows: u64,
    /// How often pruning runs.
    pub every: Duration,
}

impl Default for Retention {
    /// 7 days, [`DEFAULT_PER_INSTANCE`] rows per instance and [`DEFAULT_MAX_ROWS`]
    /// in all, pruned every 10 minutes.
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            per_instance: DEFAULT_PER_INSTANCE,
            max_rows: DEFAULT_MAX_ROWS,
            every: Duration::from_secs(600),
        }
    }
}

/// Rows each instance keeps by default.
pub const DEFAULT_PER_INSTANCE: u64 = 10_000;
/// Rows the whole log keeps by default: five million (about 0.7 GB on SQLite,
/// 1.2 GB on PostgreSQL, at the sizes measured in docs/deploy.md).
pub const DEFAULT_MAX_ROWS: u64 = 5_000_000;

/// Entries waiting to be written; past this the newest are dropped (and counted in the
/// server log) rather than slowing hub calls or growing without bound.
const QUEUE: usize = 10_000;
/// Entries written per transaction at most.
const BATCH: usize = 500;
/// The lease that lets one node at a time prune the call log.
pub const PRUNE_LEASE: &str = "call-log.retention";
/// Pause between writes of the log.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// The sending side; cheap to clone.
#[derive(Clone, Debug)]
pub struct CallLog {
    tx: mpsc::Sender<Entry>,
}

/// What the writer is sent: a call to log, or a request to say when all sent
/// before it are written.
#[derive(Debug)]
enum Entry {
    Call(NewCall),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl CallLog {
    /// Starts the writer task on the current tokio runtime. It ends when every
    /// `CallLog` clone is dropped, after writing what is queued.
    pub fn spawn(store: Store, retention: Retention) -> CallLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(store, retention, rx));
        CallLog { tx }
    }

    /// Queues one entry; never waits.
    pub fn record(&self, call: NewCall) {
        if self.tx.try_send(Entry::Call(call)).is_err() {
            tracing::warn!("vendor call log queue full or closed; entry dropped");
        }
    }

    /// Waits until every entry recorded before this call is written (before the
    /// database closes at shutdown).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(Entry::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_loop(store: Store, retention: Retention, mut rx: mpsc::Receiver<Entry>) {
    let mut prune = tokio::time::interval(retention.every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut received = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut received, BATCH) => {
                if n == 0 {
                    return;
                }
                let mut flushes = Vec::new();
                for entry in received.drain(..) {
                    match entry {
                        Entry::Call(call) => batch.push(call),
                        Entry::Flush(done) => flushes.push(done),
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = store.record_calls(&batch).await {
                        tracing::warn!(error = %e, dropped = batch.len(), "could not write the vendor call log");
                    }
                }
                batch.clear();
                for done in flushes {
                    let _ = done.send(());
                }
                // Let calls gather: under load a few large writes cost far less than
                // many small ones, and a log line this late is still in time.
                tokio::time::sleep(GATHER).await;
            }
            _ = prune.tick() => {
                // One server process on the database prunes per period (the lease is
                // kept for the period); the others skip it.
                let now = chrono::Utc::now().timestamp_millis();
                match store.take_lease(PRUNE_LEASE, now, now + retention.every.as_millis() as i64).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not take the call log's pruning lease");
                        continue;
                    }
                }
                let pruned = match store.prune_calls(retention.max_age, retention.per_instance).await {
                    Ok(n) => store.prune_calls_over(retention.max_rows).await.map(|m| n + m),
                    Err(e) => Err(e),
                };
                match pruned {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "pruned the vendor call log"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune the vendor call log"),
                }
                if let Err(e) = store.prune_idempotency().await {
                    tracing::warn!(error = %e, "could not prune expired idempotency keys");
                }
                // SQLite: the pages the rows held go back to the file system.
                if let Err(e) = store.reclaim_space().await {
                    tracing::warn!(error = %e, "could not give the database's free pages back");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use switchyard_store::{CallsFrom, NewInstance, Sealer};

    struct NoSeal;
    impl Sealer for NoSeal {
        fn seal(&self, _: i64, _: &str, plaintext: &str) -> (Vec<u8>, u32) {
            (plaintext.as_bytes().to_vec(), 1)
        }
    }

    /// At shutdown `serve` flushes the log before the database closes: every call
    /// recorded before the flush is written when it returns (the writer gathers for
    /// 20 ms, so without the flush none would be yet).
    #[tokio::test]
    async fn a_flush_returns_once_everything_recorded_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let (org, user) = store.create_organization("a", b"o", "a@x", b"u").await.unwrap();
        let new = NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: "shop".into(),
            token_hash: b"t".to_vec(),
            tags: vec![],
            events_enabled: false,
            webhook: None,
        };
        let instance = store.create_instance(&new, &[], &NoSeal).await.unwrap();
        let log = CallLog::spawn(store.clone(), Retention::default());
        for n in 0..3 {
            log.record(NewCall {
                instance_id: instance,
                method: "GET".into(),
                path: format!("/orders/{n}"),
                query_names: vec![],
                status: Some(200),
                outcome: "answered".into(),
                duration_ms: 1,
                retries: 0,
                at: SystemTime::now(),
            });
        }
        log.flush().await;
        let calls = store.calls(org.id, instance, CallsFrom::Offset(0), 10).await.unwrap();
        assert_eq!(calls.len(), 3);
    }
}
