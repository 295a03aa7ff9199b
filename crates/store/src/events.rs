//! Events and their delivery jobs, callback stops, and the poller's marks.
//!
//! An event and its delivery job are written in one transaction, so a crash
//! leaves both or neither. Workers claim due jobs with a lease (one
//! `UPDATE ... RETURNING`), commit, and only then call out; the outcome is
//! written later in a batch. Event log reads are scoped by organization here.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use sqlx::{FromRow, Row};

use crate::model::from_row_on_both;
use crate::{json_members, now, on_pool, on_tx, Param, Result, Store, Tx};

/// The outcome of an instance's latest poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollStatus {
    /// When the poll ended, epoch milliseconds.
    pub polled_at: i64,
    pub ok: bool,
    /// Why it failed; `None` when it did not.
    pub message: Option<String>,
}

/// An instance that wants events, as [`Store::events_stamps`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EventsStamp {
    pub id: i64,
    pub element_key: String,
    /// The instance's `updated_at` (ISO 8601, milliseconds): every write of the
    /// instance or its configuration sets it.
    pub updated_at: String,
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
#[derive(Debug, Clone)]
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

/// Where polling one resource of an instance stands (see [`Store::poll_position`]).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PollPosition {
    /// Epoch ms: records updated before it (less the overlap window) were announced.
    pub high_water: i64,
    /// The poller's own record of where an unfinished listing goes on (opaque
    /// here); `None` when the last one was read to its end.
    pub resume: Option<String>,
    /// Counts the commits of this mark: a commit that began from another count
    /// leaves `resume` as it is (see [`Store::commit_poll`]).
    pub resume_version: i64,
}

/// One polled record that may become an event: emitted only if its
/// (object id, updated date) pair is new for the instance and resource.
#[derive(Debug, Clone)]
pub struct PollCandidate {
    pub object_id: String,
    pub updated_at: i64,
    pub event: NewEvent,
}

/// Reads [`EventRow`]s (with [`PAYLOAD_COLUMNS`]).
const EVENT_SELECT: &str = "SELECT e.id, e.event_id, e.organization_id, e.instance_id, e.element_key,
    e.source, e.status, e.event_date, e.notified_data,
    e.provider_data, e.provider_data_z, e.raw, e.raw_z, e.raw_head, e.raw_tail,
    d.state AS delivery_state, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
    d.last_attempt_at
    FROM events e JOIN event_deliveries d ON d.event_row = e.id";

/// Shared bytes below which `raw` is stored whole (splicing would save little).
const SPLICE_MIN: usize = 64;
/// Payloads shorter than this are stored as text (deflate would save little).
const PACK_MIN: usize = 256;
/// Deflate's level for payloads (zlib's default).
const PACK_LEVEL: u8 = 6;
/// The most a stored payload inflates to (what was deflated came from a request
/// or a vendor answer, both far smaller).
const UNPACK_LIMIT: usize = 256 << 20;

/// `raw` as stored beside `provider_data`: when the two share a long start and
/// end (a polled event's `raw` is its record with `"objectType"` put in), only
/// the text between them and how many bytes of `provider_data` come before and
/// after it; otherwise `raw` whole and `None`s. [`unsplice`] gives `raw` back,
/// byte for byte.
fn splice<'a>(provider_data: &str, raw: &'a str) -> (&'a str, Option<i64>, Option<i64>) {
    let (p, r) = (provider_data.as_bytes(), raw.as_bytes());
    let most = p.len().min(r.len());
    let mut head = p.iter().zip(r).take_while(|(a, b)| a == b).count();
    // Both strings cut at char boundaries (their bytes differ right after the
    // shared start, so each is checked).
    while !(provider_data.is_char_boundary(head) && raw.is_char_boundary(head)) {
        head -= 1;
    }
    let mut tail = p.iter().rev().zip(r.iter().rev()).take_while(|(a, b)| a == b).count().min(most - head);
    while !(provider_data.is_char_boundary(p.len() - tail) && raw.is_char_boundary(r.len() - tail)) {
        tail -= 1;
    }
    if head + tail < SPLICE_MIN {
        return (raw, None, None);
    }
    (&raw[head..r.len() - tail], Some(head as i64), Some(tail as i64))
}

