//! Work that must be done by one process at a time, across every server process
//! on one database: named leases, and the turns of polled instances.
//!
//! Both are rows changed by one conditional statement, never locks held while
//! the work runs: a process that dies holds nothing for longer than its lease
//! (or, for polls, than the instance's interval), and the others carry on.

use std::sync::Arc;

use rand::Rng;

use crate::model::from_row_on_both;
use crate::{json_members, on_pool, Result, Store};

/// One polled instance's turn (epoch milliseconds), as [`Store::poll_turns`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollTurn {
    pub instance_id: i64,
    /// When the next poll is due.
    pub next_due: i64,
    pub interval_ms: i64,
    /// When the latest poll ended; `None` before the first.
    pub polled_at: Option<i64>,
}

from_row_on_both!(PollTurn, |row| {
    use sqlx::Row;
    Ok(PollTurn {
        instance_id: row.try_get("instance_id")?,
        next_due: row.try_get("next_due")?,
        interval_ms: row.try_get("interval_ms")?,
        polled_at: row.try_get("polled_at")?,
    })
});

/// A fresh node id, `{pid}-{16 hex digits}`: random, so two processes (on one
/// machine or several) never share one.
pub(crate) fn new_node_id() -> Arc<str> {
    format!("{}-{:016x}", std::process::id(), rand::thread_rng().gen::<u64>()).into()
}

impl Store {
    /// This process's node id, the holder of the leases it takes (one per
    /// [`Store::open`]).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Takes (or, when this node has it, renews) the lease `name` until `until_ms`
    /// (epoch ms). False when another node holds it past `now_ms`.
    pub async fn take_lease(&self, name: &str, now_ms: i64, until_ms: i64) -> Result<bool> {
        let taken = on_pool!(self, |p, pg| {
            sqlx::query(
                "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                 WHERE leases.until_ms <= $4 OR leases.holder = excluded.holder",
            )
            .bind(name)
            .bind(&*self.node)
            .bind(until_ms)
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    /// Gives the lease `name` up, if this node holds it.
    pub async fn release_lease(&self, name: &str) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(&*self.node)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    // ---- polling turns ----

    /// Puts an instance on the polling schedule, every `interval_ms`, first due at
    /// `first_due` (epoch ms). An instance already on it keeps its turn; a new
    /// interval takes effect at once, and is due no later than `first_due`. A
    /// deleted instance is not scheduled.
    pub async fn schedule_poll(&self, instance_id: i64, interval_ms: i64, first_due: i64) -> Result<()> {
        on_pool!(self, |p, pg| {
            let least = if pg { "LEAST" } else { "MIN" };
            sqlx::query(&format!(
                "INSERT INTO event_poll_due (instance_id, next_due, interval_ms)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)
                 ON CONFLICT (instance_id) DO UPDATE
                 SET interval_ms = excluded.interval_ms, next_due = {least}(event_poll_due.next_due, excluded.next_due)
                 WHERE event_poll_due.interval_ms <> excluded.interval_ms"
            ))
            .bind(instance_id)
            .bind(first_due)
            .bind(interval_ms)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Claims, for this node, up to `limit` polls due at `now_ms`, the longest
    /// overdue first: the ones returned are this node's to poll now, and no other
    /// node's. Only instances that want events (events on, not disabled) are
    /// claimed, and none of `running` (the ones this node is still polling). Each
    /// one's next turn moves one interval on from its last, but never to less than
    /// half an interval from now (one late poll is not followed by a burst). On
    /// PostgreSQL, rows another node is claiming are skipped, not waited for.
    ///
    /// One statement whatever the number of scheduled instances: it reads the due
    /// rows through the `next_due` index (migration 0013), so a tick with nothing
    /// due costs one index probe.
    pub async fn claim_due_polls(&self, now_ms: i64, limit: usize, running: &[i64]) -> Result<Vec<i64>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let running = serde_json::to_string(running).unwrap_or_else(|_| "[]".into());
        Ok(on_pool!(self, |p, pg| {
            let due = format!(
                "SELECT d.instance_id FROM event_poll_due d JOIN instances i ON i.id = d.instance_id
                 WHERE d.next_due <= $2 AND i.events_enabled = TRUE AND i.disabled = FALSE
                   AND d.instance_id NOT IN ({})
                 ORDER BY d.next_due LIMIT $4",
                json_members(pg, 3, true)
            );
            // The picks made once (see `claim_deliveries`), skipping rows being claimed.
            let (with, picked, greatest) = if pg {
                (format!("WITH picked AS MATERIALIZED ({due} FOR UPDATE OF d SKIP LOCKED)"), "SELECT instance_id FROM picked".to_owned(), "GREATEST")
            } else {
                (String::new(), due, "MAX")
            };
            sqlx::query_scalar(&format!(
                "{with} UPDATE event_poll_due SET holder = $1,
                     next_due = {greatest}(next_due + interval_ms, $2 + interval_ms / 2)
                 WHERE instance_id IN ({picked}) AND next_due <= $2
                 RETURNING instance_id"
            ))
            .bind(&*self.node)
            .bind(now_ms)
            .bind(&running)
            .bind(limit as i64)
            .fetch_all(p)
            .await?
        }))
    }

    /// Every scheduled poll turn with the end of the instance's latest poll, for
    /// measuring the scheduler (`switchyard bench-scale`), in no order.
    pub async fn poll_turns(&self) -> Result<Vec<PollTurn>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT d.instance_id, d.next_due, d.interval_ms, s.polled_at
                 FROM event_poll_due d LEFT JOIN event_poll_status s ON s.instance_id = d.instance_id",
            )
            .fetch_all(p)
            .await?
        }))
    }

    /// The database's size in bytes (SQLite: the main file's pages, free ones
    /// included; PostgreSQL: `pg_database_size`).
    pub async fn database_bytes(&self) -> Result<i64> {
        Ok(on_pool!(self, |p, pg| {
            let sql = if pg {
                "SELECT pg_database_size(current_database())"
            } else {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            };
            sqlx::query_scalar(sql).fetch_one(p).await?
        }))
    }
}
