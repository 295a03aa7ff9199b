//! Events and their delivery jobs, callback stops, and the poller's marks.
//!
//! An event and its delivery job are written in one transaction, so a crash
//! leaves both or neither. Workers claim due jobs with a lease (one
//! `UPDATE ... RETURNING`), commit, and only then call out; the outcome is
//! written later in a batch. Event log reads are scoped by organization here.

use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row, Sqlite, Transaction};

use crate::{now, Result, Store};

/// The outcome of an instance's latest poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollStatus {
    /// When the poll ended, epoch milliseconds.
    pub polled_at: i64,
    pub ok: bool,
    /// Why it failed; `None` when it did not.
    pub message: Option<String>,
}

/// An event on its way into the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub organization_id: i64,
    pub instance_id: i64,
    pub element_key: String,
    /// `polling`, `webhook` or `instance`.
    pub source: String,
    /// Usually `NEW`; `RECEIVED` for a vendor webhook awaiting enrichment.
    pub status: String,
    pub event_date: String,
    pub provider_data: String,
    /// JSON array: `message.events`.
    pub notified_data: String,
    /// JSON object: `message.raw`.
    pub raw: String,
}

/// A delivery job a worker holds until `lease_until`.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub event_row: i64,
    pub event_id: String,
    pub organization_id: i64,
    pub instance_id: i64,
    pub element_key: String,
    pub notified_data: String,
    pub raw: String,
    /// The log status: `RECEIVED` means a vendor webhook's thin payload, not yet
    /// enriched with the record.
    pub status: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The lease this claim holds; an outcome for an older lease is ignored
    /// unless it is a success.
    pub lease_until: i64,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub event_row: i64,
    pub lease_until: i64,
    /// `delivered`, `pending` (retry at `next_attempt_at`), `failed` or `stopped`.
    pub state: DeliveryState,
    /// Attempts made, this one included (unchanged when nothing was sent).
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub attempted_at: i64,
    /// A 410 answer: stop sending to this URL for the instance.
    pub stop_url: Option<String>,
    /// `message.raw` as sent, when this attempt enriched a `RECEIVED` event (kept,
    /// so later attempts and the log show the record).
    pub raw: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
    Stopped,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Stopped => "stopped",
        }
    }
}

/// One event as the event log shows it.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub organization_id: i64,
    pub instance_id: i64,
    pub element_key: String,
    pub source: String,
    pub status: String,
    pub event_date: String,
    pub provider_data: String,
    pub notified_data: String,
    pub raw: String,
    pub delivery_state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
}

/// Which events a log query reads.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery {
    pub organization_id: i64,
    pub instance_id: Option<i64>,
    /// Keyset paging: only events older than this row id.
    pub before: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

/// One polled record that may become an event: emitted only if its
/// (object id, updated date) pair is new for the instance and resource.
#[derive(Debug, Clone)]
pub struct PollCandidate {
    pub object_id: String,
    pub updated_at: i64,
    pub event: NewEvent,
}

const EVENT_SELECT: &str = "SELECT e.id, e.event_id, e.organization_id, e.instance_id, e.element_key,
    e.source, e.status, e.event_date, e.provider_data, e.notified_data, e.raw,
    d.state AS delivery_state, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
    d.last_attempt_at
    FROM events e JOIN event_deliveries d ON d.event_row = e.id";

pub(crate) async fn insert_event(tx: &mut Transaction<'_, Sqlite>, e: &NewEvent, due_at: i64) -> Result<()> {
    let row: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, organization_id, instance_id, element_key, source, status,
                             event_date, provider_data, notified_data, raw)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&e.event_id)
    .bind(e.organization_id)
    .bind(e.instance_id)
    .bind(&e.element_key)
    .bind(&e.source)
    .bind(&e.status)
    .bind(&e.event_date)
    .bind(&e.provider_data)
    .bind(&e.notified_data)
    .bind(&e.raw)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO event_deliveries (event_row, instance_id, next_attempt_at) VALUES (?, ?, ?)")
        .bind(row)
        .bind(e.instance_id)
        .bind(due_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl FromRow<'_, SqliteRow> for ClaimedDelivery {
    fn from_row(row: &SqliteRow) -> sqlx::Result<Self> {
        Ok(ClaimedDelivery {
            event_row: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            organization_id: row.try_get("organization_id")?,
            instance_id: row.try_get("instance_id")?,
            element_key: row.try_get("element_key")?,
            notified_data: row.try_get("notified_data")?,
            raw: row.try_get("raw")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            lease_until: row.try_get("lease_until")?,
        })
    }
}

