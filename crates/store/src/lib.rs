//! Persistence on SQLite through sqlx.
//!
//! The store never sees a plaintext secret: callers hand it sealed blobs (see
//! [`Sealer`]) and hashes of caller secrets. Every instance query is scoped by
//! organization inside this crate, so a handler cannot forget the tenant check.

use std::str::FromStr;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

pub mod calls;
pub mod model;
mod oauth;
pub use calls::*;
pub use model::*;
mod events;
pub use events::*;
mod webhooks;
pub use webhooks::*;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite://PATH): {0}")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Encrypts one configuration value for one row. The store calls it inside the
/// transaction that knows the row's instance id, so the blob can be bound to it.
pub trait Sealer: Send + Sync {
    /// Returns the blob and the id of the key that sealed it.
    fn seal(&self, instance_id: i64, key: &str, plaintext: &str) -> (Vec<u8>, u32);
}

/// The associated data that binds a sealed configuration value to its row, so a
/// blob copied into another row or instance fails to open.
pub fn config_aad(instance_id: i64, key: &str) -> Vec<u8> {
    format!("instance:{instance_id}:{key}").into_bytes()
}

/// A configuration value on its way into the store.
#[derive(Clone)]
pub enum NewValue {
    Plain(String),
    /// Plaintext that the [`Sealer`] encrypts before it is written.
    Secret(String),
    /// Keep the sealed value already stored under this key (a `"********"` sent back).
    Keep,
}

impl std::fmt::Debug for NewValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewValue::Plain(v) => write!(f, "Plain({v:?})"),
            NewValue::Secret(_) => f.write_str("Secret(***)"),
            NewValue::Keep => f.write_str("Keep"),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Puts a [`Store::full_sync_connection`] back to NORMAL before the pool reuses it