/// `raw` from what [`splice`] stored; a decode error when the numbers do not
/// fit `provider_data` (a row written by something else).
fn unsplice(provider_data: &str, stored: String, head: Option<i64>, tail: Option<i64>) -> sqlx::Result<String> {
    let (Some(head), Some(tail)) = (head, tail) else { return Ok(stored) };
    let cut = |n: i64| usize::try_from(n).ok().filter(|&n| n <= provider_data.len());
    let parts = cut(head).zip(cut(tail)).and_then(|(head, tail)| {
        Some((provider_data.get(..head)?, provider_data.get(provider_data.len().checked_sub(tail)?..)?))
    });
    let Some((start, end)) = parts else {
        return Err(sqlx::Error::Decode("events.raw_head/raw_tail do not fit provider_data".into()));
    };
    Ok([start, stored.as_str(), end].concat())
}

/// A payload as stored: `("", deflated)` when that is smaller, else the text.
fn pack(text: &str) -> (&str, Option<Vec<u8>>) {
    if text.len() < PACK_MIN {
        return (text, None);
    }
    let packed = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), PACK_LEVEL);
    if packed.len() >= text.len() {
        return (text, None);
    }
    ("", Some(packed))
}

/// The text [`pack`] stored.
fn unpack(text: String, packed: Option<Vec<u8>>) -> sqlx::Result<String> {
    let Some(packed) = packed else { return Ok(text) };
    let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, UNPACK_LIMIT)
        .map_err(|e| sqlx::Error::Decode(format!("a stored event payload does not inflate: {e:?}").into()))?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// An event's payloads as they are written: [`splice`]d, then [`pack`]ed.
pub(crate) struct StoredPayloads<'a> {
    pub provider_data: &'a str,
    pub provider_data_z: Option<Vec<u8>>,
    pub raw: &'a str,
    pub raw_z: Option<Vec<u8>>,
    pub raw_head: Option<i64>,
    pub raw_tail: Option<i64>,
}

