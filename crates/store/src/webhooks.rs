//! Vendor webhooks an instance registered, and the durable intake of the
//! vendor's calls.

use serde::{Deserialize, Serialize};
use crate::events::{insert_event, StoredPayloads};
use crate::{durably, now, on_pool, on_tx, NewEvent, Result, Store, Tx};

/// One hook at the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorHook {
    /// The hub resource it watches (`orders`).
    pub object: String,
    /// The vendor's scope (`store/order/*`).
    pub scope: String,
    /// The vendor's id of the hook.
    pub id: String,
}

/// The webhooks of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub instance_id: i64,
    pub element_key: String,
    pub instance_key: String,
    pub secret_hash: Vec<u8>,
    pub hooks: Vec<VendorHook>,
    pub destination: String,
}

/// A vendor call's event on its way into the store, with the digest that tells a
/// repeat of the call (SHA-256 of the values the element names; `None`: never a repeat).
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub event: NewEvent,
    pub digest: Option<Vec<u8>>,
}

/// The webhooks of an instance and who owns it, as an incoming vendor call needs them.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub webhook: WebhookRow,
    pub organization_id: i64,
    pub disabled: bool,
}

#[derive(sqlx::FromRow)]
struct Stored {
    instance_id: i64,
    element_key: String,
    instance_key: String,
    secret_hash: Vec<u8>,
    hooks: String,
    destination: String,
}

#[derive(sqlx::FromRow)]
struct Targeted {
    #[sqlx(flatten)]
    stored: Stored,
    organization_id: i64,
    disabled: bool,
}

impl From<Stored> for WebhookRow {
    fn from(s: Stored) -> Self {
        // The column is written only by `write_webhook`; an unreadable one reads as no hooks.
        let hooks = serde_json::from_str(&s.hooks).unwrap_or_default();
        WebhookRow {
            instance_id: s.instance_id,
            element_key: s.element_key,
            instance_key: s.instance_key,
            secret_hash: s.secret_hash,
            hooks,
            destination: s.destination,
        }
    }
}

