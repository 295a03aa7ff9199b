//! Writes made by other nodes, as PostgreSQL tells of them (`LISTEN
//! switchyard_cache`; the NOTIFY triggers are in migrations_pg/0011). A node drops
//! what its caches hold for a change it hears of. On SQLite there is one node and
//! nothing to hear.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

use crate::{Pool, Result, Store};

/// The channel the triggers notify on.
pub const CHANNEL: &str = "switchyard_cache";

/// Wait before connecting again after the listener's connection failed.
const RECONNECT_WAIT: Duration = Duration::from_millis(500);

/// One write some node committed, or the news that some may have gone unheard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The instance's row or configuration changed, or it was deleted.
    Instance(i64),
    /// An organization's or user's secret changed, or one was deleted.
    Callers,
    /// The vault canary was sealed again: the database has a new current key.
    Keys,
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
            _ => payload
                .strip_prefix("instance:")?
                .parse()
                .ok()
                .map(Change::Instance),
        }
    }
}

/// The changes other nodes (and CLI commands) commit, as they commit.
pub struct Changes {
    pool: PgPool,
    listener: Option<PgListener>,
}

impl Store {
    /// Starts listening for changes: `None` on SQLite. Connects now (one
    /// connection of its own, outside the pool's count), so an error here means
    /// the database is unreachable.
    pub async fn listen_changes(&self) -> Result<Option<Changes>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let listener = listen(pool).await?;
        Ok(Some(Changes {
            pool: pool.clone(),
            listener: Some(listener),
        }))
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

impl Changes {
    /// The next change. Never fails: a lost connection is [`Change::Missed`]
    /// (once when lost, once more when listening again), and reconnecting is
    /// retried every half second meanwhile.
    pub async fn next(&mut self) -> Change {
        loop {
            let Some(listener) = &mut self.listener else {
                match listen(&self.pool).await {
                    Ok(listener) => {
                        tracing::info!("listening for other nodes' changes again");
                        self.listener = Some(listener);
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
                    None => tracing::debug!(
                        payload = notification.payload(),
                        "ignored an unknown change notification"
                    ),
                },
                // sqlx reconnected (and listens again) after losing the connection.
                Ok(None) => {
                    tracing::warn!(
                        "the connection listening for other nodes' changes was lost and restored"
                    );
                    return Change::Missed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the connection listening for other nodes' changes");
                    self.listener = None;
                    return Change::Missed;
                }
            }
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
        assert_eq!(Change::parse("instance:x"), None);
        assert_eq!(Change::parse("other"), None);
    }
}