/// (it must not keep FULL, or a failed transaction's state, for other work).
async fn end_full_sync<T>(mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>, written: Result<T>) -> Result<T> {
    let reset = sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await;
    let value = written?;
    reset?;
    Ok(value)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// A pooled connection whose commits fsync (`synchronous=FULL`), for the few
    /// writes that must survive a power cut; give it back through [`end_full_sync`].
    async fn full_sync_connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        Ok(conn)
    }

    /// Opens (creating if needed) the database and runs the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only a power loss can
            // drop the last commits. FULL would fsync every commit for no gain here.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- meta ----

    pub async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Stores `value` unless the key exists; returns what is stored afterwards,
    /// so two processes racing on a fresh database agree on one value.
    pub async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self.meta_get(key).await?.unwrap_or_default())
    }

    /// Overwrites one meta value (key rotation re-seals the canary).
    pub async fn meta_set(&self, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- tenants ----

    pub async fn organization_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every organization, oldest first.
    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        Ok(sqlx::query_as("SELECT id, name, created_at FROM organizations ORDER BY id").fetch_all(&self.pool).await?)
    }

    /// The users of one organization, or of all when `org_id` is `None`, oldest first.
    pub async fn users(&self, org_id: Option<i64>) -> Result<Vec<User>> {
        Ok(sqlx::query_as(
            "SELECT id, organization_id, email, first_name, last_name, created_at FROM users
             WHERE ?1 IS NULL OR organization_id = ?1 ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates an organization and its first user in one transaction.
    pub async fn create_organization(
        &self,
        name: &str,
        org_secret_hash: &[u8],
        email: &str,
        user_secret_hash: &[u8],
    ) -> Result<(Organization, User)> {
        let mut tx = self.pool.begin().await?;
        let created = now();
        let org: Organization = sqlx::query_as(
            "INSERT INTO organizations (name, secret_hash, created_at) VALUES (?, ?, ?)
             RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(org_secret_hash)
        .bind(&created)
        .fetch_one(&mut *tx)
        .await?;
        let user = insert_user(&mut tx, org.id, email, user_secret_hash).await?;
        tx.commit().await?;
        Ok((org, user))
    }

    pub async fn create_user(&self, org_id: i64, email: &str, secret_hash: &[u8]) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM organizations WHERE id = ?")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::Conflict(format!("no organization {org_id}")));
        }
        let user = insert_user(&mut tx, org_id, email, secret_hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces an organization's secret hash; false when there is no such organization.
    pub async fn reset_organization_secret(&self, id: i64, secret_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE organizations SET secret_hash = ? WHERE id = ?")
            .bind(secret_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn reset_user_secret(&self, id: i64, secret_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET secret_hash = ? WHERE id = ?")
            .bind(secret_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The caller whose user and organization secrets hash to these values, if the
    /// user belongs to that organization.
    pub async fn authenticate(&self, user_hash: &[u8], org_hash: &[u8]) -> Result<Option<Caller>> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.first_name, u.last_name, o.id AS organization_id
             FROM users u JOIN organizations o ON o.id = u.organization_id
             WHERE u.secret_hash = ? AND o.secret_hash = ?",
        )
        .bind(user_hash)
        .bind(org_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- instances ----

    /// Inserts an instance and its configuration in one transaction.
    pub async fn create_instance(
        &self,
        new: &NewInstance,
        config: &[(String, NewValue)],
        sealer: &dyn Sealer,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let created = now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO instances (organization_id, user_id, element_key, name, token_hash, tags,
                                    events_enabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(new.organization_id)
        .bind(new.user_id)
        .bind(&new.element_key)
        .bind(&new.name)
        .bind(&new.token_hash)
        .bind(serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into()))
        .bind(new.events_enabled)
        .bind(&created)
        .bind(&created)
        .fetch_one(&mut *tx)
        .await?;
        write_configuration(&mut tx, id, config, sealer).await?;
        if let Some(w) = &new.webhook {
            webhooks::write_webhook(&mut tx, id, Some(w)).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// One instance of an organization.
    pub async fn instance(&self, org_id: i64, id: i64) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE organization_id = ? AND id = ?"))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// One instance by id, whatever its organization (for the platform's own work,
    /// never for a caller's request).
    pub async fn instance_by_id(&self, id: i64) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE id = ?")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Records the vendor account's time zone as the vendor named it, or forgets it
    /// (`None`: read it again at the next call that needs it, as after a
    /// re-authorization, which may have connected another account).
    pub async fn set_account_zone(&self, instance_id: i64, zone: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE instances SET account_zone = ? WHERE id = ?").bind(zone).bind(instance_id).execute(&self.pool).await?;
        Ok(())
    }

    /// The instance whose token hashes to `token_hash`, whatever its organization:
    /// the caller compares organizations and answers 401 on a mismatch.
    pub async fn instance_by_token(&self, token_hash: &[u8]) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE token_hash = ?"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The organization's instances, optionally only those carrying every tag given.
    pub async fn instances(&self, org_id: i64, tags: &[String]) -> Result<Vec<InstanceRow>> {
        let mut sql = format!("{INSTANCE_SELECT} WHERE organization_id = ?");
        for _ in tags {
            sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(instances.tags) WHERE json_each.value = ?)");
        }
        sql.push_str(" ORDER BY id");
        let mut query = sqlx::query_as(&sql).bind(org_id);
        for tag in tags {
            query = query.bind(tag);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Updates the instance and upserts its configuration; with `replace`, keys not
    /// given are removed. False when the instance is not the organization's.
    pub async fn update_instance(
        &self,
        org_id: i64,
        id: i64,
        update: &InstanceUpdate,
        config: &[(String, NewValue)],
        replace: bool,
        sealer: &dyn Sealer,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE instances SET name = COALESCE(?, name), tags = COALESCE(?, tags),
                    events_enabled = COALESCE(?, events_enabled), valid = COALESCE(?, valid),
                    account_zone = CASE WHEN ? THEN NULL ELSE account_zone END, updated_at = ?
             WHERE organization_id = ? AND id = ?",
        )
        .bind(&update.name)
        .bind(update.tags.as_ref().map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into())))
        .bind(update.events_enabled)
        .bind(update.valid)
        .bind(update.forget_account_zone)
        .bind(now())
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if replace {
            let keep: Vec<&str> = config.iter().map(|(k, _)| k.as_str()).collect();
            let keep = serde_json::to_string(&keep).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "DELETE FROM instance_configuration WHERE instance_id = ?
                 AND key NOT IN (SELECT value FROM json_each(?))",
            )
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        }
        write_configuration(&mut tx, id, config, sealer).await?;
        if let Some(w) = &update.webhook {
            webhooks::write_webhook(&mut tx, id, w.as_ref()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_disabled(&self, org_id: i64, id: i64, disabled: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE instances SET disabled = ?, updated_at = ? WHERE organization_id = ? AND id = ?",
        )
        .bind(disabled)
        .bind(now())
        .bind(org_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the instance and its configuration; its token stops working at once.
    pub async fn delete_instance(&self, org_id: i64, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM instances WHERE organization_id = ? AND id = ?")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The stored configuration rows of an instance (secrets still sealed).
    pub async fn configuration(&self, instance_id: i64) -> Result<Vec<ConfigRow>> {
        Ok(sqlx::query_as(
            "SELECT id, key, value, secret FROM instance_configuration WHERE instance_id = ? ORDER BY id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?)
    }

    // ---- key rotation ----

    /// Up to `limit` sealed rows whose key is not `current_key_id`.
    pub async fn sealed_rows_not_under(&self, current_key_id: u32, limit: i64) -> Result<Vec<SealedRow>> {
        Ok(sqlx::query_as(
            "SELECT id, instance_id, key, secret FROM instance_configuration
             WHERE secret IS NOT NULL AND key_id <> ? ORDER BY id LIMIT ?",
        )
        .bind(current_key_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces sealed blobs in one transaction; a row whose blob changed since it
    /// was read (a concurrent write) is left alone.
    pub async fn reseal(&self, rows: &[(SealedRow, Vec<u8>, u32)]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (row, blob, key_id) in rows {
            changed += sqlx::query(
                "UPDATE instance_configuration SET secret = ?, key_id = ? WHERE id = ? AND secret = ?",
            )
            .bind(blob)
            .bind(key_id)
            .bind(row.id)
            .bind(&row.secret)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }
}

const INSTANCE_SELECT: &str = "SELECT id, organization_id, user_id, element_key, name, tags, valid,
    disabled, events_enabled, created_at, updated_at, account_zone FROM instances";

async fn insert_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    org_id: i64,
    email: &str,
    secret_hash: &[u8],
) -> Result<User> {
    let result = sqlx::query_as(
        "INSERT INTO users (organization_id, email, secret_hash, created_at) VALUES (?, ?, ?, ?)
         RETURNING id, organization_id, email, first_name, last_name, created_at",
    )
    .bind(org_id)
    .bind(email)
    .bind(secret_hash)
    .bind(now())
    .fetch_one(&mut **tx)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("a user with email {email} already exists in organization {org_id}"),
        )),
        other => Ok(other?),
    }
}

async fn write_configuration(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    instance_id: i64,
    config: &[(String, NewValue)],
    sealer: &dyn Sealer,
) -> Result<()> {
    for (key, value) in config {
        let (plain, secret, key_id) = match value {
            NewValue::Plain(v) => (Some(v.clone()), None, None),
            NewValue::Secret(v) => {
                let (blob, key_id) = sealer.seal(instance_id, key, v);
                (None, Some(blob), Some(key_id))
            }
            NewValue::Keep => continue,
        };
        sqlx::query(
            "INSERT INTO instance_configuration (instance_id, key, value, secret, key_id)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(instance_id, key) DO UPDATE
             SET value = excluded.value, secret = excluded.secret, key_id = excluded.key_id",
        )
        .bind(instance_id)
        .bind(key)
        .bind(plain)
        .bind(secret)
        .bind(key_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
