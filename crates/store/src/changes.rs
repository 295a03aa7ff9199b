//! Writes made by other nodes and processes, as the database tells of them. A
//! node drops what its caches hold for a change it hears of, so it can keep
//! opened instances and callers until they change.
//!
//! - PostgreSQL: `LISTEN switchyard_cache` (the NOTIFY triggers are in
//!   migrations_pg/0011), delivered as each write commits.
//! - SQLite: processes sharing one file read the change log that triggers append
//!   to (migrations/0014, `cache_changes`) once every [`SQLITE_READ_EVERY`], one
//!   indexed range read; the rows are pruned after [`SQLITE_KEEP`].
//!
//! A node hears its own writes too (it also forgets at once when it writes).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPool};
use sqlx::SqlitePool;

use crate::{Pool, Result, Store};

/// The channel the triggers notify on.
pub const CHANNEL: &str = "switchyard_cache";

/// Wait before connecting again after the listener's connection failed.
const RECONNECT_WAIT: Duration = Duration::from_millis(500);

/// How often a process on SQLite reads the change log: how long another
/// process's write may go unseen.
pub const SQLITE_READ_EVERY: Duration = Duration::from_secs(1);

/// How long SQLite's change log keeps a row. A process that has not read the log
/// for this long (it was stopped, or its reads failed) finds rows gone and
/// forgets everything ([`Change::Missed`]).
pub const SQLITE_KEEP: Duration = Duration::from_secs(600);

/// Change log rows read at once; more are read at the next turn without waiting.
const SQLITE_BATCH: i64 = 500;

/// One write some node committed, or the news that some may have gone unheard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The instance's row or configuration changed, or it was deleted.
    Instance(i64),
    /// An organization's or user's secret changed, or one was deleted.
    Callers,
    /// The vault canary was sealed again: the database has a new current key.
    Keys,
    /// One of the organization's transformations was written or deleted.
    Transformations(i64),
    /// The listening connection was lost (and is back, or being restored):
    /// notifications may have been missed, so forget everything.
    Missed,
}

impl Change {
    /// A notification's payload; `None` for one this build does not know.
    pub fn parse(payload: &str) -> Option<Change> {
        match payload {
            "callers" => Some(Change::Callers),
            "keys" => Some(Change::Keys),
            _ => {
                if let Some(org) = payload.strip_prefix("transformations:") {
                    return org.parse().ok().map(Change::Transformations);
                }
                payload.strip_prefix("instance:")?.parse().ok().map(Change::Instance)
            }
        }
    }
}

/// The changes other nodes (and CLI commands) commit, as they commit.
pub struct Changes(Source);

enum Source {
    Postgres { pool: PgPool, listener: Option<PgListener> },
    Sqlite(SqliteLog),
}

