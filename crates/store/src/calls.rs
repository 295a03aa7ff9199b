//! The vendor call log and hub `Idempotency-Key` answers.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

use crate::{on_pool, on_tx, Param, Result, Store, PRUNE_BATCH};

/// One vendor call on its way into the log.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub instance_id: i64,
    pub method: String,
    /// Vendor path relative to the instance's base URL, without the query.
    pub path: String,
    /// Names of the query parameters sent (never their values).
    pub query_names: Vec<String>,
    pub status: Option<u16>,
    /// `answered`, or what went wrong: `timeout`, `unreachable`, `refused`, `throttled`, ...
    pub outcome: String,
    pub duration_ms: u64,
    pub retries: u32,
    pub at: SystemTime,
}

/// A logged vendor call.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: i64,
    pub instance_id: i64,
    pub method: String,
    pub path: String,
    pub query_names: Vec<String>,
    pub status: Option<i64>,
    pub outcome: String,
    pub duration_ms: i64,
    pub retries: i64,
    pub created_at: String,
}

/// Where a page of the log starts: below a row id (keyset, for `nextPage`), or at an offset.
#[derive(Debug, Clone, Copy)]
pub enum CallsFrom {
    Below(i64),
    Offset(u64),
}

/// The key of an `Idempotency-Key` record.
#[derive(Debug, Clone)]
pub struct IdempotencyScope<'a> {
    pub organization_id: i64,
    pub instance_id: i64,
    pub key: &'a str,
}

/// A stored first answer.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The body is an error (`{message, providerMessage}`), not the vendor's object.
    pub is_error: bool,
}