/// Replaces (or, with `None`, removes) an instance's webhook row inside `tx`.
pub(crate) async fn write_webhook(tx: &mut Tx<'_>, instance_id: i64, row: Option<&WebhookRow>) -> Result<()> {
    on_tx!(tx, |c, pg| {
        sqlx::query("DELETE FROM event_webhooks WHERE instance_id = $1").bind(instance_id).execute(&mut *c).await?;
        let Some(w) = row else { return Ok(()) };
        sqlx::query(
            "INSERT INTO event_webhooks (instance_id, element_key, instance_key, secret_hash, hooks, destination, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(instance_id)
        .bind(&w.element_key)
        .bind(&w.instance_key)
        .bind(&w.secret_hash)
        .bind(serde_json::to_string(&w.hooks).unwrap_or_else(|_| "[]".into()))
        .bind(&w.destination)
        .bind(now())
        .execute(&mut *c)
        .await?;
    });
    Ok(())
}

const SELECT: &str = "SELECT w.instance_id, w.element_key, w.instance_key, w.secret_hash, w.hooks, w.destination";

impl Store {
    /// The webhooks an instance registered, if any.
    pub async fn webhook(&self, instance_id: i64) -> Result<Option<WebhookRow>> {
        let row: Option<Stored> = on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("{SELECT} FROM event_webhooks w WHERE w.instance_id = $1"))
                .bind(instance_id)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(WebhookRow::from))
    }

    /// Every instance's webhooks, for the periodic check.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        let rows: Vec<Stored> = on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("{SELECT} FROM event_webhooks w ORDER BY w.instance_id")).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(WebhookRow::from).collect())
    }

    /// Replaces an instance's webhooks after a re-registration, unless they changed
    /// meanwhile (`expected_key` is the instance key they were read with): false then.
    pub async fn replace_webhook(&self, expected_key: &str, row: &WebhookRow) -> Result<bool> {
        let mut tx = self.begin().await?;
        // PostgreSQL locks the row read until commit, so no writer slips in between
        // the check and the write (SQLite has one writer at a time: a write after
        // another's commit fails the transaction instead).
        let current: Option<String> = on_tx!(&mut tx, |c, pg| {
            let lock = if pg { " FOR UPDATE" } else { "" };
            sqlx::query_scalar(&format!("SELECT instance_key FROM event_webhooks WHERE instance_id = $1{lock}"))
                .bind(row.instance_id)
                .fetch_optional(&mut *c)
                .await?
        });
        if current.as_deref() != Some(expected_key) {
            return Ok(false);
        }
        write_webhook(&mut tx, row.instance_id, Some(row)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The instance an incoming vendor call is for, by the path's keys.
    pub async fn webhook_target(&self, element_key: &str, instance_key: &str) -> Result<Option<WebhookTarget>> {
        let row: Option<Targeted> = on_pool!(self, |p, pg| {
            sqlx::query_as(&format!(
                "{SELECT}, i.organization_id, i.disabled FROM event_webhooks w JOIN instances i ON i.id = w.instance_id
                 WHERE w.instance_key = $1 AND w.element_key = $2"
            ))
            .bind(instance_key)
            .bind(element_key)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|t| WebhookTarget { webhook: t.stored.into(), organization_id: t.organization_id, disabled: t.disabled }))
    }

    /// Stores vendor calls' events with their delivery jobs (due at `due_at`) in one
    /// transaction committed durably (on SQLite with `synchronous=FULL`): the caller
    /// acknowledges a vendor's call after this, and the vendor will not send it
    /// again, so not even a power cut may lose it. Callers batch many calls into one
    /// commit (one fsync).
    ///
    /// A call with a digest that an earlier call of the same instance had at or
    /// after `repeats_since` (epoch ms) is a repeat: nothing is stored for it and its
    /// answer is the earlier event's id. That holds inside the batch too, and
    /// between servers on one database (the digest is the table's key, so the second
    /// commit sees the first). Answers each call's event id, in order.
    pub async fn insert_incoming_durably(
        &self,
        calls: &[IncomingEvent],
        due_at: i64,
        received_at: i64,
        repeats_since: i64,
    ) -> Result<Vec<String>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        durably!(self, |tx| {
            match tx {
                Tx::Sqlite(_) => {
                    let mut answers = Vec::with_capacity(calls.len());
                    for call in calls {
                        answers.push(insert_incoming(tx, call, due_at, received_at, repeats_since).await?);
                    }
                    answers
                }
                Tx::Postgres(t) => {
                    // One statement per run of calls with distinct digests (a statement
                    // cannot upsert one row twice); a repeat inside the batch then sees
                    // the first call's row, as one call after another would.
                    let mut answers = Vec::with_capacity(calls.len());
                    let (mut from, mut seen) = (0, std::collections::HashSet::new());
                    for (i, call) in calls.iter().enumerate() {
                        if let Some(digest) = &call.digest {
                            if !seen.insert((call.event.instance_id, digest)) {
                                answers.extend(insert_incoming_pg(t, &calls[from..i], due_at, received_at, repeats_since).await?);
                                (from, seen) = (i, std::collections::HashSet::from([(call.event.instance_id, digest)]));
                            }
                        }
                    }
                    answers.extend(insert_incoming_pg(t, &calls[from..], due_at, received_at, repeats_since).await?);
                    answers
                }
            }
        })
    }

    /// Forgets up to `limit` webhook call digests received before `before_ms` (calls
    /// sent again after that are new events); how many went.
    pub async fn prune_webhook_digests(&self, before_ms: i64, limit: i64) -> Result<u64> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query(
                "DELETE FROM event_webhook_digests WHERE (instance_id, digest) IN (
                     SELECT instance_id, digest FROM event_webhook_digests WHERE received_at < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(limit)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }
}

/// One vendor call into the open transaction: its event id, or the first call's
/// when it is a repeat (see [`Store::insert_incoming_durably`]).
async fn insert_incoming(tx: &mut Tx<'_>, call: &IncomingEvent, due_at: i64, received_at: i64, repeats_since: i64) -> Result<String> {
    if let Some(digest) = &call.digest {
        // New, or the same digest seen before the window (replaced): this call is
        // an event. Otherwise the row stays and names the first.
        let first: Option<String> = on_tx!(&mut *tx, |c, pg| {
            let fresh = sqlx::query(
                "INSERT INTO event_webhook_digests (instance_id, digest, event_id, received_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance_id, digest) DO UPDATE
                 SET event_id = excluded.event_id, received_at = excluded.received_at
                 WHERE event_webhook_digests.received_at < $5",
            )
            .bind(call.event.instance_id)
            .bind(digest)
            .bind(&call.event.event_id)
            .bind(received_at)
            .bind(repeats_since)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1;
            if fresh {
                None
            } else {
                Some(
                    sqlx::query_scalar("SELECT event_id FROM event_webhook_digests WHERE instance_id = $1 AND digest = $2")
                        .bind(call.event.instance_id)
                        .bind(digest)
                        .fetch_one(&mut *c)
                        .await?,
                )
            }
        });
        if let Some(first) = first {
            return Ok(first);
        }
    }
    insert_event(tx, &call.event, due_at).await?;
    Ok(call.event.event_id.clone())
}

