//! Vendor webhooks an instance registered, and the durable intake of the
//! vendor's calls.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, Sqlite, Transaction};

use crate::events::insert_event;
use crate::{end_full_sync, now, NewEvent, Result, Store};

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
pub(crate) async fn write_webhook(tx: &mut Transaction<'_, Sqlite>, instance_id: i64, row: Option<&WebhookRow>) -> Result<()> {
    sqlx::query("DELETE FROM event_webhooks WHERE instance_id = ?").bind(instance_id).execute(&mut **tx).await?;
    let Some(w) = row else { return Ok(()) };
    sqlx::query(
        "INSERT INTO event_webhooks (instance_id, element_key, instance_key, secret_hash, hooks, destination, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(instance_id)
    .bind(&w.element_key)
    .bind(&w.instance_key)
    .bind(&w.secret_hash)
    .bind(serde_json::to_string(&w.hooks).unwrap_or_else(|_| "[]".into()))
    .bind(&w.destination)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SELECT: &str = "SELECT w.instance_id, w.element_key, w.instance_key, w.secret_hash, w.hooks, w.destination";

impl Store {
    /// The webhooks an instance registered, if any.
    pub async fn webhook(&self, instance_id: i64) -> Result<Option<WebhookRow>> {
        let row: Option<Stored> = sqlx::query_as(&format!("{SELECT} FROM event_webhooks w WHERE w.instance_id = ?"))
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(WebhookRow::from))
    }

    /// Every instance's webhooks, for the periodic check.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        let rows: Vec<Stored> =
            sqlx::query_as(&format!("{SELECT} FROM event_webhooks w ORDER BY w.instance_id")).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(WebhookRow::from).collect())
    }

    /// Replaces an instance's webhooks after a re-registration, unless they changed
    /// meanwhile (`expected_key` is the instance key they were read with): false then.
    pub async fn replace_webhook(&self, expected_key: &str, row: &WebhookRow) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let current: Option<String> = sqlx::query_scalar("SELECT instance_key FROM event_webhooks WHERE instance_id = ?")
            .bind(row.instance_id)
            .fetch_optional(&mut *tx)
            .await?;
        if current.as_deref() != Some(expected_key) {
            return Ok(false);
        }
        write_webhook(&mut tx, row.instance_id, Some(row)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The instance an incoming vendor call is for, by the path's keys.
    pub async fn webhook_target(&self, element_key: &str, instance_key: &str) -> Result<Option<WebhookTarget>> {
        let row: Option<Targeted> = sqlx::query_as(&format!(
            "{SELECT}, i.organization_id, i.disabled FROM event_webhooks w JOIN instances i ON i.id = w.instance_id
             WHERE w.instance_key = ? AND w.element_key = ?"
        ))
        .bind(instance_key)
        .bind(element_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|t| WebhookTarget { webhook: t.stored.into(), organization_id: t.organization_id, disabled: t.disabled }))
    }

    /// Stores events with their delivery jobs (due at `due_at`) in one transaction
    /// committed with `synchronous=FULL`: the caller acknowledges a vendor's call
    /// after this, and the vendor will not send it again, so not even a power cut
    /// may lose it. Callers batch many calls into one commit (one fsync).
    pub async fn insert_events_durably(&self, events: &[NewEvent], due_at: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.full_sync_connection().await?;
        let written = async {
            let mut tx = conn.begin().await?;
            for e in events {
                insert_event(&mut tx, e, due_at).await?;
            }
            tx.commit().await?;
            Ok::<(), crate::StoreError>(())
        }
        .await;
        end_full_sync(conn, written).await
    }
}