/// What [`Store::idempotency_begin`] found.
#[derive(Debug, Clone)]
pub enum IdempotencyBegin {
    /// No live record: one is now held for this request, which must finish or release it.
    Started,
    /// The same request is being answered right now.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
    /// The first answer to the same request.
    Replay(StoredAnswer),
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Rows per INSERT, largest first. A batch is cut into these sizes, so at most four
/// distinct statements exist and each is prepared once per connection and cached
/// (preparing a new one for every batch was about 8 % of a hub call's instructions);
/// 128 rows of 9 values (10 on PostgreSQL) stay far below SQLite's 32,766 variables
/// (and PostgreSQL's 65,535).
const CALL_BATCHES: [usize; 4] = [128, 32, 8, 1];

/// The multi-row INSERT of `$chunk` for the backend its executor names (one round
/// trip to the database; the rows bound as a VALUES list rather than one JSON document
/// that would be parsed again for every column of every row).
///
/// The ids follow the calls' order only if the rows do. SQLite keeps the VALUES
/// order; PostgreSQL may reorder the rows in the semi-join (a hash join did, and the
/// log paged wrong), so there each row carries its index and the rows are sorted.
macro_rules! insert_calls {
    ($chunk:expr, $pg:expr) => {{
        let mut insert = sqlx::QueryBuilder::new(if $pg {
            "INSERT INTO vendor_calls (instance_id, method, path, query_names, status, outcome,
                                       duration_ms, retries, created_at)
             SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9 FROM ("
        } else {
            "INSERT INTO vendor_calls (instance_id, method, path, query_names, status, outcome,
                                       duration_ms, retries, created_at)
             SELECT * FROM ("
        });
        insert.push_values($chunk.iter().zip(0_i64..), |mut row, (c, n)| {
            row.push_bind(c.instance_id)
                .push_bind(c.method.as_str())
                .push_bind(c.path.as_str())
                .push_bind(serde_json::to_string(&c.query_names).unwrap_or_else(|_| "[]".into()))
                .push_bind(c.status.map(i64::from))
                .push_bind(c.outcome.as_str())
                .push_bind(c.duration_ms.min(i64::MAX as u64) as i64)
                .push_bind(i64::from(c.retries))
                .push_bind(rfc3339(c.at));
            if $pg {
                row.push_bind(n);
            }
        });
        // Both name a VALUES list's columns column1, column2, ...
        insert.push(") AS v WHERE EXISTS (SELECT 1 FROM instances WHERE id = v.column1)");
        if $pg {
            insert.push(" ORDER BY v.column10");
        }
        insert
    }};
}

impl Store {
    /// Appends calls (one transaction per batch); calls of an instance deleted
    /// meanwhile are skipped.
    pub async fn record_calls(&self, calls: &[NewCall]) -> Result<()> {
        let mut chunks = Vec::new();
        let mut rest = calls;
        while !rest.is_empty() {
            let size = CALL_BATCHES.iter().copied().find(|s| *s <= rest.len()).unwrap_or(1);
            let (chunk, tail) = rest.split_at(size);
            chunks.push(chunk);
            rest = tail;
        }
        match chunks.as_slice() {
            [] => Ok(()),
            [one] => {
                on_pool!(self, |p, pg| {
                    insert_calls!(one, pg).build().persistent(true).execute(p).await?;
                });
                Ok(())
            }
            many => {
                let mut tx = self.begin().await?;
                for chunk in many {
                    on_tx!(&mut tx, |c, pg| {
                        insert_calls!(chunk, pg).build().persistent(true).execute(&mut *c).await?;
                    });
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Up to `limit` logged calls of the organization's instance, newest first.
    pub async fn calls(&self, org_id: i64, instance_id: i64, from: CallsFrom, limit: u64) -> Result<Vec<CallRow>> {
        let (below, offset) = match from {
            CallsFrom::Below(id) => (id, 0),
            CallsFrom::Offset(n) => (i64::MAX, n),
        };
        on_pool!(self, |p, pg| {
            let rows = sqlx::query(
                "SELECT c.id, c.instance_id, c.method, c.path, c.query_names, c.status, c.outcome,
                        c.duration_ms, c.retries, c.created_at
                 FROM vendor_calls c JOIN instances i ON i.id = c.instance_id
                 WHERE i.organization_id = $1 AND c.instance_id = $2 AND c.id < $3
                 ORDER BY c.id DESC LIMIT $4 OFFSET $5",
            )
            .bind(org_id)
            .bind(instance_id)
            .bind(below)
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    let names: String = r.try_get("query_names")?;
                    Ok(CallRow {
                        id: r.try_get("id")?,
                        instance_id: r.try_get("instance_id")?,
                        method: r.try_get("method")?,
                        path: r.try_get("path")?,
                        query_names: serde_json::from_str(&names).unwrap_or_default(),
                        status: r.try_get("status")?,
                        outcome: r.try_get("outcome")?,
                        duration_ms: r.try_get("duration_ms")?,
                        retries: r.try_get("retries")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// Drops log rows older than `max_age`, and all but the newest `keep_per_instance`
    /// rows of each instance, [`PRUNE_BATCH`] rows per statement (each its own short
    /// write transaction). Returns the rows removed.
    pub async fn prune_calls(&self, max_age: Duration, keep_per_instance: u64) -> Result<u64> {
        let cutoff = rfc3339(SystemTime::now().checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH));
        let keep = keep_per_instance.min(i64::MAX as u64) as i64;
        let mut removed = self
            .delete_in_batches(
                "DELETE FROM vendor_calls WHERE id IN (SELECT id FROM vendor_calls WHERE created_at < $1 LIMIT $2)",
                &[Param::Text(&cutoff)],
                PRUNE_BATCH,
                u64::MAX,
            )
            .await?;
        let crowded: Vec<(i64, i64)> = on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT instance_id, COUNT(*) FROM vendor_calls GROUP BY instance_id HAVING COUNT(*) > $1")
                .bind(keep)
                .fetch_all(p)
                .await?
        });
        for (instance, rows) in crowded {
            removed += self
                .delete_in_batches(
                    "DELETE FROM vendor_calls WHERE id IN (
                         SELECT id FROM vendor_calls WHERE instance_id = $1 ORDER BY id LIMIT $2)",
                    &[Param::Int(instance)],
                    PRUNE_BATCH,
                    (rows - keep) as u64,
                )
                .await?;
        }
        Ok(removed)
    }

    /// Drops the oldest log rows (lowest ids, whatever their instance) beyond the
    /// newest `max_rows` of the whole log, [`PRUNE_BATCH`] per statement. Returns
    /// the rows removed.
    pub async fn prune_calls_over(&self, max_rows: u64) -> Result<u64> {
        let rows: i64 = on_pool!(self, |p, pg| sqlx::query_scalar("SELECT COUNT(*) FROM vendor_calls").fetch_one(p).await?);
        let excess = (rows.max(0) as u64).saturating_sub(max_rows);
        if excess == 0 {
            return Ok(0);
        }
        self.delete_in_batches(
            "DELETE FROM vendor_calls WHERE id IN (SELECT id FROM vendor_calls ORDER BY id LIMIT $1)",
            &[],
            PRUNE_BATCH,
            excess,
        )
        .await
    }

    /// Claims `scope` for a request with `fingerprint`, or says why not.
    ///
    /// A record past `ttl` is gone; an in-flight record older than `lease` (its server
    /// died mid-call) is taken over, so a key cannot stay stuck in flight.
    pub async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope<'_>,
        fingerprint: &[u8],
        ttl: Duration,
        lease: Duration,
    ) -> Result<IdempotencyBegin> {
        let now = epoch_ms(SystemTime::now());
        let mut tx = self.begin().await?;
        let found = on_tx!(&mut tx, |c, pg| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE organization_id = $1 AND instance_id = $2 AND key = $3
                 AND (expires_ms <= $4 OR (status IS NULL AND created_ms <= $5))",
            )
            .bind(scope.organization_id)
            .bind(scope.instance_id)
            .bind(scope.key)
            .bind(now)
            .bind(now - lease.as_millis() as i64)
            .execute(&mut *c)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (organization_id, instance_id, key, fingerprint, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(scope.organization_id)
            .bind(scope.instance_id)
            .bind(scope.key)
            .bind(fingerprint)
            .bind(now)
            .bind(now + ttl.as_millis() as i64)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if inserted == 1 {
                IdempotencyBegin::Started
            } else {
                let row = sqlx::query(
                    "SELECT fingerprint, status, body, is_error FROM idempotency_keys
                     WHERE organization_id = $1 AND instance_id = $2 AND key = $3",
                )
                .bind(scope.organization_id)
                .bind(scope.instance_id)
                .bind(scope.key)
                .fetch_one(&mut *c)
                .await?;
                let stored: Vec<u8> = row.try_get("fingerprint")?;
                let status: Option<i64> = row.try_get("status")?;
                match status {
                    _ if stored != fingerprint => IdempotencyBegin::Mismatch,
                    None => IdempotencyBegin::InFlight,
                    Some(status) => IdempotencyBegin::Replay(StoredAnswer {
                        status: u16::try_from(status).unwrap_or(500),
                        body: row.try_get::<Option<Vec<u8>>, _>("body")?.unwrap_or_default(),
                        is_error: row.try_get("is_error")?,
                    }),
                }
            }
        });
        tx.commit().await?;
        Ok(found)
    }

    /// Stores the first answer of a claimed key.
    pub async fn idempotency_finish(&self, scope: &IdempotencyScope<'_>, answer: &StoredAnswer) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $1, body = $2, is_error = $3
                 WHERE organization_id = $4 AND instance_id = $5 AND key = $6 AND status IS NULL",
            )
            .bind(i64::from(answer.status))
            .bind(&answer.body)
            .bind(answer.is_error)
            .bind(scope.organization_id)
            .bind(scope.instance_id)
            .bind(scope.key)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Frees a claimed key whose request never reached the vendor, so it can be used again.
    pub async fn idempotency_release(&self, scope: &IdempotencyScope<'_>) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE organization_id = $1 AND instance_id = $2 AND key = $3 AND status IS NULL",
            )
            .bind(scope.organization_id)
            .bind(scope.instance_id)
            .bind(scope.key)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Removes expired idempotency records; returns how many.
    pub async fn prune_idempotency(&self) -> Result<u64> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_ms <= $1")
                .bind(epoch_ms(SystemTime::now()))
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