/// [`insert_incoming`] for calls with distinct digests in one PostgreSQL
/// statement (one round trip, not three a call): the digests upserted, the events
/// of the fresh calls and of those without a digest with their delivery jobs, and
/// each call's answer, in order.
async fn insert_incoming_pg(
    c: &mut sqlx::PgConnection,
    calls: &[IncomingEvent],
    due_at: i64,
    received_at: i64,
    repeats_since: i64,
) -> Result<Vec<String>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = calls
        .iter()
        .enumerate()
        .map(|(ord, call)| {
            let e = &call.event;
            let mut row = serde_json::json!({
                "ord": ord, "digest_hex": call.digest.as_deref().map(hex), "event_id": e.event_id,
                "organization_id": e.organization_id, "instance_id": e.instance_id, "element_key": e.element_key,
                "source": e.source, "status": e.status, "event_date": e.event_date, "notified_data": e.notified_data,
            });
            if let Some(row) = row.as_object_mut() {
                row.extend(StoredPayloads::of(e).json_members().map(|(k, v)| (k.to_owned(), v)));
            }
            row
        })
        .collect();
    let answers: Vec<(i32, Option<String>)> = sqlx::query_as(
        "WITH c AS (
             SELECT c.*, decode(c.digest_hex, 'hex') AS digest
             FROM jsonb_to_recordset($1::jsonb) AS c(ord INT, digest_hex TEXT, event_id TEXT, organization_id BIGINT,
                 instance_id BIGINT, element_key TEXT, source TEXT, status TEXT, event_date TEXT, provider_data TEXT,
                 provider_data_z TEXT, notified_data TEXT, raw TEXT, raw_z TEXT, raw_head BIGINT, raw_tail BIGINT)
         ), fresh AS (
             INSERT INTO event_webhook_digests (instance_id, digest, event_id, received_at)
             SELECT instance_id, digest, event_id, $2 FROM c WHERE digest IS NOT NULL
             ON CONFLICT (instance_id, digest) DO UPDATE
             SET event_id = excluded.event_id, received_at = excluded.received_at
             WHERE event_webhook_digests.received_at < $3
             RETURNING event_id
         ), stored AS (
             INSERT INTO events (event_id, organization_id, instance_id, element_key, source, status, event_date,
                                 provider_data, provider_data_z, notified_data, raw, raw_z, raw_head, raw_tail)
             SELECT event_id, organization_id, instance_id, element_key, source, status, event_date,
                    provider_data, decode(provider_data_z, 'base64'), notified_data, raw, decode(raw_z, 'base64'),
                    raw_head, raw_tail
             FROM c WHERE digest IS NULL OR event_id IN (SELECT event_id FROM fresh)
             ORDER BY ord
             RETURNING id, instance_id, event_id
         ), jobs AS (
             INSERT INTO event_deliveries (event_row, instance_id, next_attempt_at) SELECT id, instance_id, $4 FROM stored
         )
         -- A repeat's answer is the first call's event, as the statement's snapshot
         -- shows its row (the upsert left it). A row the snapshot shows from before
         -- the window was replaced by another node meanwhile: no answer here.
         SELECT c.ord, COALESCE(s.event_id, d.event_id)
         FROM c LEFT JOIN stored s ON s.event_id = c.event_id
         LEFT JOIN event_webhook_digests d ON s.event_id IS NULL AND d.instance_id = c.instance_id AND d.digest = c.digest
             AND d.received_at >= $3
         ORDER BY c.ord",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(received_at)
    .bind(repeats_since)
    .bind(due_at)
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(calls.len());
    for ((_, answer), call) in answers.into_iter().zip(calls) {
        match answer {
            Some(id) => out.push(id),
            // The first call's row was committed (or replaced, the old one being
            // out of the window) by another node after this statement's snapshot
            // was taken: a new statement sees it.
            None => out.push(
                sqlx::query_scalar("SELECT event_id FROM event_webhook_digests WHERE instance_id = $1 AND digest = $2")
                    .bind(call.event.instance_id)
                    .bind(&call.digest)
                    .fetch_one(&mut *c)
                    .await?,
            ),
        }
    }
    Ok(out)
}

/// Lower-case hex, for bytes passed inside a JSON parameter.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