impl Store {
    /// Stores events with their delivery jobs (due at `due_at`), all in one transaction.
    pub async fn insert_events(&self, events: &[NewEvent], due_at: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for e in events {
            insert_event(&mut tx, e, due_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due jobs: one `UPDATE ... RETURNING` sets their lease,
    /// and the transaction commits before any HTTP call.
    pub async fn claim_deliveries(&self, now_ms: i64, lease_until: i64, limit: i64) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<i64> = sqlx::query_scalar(
            "UPDATE event_deliveries SET lease_until = ?1
             WHERE event_row IN (
                 SELECT event_row FROM event_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= ?2
                   AND (lease_until IS NULL OR lease_until <= ?2)
                 ORDER BY next_attempt_at LIMIT ?3)
             RETURNING event_row",
        )
        .bind(lease_until)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
        let claimed = sqlx::query_as(
            "SELECT e.id, e.event_id, e.organization_id, e.instance_id, e.element_key, e.notified_data,
                    e.raw, e.status, d.attempts, d.lease_until
             FROM events e JOIN event_deliveries d ON d.event_row = e.id
             WHERE e.id IN (SELECT value FROM json_each(?)) ORDER BY e.id",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// When the next pending job falls due, if any.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) FROM event_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Writes attempt outcomes in one transaction. A failure reported under a lease
    /// that has since been replaced is dropped (another worker owns the job); a
    /// success always counts, since the receiver has the event.
    pub async fn finish_deliveries(&self, outcomes: &[DeliveryOutcome]) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for o in outcomes {
            let done = sqlx::query(
                "UPDATE event_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL,
                        last_status = COALESCE(?, last_status), last_error = ?, last_attempt_at = ?
                 WHERE event_row = ? AND (lease_until = ? OR ? = 'delivered')",
            )
            .bind(o.state.as_str())
            .bind(o.attempts)
            .bind(o.next_attempt_at)
            .bind(o.last_status)
            .bind(&o.last_error)
            .bind(o.attempted_at)
            .bind(o.event_row)
            .bind(o.lease_until)
            .bind(o.state.as_str())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            if let Some(raw) = &o.raw {
                sqlx::query("UPDATE events SET raw = ?, status = 'DISPATCHED' WHERE id = ? AND status = 'RECEIVED'")
                    .bind(raw)
                    .bind(o.event_row)
                    .execute(&mut *tx)
                    .await?;
            }
            // The log's status: NOTIFIED once acknowledged, DISPATCHED once tried
            // (a webhook's event stays RECEIVED until its record was read).
            let status = match (o.state, o.last_status.is_some() || o.last_error.is_some()) {
                (DeliveryState::Delivered, _) => Some("NOTIFIED"),
                (_, true) => Some("DISPATCHED"),
                _ => None,
            };
            if let Some(status) = status {
                sqlx::query("UPDATE events SET status = ? WHERE id = ? AND status NOT IN ('NOTIFIED', 'RECEIVED')")
                    .bind(status)
                    .bind(o.event_row)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(url) = &o.stop_url {
                sqlx::query(
                    "INSERT INTO event_stopped_callbacks (instance_id, url, stopped_at)
                     SELECT instance_id, ?, ? FROM event_deliveries WHERE event_row = ?
                     ON CONFLICT DO NOTHING",
                )
                .bind(url)
                .bind(now())
                .bind(o.event_row)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes up to `limit` events whose delivery is over (delivered, stopped or
    /// failed) and was last attempted before `before_ms`, with their jobs. Pending
    /// events are never pruned, however old. Returns how many went.
    pub async fn prune_events(&self, before_ms: i64, limit: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE id IN (
                 SELECT event_row FROM event_deliveries
                 WHERE state <> 'pending' AND last_attempt_at < ? LIMIT ?)",
        )
        .bind(before_ms)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The callback URLs of these instances that answered 410.
    pub async fn stopped_callbacks(&self, instance_ids: &[i64]) -> Result<Vec<(i64, String)>> {
        let ids = serde_json::to_string(instance_ids).unwrap_or_else(|_| "[]".into());
        Ok(sqlx::query_as(
            "SELECT instance_id, url FROM event_stopped_callbacks WHERE instance_id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of the organization's event log, newest first.
    pub async fn events(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "{EVENT_SELECT} WHERE e.organization_id = ?1 AND (?2 IS NULL OR e.instance_id = ?2)
             AND (?3 IS NULL OR e.id < ?3) ORDER BY e.id DESC LIMIT ?4 OFFSET ?5"
        ))
        .bind(q.organization_id)
        .bind(q.instance_id)
        .bind(q.before)
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One event of the organization (and of the instance, when given).
    pub async fn event(&self, org_id: i64, instance_id: Option<i64>, event_id: &str) -> Result<Option<EventRow>> {
        Ok(sqlx::query_as(&format!(
            "{EVENT_SELECT} WHERE e.organization_id = ?1 AND (?2 IS NULL OR e.instance_id = ?2) AND e.event_id = ?3"
        ))
        .bind(org_id)
        .bind(instance_id)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Queues one event again (whatever its state) with a fresh attempt count, and
    /// lifts a 410 stop on its instance's callbacks: asking is the user's decision.
    /// False when the organization has no such event.
    pub async fn redeliver_event(&self, org_id: i64, event_id: &str, now_ms: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let instance: Option<i64> = sqlx::query_scalar(
            "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL
             WHERE event_row = (SELECT id FROM events WHERE organization_id = ? AND event_id = ?)
             RETURNING instance_id",
        )
        .bind(now_ms)
        .bind(org_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(instance) = instance else { return Ok(false) };
        sqlx::query("DELETE FROM event_stopped_callbacks WHERE instance_id = ?")
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Queues every undelivered event of an instance again; the number queued.
    /// `None` when the instance is not the organization's.
    pub async fn redeliver_instance(&self, org_id: i64, instance_id: i64, now_ms: i64) -> Result<Option<u64>> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL
             WHERE instance_id = (SELECT id FROM instances WHERE organization_id = ? AND id = ?)
               AND state <> 'delivered' AND (state <> 'pending' OR lease_until IS NULL)",
        )
        .bind(now_ms)
        .bind(org_id)
        .bind(instance_id)
        .execute(&mut *tx)
        .await?;
        let owned: Option<i64> = sqlx::query_scalar("SELECT id FROM instances WHERE organization_id = ? AND id = ?")
            .bind(org_id)
            .bind(instance_id)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_none() {
            return Ok(None);
        }
        sqlx::query("DELETE FROM event_stopped_callbacks WHERE instance_id = ?")
            .bind(instance_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(done.rows_affected()))
    }

    // ---- polling ----

    /// Instances that want events: events enabled and the instance not disabled.
    pub async fn instances_with_events(&self) -> Result<Vec<crate::InstanceRow>> {
        Ok(sqlx::query_as(&format!(
            "{} WHERE events_enabled = 1 AND disabled = 0 ORDER BY id",
            crate::INSTANCE_SELECT
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The high-water mark of one resource, starting it at `start` when there is none
    /// (events begin when polling begins, not with the vendor's history).
    pub async fn poll_mark(&self, instance_id: i64, resource: &str, start: i64) -> Result<i64> {
        sqlx::query(
            "INSERT INTO event_poll_marks (instance_id, resource, high_water, polled_at) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(instance_id)
        .bind(resource)
        .bind(start)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT high_water FROM event_poll_marks WHERE instance_id = ? AND resource = ?")
            .bind(instance_id)
            .bind(resource)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Object ids already seen inside the overlap window of a resource.
    pub async fn poll_seen_ids(&self, instance_id: i64, resource: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT object_id FROM event_poll_seen WHERE instance_id = ? AND resource = ?")
            .bind(instance_id)
            .bind(resource)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Ends one poll in one transaction: records each candidate's (object id,
    /// updated date) pair and stores its event only when the pair is new, moves
    /// the high-water mark forward, and forgets pairs older than `prune_before`.
    /// Returns the number of events stored. Two pollers racing on the same
    /// instance therefore emit each change once.
    pub async fn commit_poll(
        &self,
        instance_id: i64,
        resource: &str,
        high_water: i64,
        prune_before: i64,
        candidates: &[PollCandidate],
        due_at: i64,
    ) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO event_poll_marks (instance_id, resource, high_water, polled_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (instance_id, resource) DO UPDATE
             SET high_water = MAX(high_water, excluded.high_water), polled_at = excluded.polled_at",
        )
        .bind(instance_id)
        .bind(resource)
        .bind(high_water)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let mut stored = 0;
        for c in candidates {
            let fresh = sqlx::query(
                "INSERT INTO event_poll_seen (instance_id, resource, object_id, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT DO NOTHING",
            )
            .bind(instance_id)
            .bind(resource)
            .bind(&c.object_id)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if fresh {
                insert_event(&mut tx, &c.event, due_at).await?;
                stored += 1;
            }
        }
        sqlx::query("DELETE FROM event_poll_seen WHERE instance_id = ? AND resource = ? AND updated_at < ?")
            .bind(instance_id)
            .bind(resource)
            .bind(prune_before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Records the outcome of an instance's poll, replacing the previous one. An
    /// instance deleted meanwhile records nothing.
    pub async fn record_poll(&self, instance_id: i64, polled_at: i64, ok: bool, message: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_poll_status (instance_id, polled_at, outcome, message)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)
             ON CONFLICT (instance_id) DO UPDATE
             SET polled_at = excluded.polled_at, outcome = excluded.outcome, message = excluded.message",
        )
        .bind(instance_id)
        .bind(polled_at)
        .bind(if ok { "ok" } else { "failed" })
        .bind(if ok { None } else { message })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The outcome of the instance's latest poll; `None` before its first.
    pub async fn poll_status(&self, instance_id: i64) -> Result<Option<PollStatus>> {
        let row = sqlx::query("SELECT polled_at, outcome, message FROM event_poll_status WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| PollStatus {
            polled_at: r.get("polled_at"),
            ok: r.get::<String, _>("outcome") == "ok",
            message: r.get("message"),
        }))
    }

    /// Forgets the poll marks of instances not in `keep` (events turned off or
    /// switched to webhooks), so turning polling on again starts from then.
    pub async fn forget_poll_marks_except(&self, keep: &[i64]) -> Result<()> {
        let ids = serde_json::to_string(keep).unwrap_or_else(|_| "[]".into());
        let mut tx = self.pool.begin().await?;
        for table in ["event_poll_marks", "event_poll_seen"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE instance_id NOT IN (SELECT value FROM json_each(?))"))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