impl Store {
    /// Starts following changes. On PostgreSQL it connects now (one connection of
    /// its own, outside the pool's count); on SQLite it reads where the change log
    /// ends. Either way an error here means the database is unreachable.
    pub async fn listen_changes(&self) -> Result<Changes> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let listener = listen(pool).await?;
                Ok(Changes(Source::Postgres { pool: pool.clone(), listener: Some(listener) }))
            }
            Pool::Sqlite(pool) => {
                let last = SqliteLog::end(pool).await?;
                Ok(Changes(Source::Sqlite(SqliteLog {
                    pool: pool.clone(),
                    last,
                    pending: VecDeque::new(),
                    next_read: Instant::now() + SQLITE_READ_EVERY,
                    next_prune: Instant::now(),
                    failing: false,
                })))
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

impl Changes {
    /// The next change. Never fails: a lost connection or an unreadable log is
    /// [`Change::Missed`] (once when lost, once more when reading again), and
    /// reading is retried meanwhile.
    pub async fn next(&mut self) -> Change {
        match &mut self.0 {
            Source::Postgres { pool, listener } => next_notification(pool, listener).await,
            Source::Sqlite(log) => log.next().await,
        }
    }
}

async fn next_notification(pool: &PgPool, slot: &mut Option<PgListener>) -> Change {
    loop {
        let Some(listener) = slot else {
            match listen(pool).await {
                Ok(listener) => {
                    tracing::info!("listening for other nodes' changes again");
                    *slot = Some(listener);
                    return Change::Missed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' changes yet; caches expire on their own meanwhile");
                    tokio::time::sleep(RECONNECT_WAIT).await;
                    continue;
                }
            }
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => match Change::parse(notification.payload()) {
                Some(change) => return change,
                None => tracing::debug!(payload = notification.payload(), "ignored an unknown change notification"),
            },
            // sqlx reconnected (and listens again) after losing the connection.
            Ok(None) => {
                tracing::warn!("the connection listening for other nodes' changes was lost and restored");
                return Change::Missed;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection listening for other nodes' changes");
                *slot = None;
                return Change::Missed;
            }
        }
    }
}

/// SQLite's change log as one process reads it.
struct SqliteLog {
    pool: SqlitePool,
    /// The last sequence number read.
    last: i64,
    /// Changes read and not yet handed out.
    pending: VecDeque<Change>,
    next_read: Instant,
    next_prune: Instant,
    /// The last read failed: the next good one starts with [`Change::Missed`].
    failing: bool,
}

impl SqliteLog {
    /// Where the log ends now (0 when empty).
    async fn end(pool: &SqlitePool) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM cache_changes").fetch_one(pool).await?)
    }

    async fn next(&mut self) -> Change {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return change;
            }
            tokio::time::sleep_until(self.next_read.into()).await;
            match self.read().await {
                Ok(full) => {
                    // A full batch may have more behind it: read again at once.
                    self.next_read = if full { Instant::now() } else { Instant::now() + SQLITE_READ_EVERY };
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("reading the change log again");
                        self.pending.push_front(Change::Missed);
                    }
                }
                Err(e) => {
                    self.next_read = Instant::now() + SQLITE_READ_EVERY;
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(error = %e, "cannot read the change log; caches expire on their own meanwhile");
                        return Change::Missed;
                    }
                }
            }
            if Instant::now() >= self.next_prune {
                self.next_prune = Instant::now() + SQLITE_KEEP / 10;
                self.prune().await;
            }
        }
    }

    /// Reads the rows past the last one seen into `pending`; whether the batch was full.
    async fn read(&mut self) -> Result<bool> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, change FROM cache_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(self.last)
                .bind(SQLITE_BATCH)
                .fetch_all(&self.pool)
                .await?;
        let Some(&(first, _)) = rows.first() else {
            return Ok(false);
        };
        if first != self.last + 1 {
            // Numbers are never skipped by writes, so rows were pruned unread.
            tracing::warn!(last_read = self.last, first_left = first, "change log rows were pruned before this process read them");
            self.pending.push_back(Change::Missed);
        }
        let full = rows.len() as i64 == SQLITE_BATCH;
        for (seq, payload) in rows {
            self.last = seq;
            match Change::parse(&payload) {
                Some(change) if !self.pending.contains(&change) => self.pending.push_back(change),
                Some(_) => {}
                None => tracing::debug!(payload, "ignored an unknown change"),
            }
        }
        Ok(full)
    }

    /// Drops rows older than [`SQLITE_KEEP`]; any process may, all read them by then.
    async fn prune(&self) {
        let keep = SQLITE_KEEP.as_secs() as i64;
        if let Err(e) = sqlx::query("DELETE FROM cache_changes WHERE changed_at < unixepoch() - $1").bind(keep).execute(&self.pool).await {
            tracing::debug!(error = %e, "pruning the change log failed; trying again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn payloads_parse() {
        assert_eq!(Change::parse("instance:42"), Some(Change::Instance(42)));
        assert_eq!(Change::parse("callers"), Some(Change::Callers));
        assert_eq!(Change::parse("keys"), Some(Change::Keys));
        assert_eq!(Change::parse("transformations:7"), Some(Change::Transformations(7)));
        assert_eq!(Change::parse("transformations:"), None);
        assert_eq!(Change::parse("instance:x"), None);
        assert_eq!(Change::parse("other"), None);
    }
}