impl<'a> StoredPayloads<'a> {
    pub fn of(e: &'a NewEvent) -> StoredPayloads<'a> {
        let (raw, raw_head, raw_tail) = splice(&e.provider_data, &e.raw);
        let (provider_data, provider_data_z) = pack(&e.provider_data);
        let (raw, raw_z) = pack(raw);
        StoredPayloads { provider_data, provider_data_z, raw, raw_z, raw_head, raw_tail }
    }

    /// The payload columns as members of a JSON object (the deflated ones in
    /// base64), for statements that read rows with `jsonb_to_recordset`.
    pub fn json_members(&self) -> [(&'static str, serde_json::Value); 6] {
        let b64 = |z: &Option<Vec<u8>>| -> serde_json::Value { z.as_deref().map(|z| BASE64.encode(z)).into() };
        [
            ("provider_data", self.provider_data.into()),
            ("provider_data_z", b64(&self.provider_data_z)),
            ("raw", self.raw.into()),
            ("raw_z", b64(&self.raw_z)),
            ("raw_head", self.raw_head.into()),
            ("raw_tail", self.raw_tail.into()),
        ]
    }
}

/// An event's `provider_data` and `raw` from their stored columns
/// ([`PAYLOAD_COLUMNS`]).
macro_rules! payloads {
    ($row:expr) => {{
        let provider_data = unpack($row.try_get("provider_data")?, $row.try_get("provider_data_z")?)?;
        let stored = unpack($row.try_get("raw")?, $row.try_get("raw_z")?)?;
        let raw = unsplice(&provider_data, stored, $row.try_get("raw_head")?, $row.try_get("raw_tail")?)?;
        (provider_data, raw)
    }};
}

/// The stored columns an event's payloads are read from.
const PAYLOAD_COLUMNS: &str = "e.provider_data, e.provider_data_z, e.raw, e.raw_z, e.raw_head, e.raw_tail";

from_row_on_both!(EventRow, |row| {
    let (provider_data, raw) = payloads!(row);
    Ok(EventRow {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        organization_id: row.try_get("organization_id")?,
        instance_id: row.try_get("instance_id")?,
        element_key: row.try_get("element_key")?,
        source: row.try_get("source")?,
        status: row.try_get("status")?,
        event_date: row.try_get("event_date")?,
        provider_data,
        notified_data: row.try_get("notified_data")?,
        raw,
        delivery_state: row.try_get("delivery_state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
    })
});

pub(crate) async fn insert_event(tx: &mut Tx<'_>, e: &NewEvent, due_at: i64) -> Result<()> {
    let stored = StoredPayloads::of(e);
    on_tx!(tx, |c, pg| {
        let row: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, organization_id, instance_id, element_key, source, status, event_date,
                                 provider_data, provider_data_z, notified_data, raw, raw_z, raw_head, raw_tail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(&e.event_id)
        .bind(e.organization_id)
        .bind(e.instance_id)
        .bind(&e.element_key)
        .bind(&e.source)
        .bind(&e.status)
        .bind(&e.event_date)
        .bind(stored.provider_data)
        .bind(&stored.provider_data_z)
        .bind(&e.notified_data)
        .bind(stored.raw)
        .bind(&stored.raw_z)
        .bind(stored.raw_head)
        .bind(stored.raw_tail)
        .fetch_one(&mut *c)
        .await?;
        sqlx::query("INSERT INTO event_deliveries (event_row, instance_id, next_attempt_at) VALUES ($1, $2, $3)")
            .bind(row)
            .bind(e.instance_id)
            .bind(due_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

from_row_on_both!(ClaimedDelivery, |row| {
    let (_, raw) = payloads!(row);
    Ok(ClaimedDelivery {
        event_row: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        organization_id: row.try_get("organization_id")?,
        instance_id: row.try_get("instance_id")?,
        element_key: row.try_get("element_key")?,
        notified_data: row.try_get("notified_data")?,
        raw,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        lease_until: row.try_get("lease_until")?,
    })
});

impl Store {
    /// Stores events with their delivery jobs (due at `due_at`), all in one transaction.
    pub async fn insert_events(&self, events: &[NewEvent], due_at: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for e in events {
            insert_event(&mut tx, e, due_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due jobs: one `UPDATE ... RETURNING` sets their lease,
    /// and the transaction commits before any HTTP call.
    ///
    /// On PostgreSQL the subquery locks the jobs it picks `FOR UPDATE SKIP LOCKED`,
    /// so nodes claiming at once take different jobs instead of queueing behind
    /// each other's locks. The lease condition is checked again on the row being
    /// updated all the same (on SQLite writers are serialized and this changes
    /// nothing). A job whose holder died falls due again when its lease ends.
    pub async fn claim_deliveries(&self, now_ms: i64, lease_until: i64, limit: i64) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.begin().await?;
        let claimed = on_tx!(&mut tx, |c, pg| {
            let due = "SELECT event_row FROM event_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
                 ORDER BY next_attempt_at LIMIT $3";
            // PostgreSQL may run an `IN` subquery more than once, and each run of a
            // `SKIP LOCKED` one can pick other rows (more than the limit): the picks
            // are made once, in a materialized CTE.
            let claim = if pg {
                format!(
                    "WITH picked AS MATERIALIZED ({due} FOR UPDATE SKIP LOCKED)
                     UPDATE event_deliveries SET lease_until = $1 WHERE event_row IN (SELECT event_row FROM picked)
                       AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
                     RETURNING event_row"
                )
            } else {
                format!(
                    "UPDATE event_deliveries SET lease_until = $1 WHERE event_row IN ({due})
                       AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
                     RETURNING event_row"
                )
            };
            let rows: Vec<i64> = sqlx::query_scalar(&claim)
            .bind(lease_until)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
            if rows.is_empty() {
                Vec::new()
            } else {
                let ids = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(&format!(
                    "SELECT e.id, e.event_id, e.organization_id, e.instance_id, e.element_key, e.notified_data,
                            {PAYLOAD_COLUMNS}, e.status, d.attempts, d.lease_until
                     FROM events e JOIN event_deliveries d ON d.event_row = e.id
                     WHERE e.id IN ({}) ORDER BY e.id",
                    json_members(pg, 1, true)
                ))
                .bind(ids)
                .fetch_all(&mut *c)
                .await?
            }
        });
        tx.commit().await?;
        Ok(claimed)
    }

    /// When the next pending job falls due, if any.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(on_pool!(self, |p, pg| {
            let greatest = if pg { "GREATEST" } else { "MAX" };
            sqlx::query_scalar(&format!(
                "SELECT MIN({greatest}(next_attempt_at, COALESCE(lease_until, 0))) FROM event_deliveries WHERE state = 'pending'"
            ))
            .fetch_one(p)
            .await?
        }))
    }

    /// Writes attempt outcomes in one transaction. A failure reported under a lease
    /// that has since been replaced is dropped (another worker owns the job); a
    /// success always counts, since the receiver has the event.
    ///
    /// On PostgreSQL a batch is one statement (a network round trip per outcome
    /// would cap the committer at a few thousand a second); on SQLite, in process,
    /// each outcome is its own few statements.
    pub async fn finish_deliveries(&self, outcomes: &[DeliveryOutcome]) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        match &mut tx {
            crate::Tx::Sqlite(t) => {
                for o in outcomes {
                    finish_delivery_sqlite(t, o).await?;
                }
            }
            crate::Tx::Postgres(t) => {
                // A statement updates each job once, so an event that is in the batch
                // twice (a lease ran out and another worker tried it too) starts a
                // new statement, keeping the outcomes' order.
                let mut from = 0;
                let mut rows = HashSet::new();
                for (i, o) in outcomes.iter().enumerate() {
                    if !rows.insert(o.event_row) {
                        finish_deliveries_pg(t, &outcomes[from..i]).await?;
                        (from, rows) = (i, HashSet::from([o.event_row]));
                    }
                }
                finish_deliveries_pg(t, &outcomes[from..]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes up to `limit` events whose delivery is over (delivered, stopped or
    /// failed) and was last attempted before `before_ms`, with their jobs. Pending
    /// events are never pruned, however old. Returns how many went.
    pub async fn prune_events(&self, before_ms: i64, limit: i64) -> Result<u64> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query(
                "DELETE FROM events WHERE id IN (
                     SELECT event_row FROM event_deliveries
                     WHERE state <> 'pending' AND last_attempt_at < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(limit)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Bounds the event log by rows: each instance keeps at most `per_instance`
    /// events and the whole log at most `max_rows`, the oldest finished events
    /// (delivered, stopped or failed; lowest row ids) going first, `batch` per
    /// statement (each its own short write transaction). Pending events are never
    /// deleted, whatever the caps: a log holding more pending events than a cap
    /// stays above it. Returns how many went.
    pub async fn prune_events_over(&self, max_rows: u64, per_instance: u64, batch: i64) -> Result<u64> {
        let keep = per_instance.min(i64::MAX as u64) as i64;
        let crowded: Vec<(i64, i64)> = on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT instance_id, COUNT(*) FROM event_deliveries GROUP BY instance_id HAVING COUNT(*) > $1")
                .bind(keep)
                .fetch_all(p)
                .await?
        });
        let mut removed = 0;
        for (instance, rows) in crowded {
            removed += self
                .delete_in_batches(
                    // events_by_instance gives the instance's rows oldest first.
                    "DELETE FROM events WHERE id IN (
                         SELECT e.id FROM events e JOIN event_deliveries d ON d.event_row = e.id
                         WHERE e.instance_id = $1 AND d.state <> 'pending' ORDER BY e.id LIMIT $2)",
                    &[Param::Int(instance)],
                    batch,
                    (rows - keep) as u64,
                )
                .await?;
        }
        let rows: i64 = on_pool!(self, |p, pg| sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(p).await?);
        let excess = (rows.max(0) as u64).saturating_sub(max_rows);
        if excess > 0 {
            removed += self
                .delete_in_batches(
                    "DELETE FROM events WHERE id IN (
                         SELECT event_row FROM event_deliveries WHERE state <> 'pending' ORDER BY event_row LIMIT $1)",
                    &[],
                    batch,
                    excess,
                )
                .await?;
        }
        Ok(removed)
    }

    /// The callback URLs of these instances that answered 410.
    pub async fn stopped_callbacks(&self, instance_ids: &[i64]) -> Result<Vec<(i64, String)>> {
        let ids = serde_json::to_string(instance_ids).unwrap_or_else(|_| "[]".into());
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "SELECT instance_id, url FROM event_stopped_callbacks WHERE instance_id IN ({})",
                json_members(pg, 1, true)
            ))
            .bind(&ids)
            .fetch_all(p)
            .await?
        }))
    }

    /// A page of the organization's event log, newest first.
    pub async fn events(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "{EVENT_SELECT} WHERE e.organization_id = $1 AND ($2 IS NULL OR e.instance_id = $2)
                 AND ($3 IS NULL OR e.id < $3) ORDER BY e.id DESC LIMIT $4 OFFSET $5"
            ))
            .bind(q.organization_id)
            .bind(q.instance_id)
            .bind(q.before)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(p)
            .await?
        }))
    }

    /// One event of the organization (and of the instance, when given).
    pub async fn event(&self, org_id: i64, instance_id: Option<i64>, event_id: &str) -> Result<Option<EventRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "{EVENT_SELECT} WHERE e.organization_id = $1 AND ($2 IS NULL OR e.instance_id = $2) AND e.event_id = $3"
            ))
            .bind(org_id)
            .bind(instance_id)
            .bind(event_id)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Queues one event again (whatever its state) with a fresh attempt count, and
    /// lifts a 410 stop on its instance's callbacks: asking is the user's decision.
    /// False when the organization has no such event.
    pub async fn redeliver_event(&self, org_id: i64, event_id: &str, now_ms: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let found = on_tx!(&mut tx, |c, pg| {
            let instance: Option<i64> = sqlx::query_scalar(
                "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL
                 WHERE event_row = (SELECT id FROM events WHERE organization_id = $2 AND event_id = $3)
                 RETURNING instance_id",
            )
            .bind(now_ms)
            .bind(org_id)
            .bind(event_id)
            .fetch_optional(&mut *c)
            .await?;
            if let Some(instance) = instance {
                sqlx::query("DELETE FROM event_stopped_callbacks WHERE instance_id = $1")
                    .bind(instance)
                    .execute(&mut *c)
                    .await?;
            }
            instance.is_some()
        });
        if !found {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Queues every undelivered event of an instance again; the number queued.
    /// `None` when the instance is not the organization's.
    pub async fn redeliver_instance(&self, org_id: i64, instance_id: i64, now_ms: i64) -> Result<Option<u64>> {
        let mut tx = self.begin().await?;
        let queued = on_tx!(&mut tx, |c, pg| {
            let done = sqlx::query(
                "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL
                 WHERE instance_id = (SELECT id FROM instances WHERE organization_id = $2 AND id = $3)
                   AND state <> 'delivered' AND (state <> 'pending' OR lease_until IS NULL)",
            )
            .bind(now_ms)
            .bind(org_id)
            .bind(instance_id)
            .execute(&mut *c)
            .await?;
            let owned: Option<i64> = sqlx::query_scalar("SELECT id FROM instances WHERE organization_id = $1 AND id = $2")
                .bind(org_id)
                .bind(instance_id)
                .fetch_optional(&mut *c)
                .await?;
            if owned.is_some() {
                sqlx::query("DELETE FROM event_stopped_callbacks WHERE instance_id = $1")
                    .bind(instance_id)
                    .execute(&mut *c)
                    .await?;
            }
            owned.map(|_| done.rows_affected())
        });
        if queued.is_none() {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(queued)
    }

    // ---- polling ----

    /// Instances that want events: events enabled and the instance not disabled.
    pub async fn instances_with_events(&self) -> Result<Vec<crate::InstanceRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "{} WHERE events_enabled = TRUE AND disabled = FALSE ORDER BY id",
                crate::INSTANCE_SELECT
            ))
            .fetch_all(p)
            .await?
        }))
    }

    /// Instances that want events (events enabled, not disabled), each with what
    /// changes whenever its row or configuration is written (`updated_at`): the
    /// poller's scheduler reads this and opens the configuration only of those
    /// new or changed since its last look. In no order.
    pub async fn events_stamps(&self) -> Result<Vec<EventsStamp>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT id, element_key, updated_at FROM instances WHERE events_enabled = TRUE AND disabled = FALSE")
                .fetch_all(p)
                .await?
        }))
    }

    /// [`Store::events_stamps`] of the instances `ids` only (those of them that
    /// want events), for a look at the instances the scheduler was told changed.
    pub async fn events_stamps_of(&self, ids: &[i64]) -> Result<Vec<EventsStamp>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "SELECT id, element_key, updated_at FROM instances
                 WHERE events_enabled = TRUE AND disabled = FALSE AND id IN ({})",
                json_members(pg, 1, true)
            ))
            .bind(&ids)
            .fetch_all(p)
            .await?
        }))
    }

    /// The high-water mark of one resource, starting it at `start` when there is none
    /// (events begin when polling begins, not with the vendor's history).
    pub async fn poll_mark(&self, instance_id: i64, resource: &str, start: i64) -> Result<i64> {
        Ok(self.poll_position(instance_id, resource, start).await?.high_water)
    }

    /// The high-water mark of one resource (started at `start` when there is none,
    /// as [`Store::poll_mark`]) and where an unfinished listing goes on.
    pub async fn poll_position(&self, instance_id: i64, resource: &str, start: i64) -> Result<PollPosition> {
        // Started here (the insert answers it), else read; no write for a mark that
        // exists, as at every start of every poller. A forget landing between the two
        // statements (the schedule's, on another task or node) leaves nothing to read:
        // then start it again.
        for _ in 0..8 {
            let started: Option<PollPosition> = on_pool!(self, |p, pg| {
                sqlx::query_as(
                    "INSERT INTO event_poll_marks (instance_id, resource, high_water, polled_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING RETURNING high_water, resume, resume_version",
                )
                .bind(instance_id)
                .bind(resource)
                .bind(start)
                .bind(now())
                .fetch_optional(p)
                .await?
            });
            if let Some(position) = started {
                return Ok(position);
            }
            if let Some(position) = self.started_poll_position(instance_id, resource).await? {
                return Ok(position);
            }
        }
        Err(sqlx::Error::RowNotFound.into())
    }

    /// The position of one resource if its mark was started (by [`Store::poll_mark`]
    /// or [`Store::poll_position`]); `None` once it was forgotten (see
    /// [`Store::forget_polls`]).
    pub async fn started_poll_position(&self, instance_id: i64, resource: &str) -> Result<Option<PollPosition>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT high_water, resume, resume_version FROM event_poll_marks WHERE instance_id = $1 AND resource = $2")
                .bind(instance_id)
                .bind(resource)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Object ids already seen inside the overlap window of a resource.
    pub async fn poll_seen_ids(&self, instance_id: i64, resource: &str) -> Result<Vec<String>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_scalar("SELECT DISTINCT object_id FROM event_poll_seen WHERE instance_id = $1 AND resource = $2")
                .bind(instance_id)
                .bind(resource)
                .fetch_all(p)
                .await?
        }))
    }

    /// Ends one poll in one transaction: records each candidate's (object id,
    /// updated date) pair and stores its event only when the pair is new, moves
    /// the high-water mark forward, keeps `resume` (where an unfinished listing
    /// goes on; `None` once it was read to its end), and forgets pairs older than
    /// `prune_before`. Returns the number of events stored. Two pollers racing on
    /// the same instance therefore emit each change once:
    /// - `resume` replaces the stored position only when no other commit came
    ///   between (`began_at` is the `resume_version` of the [`PollPosition`] the
    ///   poll read), so a late poll never writes back a position another has moved past
    ///   (comparing the positions themselves would not do: "no position" comes
    ///   back each time a listing ends);
    /// - a candidate dated before pairs were last forgotten (a late poll's, read in
    ///   a window another poll has since closed) is not stored, as its pair can no
    ///   longer tell whether it was.
    ///
    /// A poll whose mark was forgotten meanwhile (its polling was turned off, see
    /// [`Store::forget_polls`]) records nothing and returns 0: the mark is made by
    /// [`Store::poll_position`] only, so turning polling on again starts from then.
    #[allow(clippy::too_many_arguments)] // one poll's outcome, written together
    pub async fn commit_poll(
        &self,
        instance_id: i64,
        resource: &str,
        high_water: i64,
        began_at: i64,
        resume: Option<&str>,
        prune_before: i64,
        candidates: &[PollCandidate],
        due_at: i64,
    ) -> Result<usize> {
        let mut tx = self.begin().await?;
        // The cut after this commit: the earlier one or `prune_before`, whichever is
        // later. Candidates are never older than their own poll's `prune_before`, so
        // against the new cut only a late poll's older records fall.
        let pruned_before: Option<i64> = on_tx!(&mut tx, |c, pg| {
            let greatest = if pg { "GREATEST" } else { "MAX" };
            // Every right-hand side reads the row as it was before this update (both
            // backends), so the version compared is the one the poll began from.
            sqlx::query_scalar(&format!(
                "UPDATE event_poll_marks
                 SET high_water = {greatest}(high_water, $3), polled_at = $4,
                     resume = CASE WHEN resume_version = $6 THEN $5 ELSE resume END,
                     resume_version = resume_version + 1,
                     pruned_before = {greatest}(pruned_before, $7)
                 WHERE instance_id = $1 AND resource = $2
                 RETURNING pruned_before"
            ))
            .bind(instance_id)
            .bind(resource)
            .bind(high_water)
            .bind(now())
            .bind(resume)
            .bind(began_at)
            .bind(prune_before)
            .fetch_optional(&mut *c)
            .await?
        });
        let Some(pruned_before) = pruned_before else {
            return Ok(0); // forgotten meanwhile; dropping `tx` rolls back (nothing was written)
        };
        let mut stored = 0;
        for cand in candidates.iter().filter(|c| c.updated_at >= pruned_before) {
            let fresh = on_tx!(&mut tx, |c, pg| {
                sqlx::query(
                    "INSERT INTO event_poll_seen (instance_id, resource, object_id, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(instance_id)
                .bind(resource)
                .bind(&cand.object_id)
                .bind(cand.updated_at)
                .execute(&mut *c)
                .await?
                .rows_affected()
                    == 1
            });
            if fresh {
                insert_event(&mut tx, &cand.event, due_at).await?;
                stored += 1;
            }
        }
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM event_poll_seen WHERE instance_id = $1 AND resource = $2 AND updated_at < $3")
                .bind(instance_id)
                .bind(resource)
                .bind(prune_before)
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await?;
        Ok(stored)
    }

    /// Records the outcome of an instance's poll, replacing the previous one. An
    /// instance deleted meanwhile records nothing.
    pub async fn record_poll(&self, instance_id: i64, polled_at: i64, ok: bool, message: Option<&str>) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query(
                "INSERT INTO event_poll_status (instance_id, polled_at, outcome, message)
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)
                 ON CONFLICT (instance_id) DO UPDATE
                 SET polled_at = excluded.polled_at, outcome = excluded.outcome, message = excluded.message",
            )
            .bind(instance_id)
            .bind(polled_at)
            .bind(if ok { "ok" } else { "failed" })
            .bind(if ok { None } else { message })
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The outcome of the instance's latest poll; `None` before its first.
    pub async fn poll_status(&self, instance_id: i64) -> Result<Option<PollStatus>> {
        Ok(on_pool!(self, |p, pg| {
            let row = sqlx::query("SELECT polled_at, outcome, message FROM event_poll_status WHERE instance_id = $1")
                .bind(instance_id)
                .fetch_optional(p)
                .await?;
            row.map(|r| PollStatus {
                polled_at: r.get("polled_at"),
                ok: r.get::<String, _>("outcome") == "ok",
                message: r.get("message"),
            })
        }))
    }

    /// Forgets the poll marks and turns of instances not in `keep` (events turned
    /// off or switched to webhooks), so turning polling on again starts from then.
    pub async fn forget_poll_marks_except(&self, keep: &[i64]) -> Result<()> {
        self.forget_poll_state(keep, "NOT IN").await
    }

    /// Forgets the marks, announced records and turn of the instances `ids` (their
    /// polling stopped: when it starts again, it starts from then).
    pub async fn forget_polls(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.forget_poll_state(ids, "IN").await
    }

    /// Deletes the poll marks, announced records and turns of the instances that
    /// are (`IN`) or are not (`NOT IN`) among `ids`, in one transaction.
    async fn forget_poll_state(&self, ids: &[i64], membership: &str) -> Result<()> {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin().await?;
        for table in ["event_poll_marks", "event_poll_seen", "event_poll_due"] {
            on_tx!(&mut tx, |c, pg| {
                sqlx::query(&format!("DELETE FROM {table} WHERE instance_id {membership} ({})", json_members(pg, 1, true)))
                    .bind(&ids)
                    .execute(&mut *c)
                    .await?;
            });
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The event log's status after an outcome: NOTIFIED once acknowledged,
/// DISPATCHED once tried (a webhook's event stays RECEIVED until its record was
/// read, see [`DeliveryOutcome::raw`]); `None` leaves it.
fn logged_status(o: &DeliveryOutcome) -> Option<&'static str> {
    match (o.state, o.last_status.is_some() || o.last_error.is_some()) {
        (DeliveryState::Delivered, _) => Some("NOTIFIED"),
        (_, true) => Some("DISPATCHED"),
        _ => None,
    }
}

async fn finish_delivery_sqlite(c: &mut sqlx::SqliteConnection, o: &DeliveryOutcome) -> Result<()> {
    let done = sqlx::query(
        "UPDATE event_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, lease_until = NULL,
                last_status = COALESCE($4, last_status), last_error = $5, last_attempt_at = $6
         WHERE event_row = $7 AND (lease_until = $8 OR $1 = 'delivered')",
    )
    .bind(o.state.as_str())
    .bind(o.attempts)
    .bind(o.next_attempt_at)
    .bind(o.last_status)
    .bind(&o.last_error)
    .bind(o.attempted_at)
    .bind(o.event_row)
    .bind(o.lease_until)
    .execute(&mut *c)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    if let Some(raw) = &o.raw {
        let (raw, raw_z) = pack(raw);
        sqlx::query(
            "UPDATE events SET raw = $1, raw_z = $2, raw_head = NULL, raw_tail = NULL, status = 'DISPATCHED'
             WHERE id = $3 AND status = 'RECEIVED'",
        )
            .bind(raw)
            .bind(raw_z)
            .bind(o.event_row)
            .execute(&mut *c)
            .await?;
    }
    if let Some(status) = logged_status(o) {
        sqlx::query("UPDATE events SET status = $1 WHERE id = $2 AND status NOT IN ('NOTIFIED', 'RECEIVED')")
            .bind(status)
            .bind(o.event_row)
            .execute(&mut *c)
            .await?;
    }
    if let Some(url) = &o.stop_url {
        sqlx::query(
            "INSERT INTO event_stopped_callbacks (instance_id, url, stopped_at)
             SELECT instance_id, $1, $2 FROM event_deliveries WHERE event_row = $3
             ON CONFLICT DO NOTHING",
        )
        .bind(url)
        .bind(now())
        .bind(o.event_row)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// [`finish_delivery_sqlite`] for a batch of distinct jobs in one statement: the
/// job rows whose lease still matches (or that were delivered), then their
/// events' record and status, then the URLs stopped by a 410, the same rules.
async fn finish_deliveries_pg(c: &mut sqlx::PgConnection, outcomes: &[DeliveryOutcome]) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let raw = o.raw.as_deref().map(pack);
            let raw = raw.as_ref();
            serde_json::json!({
                "event_row": o.event_row, "lease_until": o.lease_until, "state": o.state.as_str(),
                "attempts": o.attempts, "next_attempt_at": o.next_attempt_at, "last_status": o.last_status,
                "last_error": o.last_error, "attempted_at": o.attempted_at, "stop_url": o.stop_url,
                "raw": raw.map(|r| r.0), "raw_z": raw.and_then(|r| r.1.as_deref().map(|z| BASE64.encode(z))),
                "status": logged_status(o),
            })
        })
        .collect();
    sqlx::query(
        "WITH o AS (
             SELECT * FROM jsonb_to_recordset($1::jsonb) AS o(event_row BIGINT, lease_until BIGINT, state TEXT,
                 attempts BIGINT, next_attempt_at BIGINT, last_status BIGINT, last_error TEXT, attempted_at BIGINT,
                 stop_url TEXT, raw TEXT, raw_z TEXT, status TEXT)
         ), done AS (
             UPDATE event_deliveries d SET state = o.state, attempts = o.attempts, next_attempt_at = o.next_attempt_at,
                 lease_until = NULL, last_status = COALESCE(o.last_status, d.last_status), last_error = o.last_error,
                 last_attempt_at = o.attempted_at
             FROM o WHERE d.event_row = o.event_row AND (d.lease_until = o.lease_until OR o.state = 'delivered')
             RETURNING d.event_row, d.instance_id
         ), logged AS (
             -- A RECEIVED event given its record becomes DISPATCHED, then takes the
             -- outcome's status; any other takes it unless NOTIFIED already.
             UPDATE events e SET
                 raw = CASE WHEN o.raw IS NOT NULL AND e.status = 'RECEIVED' THEN o.raw ELSE e.raw END,
                 raw_z = CASE WHEN o.raw IS NOT NULL AND e.status = 'RECEIVED' THEN decode(o.raw_z, 'base64') ELSE e.raw_z END,
                 raw_head = CASE WHEN o.raw IS NOT NULL AND e.status = 'RECEIVED' THEN NULL ELSE e.raw_head END,
                 raw_tail = CASE WHEN o.raw IS NOT NULL AND e.status = 'RECEIVED' THEN NULL ELSE e.raw_tail END,
                 status = CASE
                     WHEN o.raw IS NOT NULL AND e.status = 'RECEIVED' THEN COALESCE(o.status, 'DISPATCHED')
                     WHEN o.status IS NOT NULL AND e.status NOT IN ('NOTIFIED', 'RECEIVED') THEN o.status
                     ELSE e.status END
             FROM o JOIN done USING (event_row) WHERE e.id = o.event_row
         )
         INSERT INTO event_stopped_callbacks (instance_id, url, stopped_at)
         SELECT done.instance_id, o.stop_url, $2 FROM done JOIN o USING (event_row) WHERE o.stop_url IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now())
    .execute(&mut *c)
    .await?;
    Ok(())
}
