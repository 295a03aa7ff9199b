//! Persistence through sqlx, on SQLite (the embedded default) or PostgreSQL.
//!
//! Each backend has its own pool type and migrations; every operation is written
//! once and compiled for both by [`on_pool!`]/[`on_tx!`], with per-backend SQL only
//! where the dialects differ (JSON arrays, `MAX`/`GREATEST`, row locks). Queries use
//! `$N` placeholders, which both drivers bind by number.
//!
//! The store never sees a plaintext secret: callers hand it sealed blobs (see
//! [`Sealer`]) and hashes of caller secrets. Every instance query is scoped by
//! organization inside this crate, so a handler cannot forget the tenant check.

use std::str::FromStr;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Row, Sqlite, SqlitePool, Transaction};
use thiserror::Error;

pub mod calls;
pub mod changes;
pub mod model;
mod oauth;
pub use calls::*;
pub use model::*;
mod events;
pub use events::*;
mod login;
pub use login::*;
mod webhooks;
mod copy;
pub use copy::{TableCount, COPIED_TABLES, NOT_COPIED_TABLES};
pub use webhooks::*;
mod leases;
pub use leases::PollTurn;
mod definitions;
pub use definitions::*;
mod transformations;
pub use transformations::*;
mod connect;
pub use connect::*;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite://PATH or postgres://...): {0}")]
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

/// The pool of one backend.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either backend.
pub(crate) enum Tx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl Tx<'_> {
    async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Runs `$body` with `$p` bound to the store's pool (`&SqlitePool` or `&PgPool`) and
/// `$pg` to whether it is PostgreSQL: the body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$p:ident, $pg:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($p) => {
                #[allow(unused_variables)]
                let $pg = false;
                $body
            }
            $crate::Pool::Postgres($p) => {
                #[allow(unused_variables)]
                let $pg = true;
                $body
            }
        }
    };
}

/// As [`on_pool!`] for a [`Tx`]: `$c` is the transaction's connection (use `&mut *$c`).
macro_rules! on_tx {
    ($tx:expr, |$c:ident, $pg:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $c = &mut **t;
                #[allow(unused_variables)]
                let $pg = false;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $c = &mut **t;
                #[allow(unused_variables)]
                let $pg = true;
                $body
            }
        }
    };
}
/// Runs `$body` (an expression awaiting writes on `$tx: &mut Tx`) in one
/// transaction whose commit must survive a power cut: on SQLite on a
/// `synchronous=FULL` connection ([`Store::full_sync_connection`]); on PostgreSQL
/// every commit already waits for its WAL flush (`synchronous_commit`'s default).
macro_rules! durably {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite(pool) => {
                let mut conn = $crate::Store::full_sync_connection(pool).await?;
                let written = async {
                    let mut tx = $crate::Tx::Sqlite(sqlx::Connection::begin(&mut *conn).await?);
                    let $tx = &mut tx;
                    let value = $body;
                    tx.commit().await?;
                    Ok::<_, $crate::StoreError>(value)
                }
                .await;
                $crate::end_full_sync(conn, written).await
            }
            $crate::Pool::Postgres(pool) => {
                let mut tx = $crate::Tx::Postgres(pool.begin().await?);
                let $tx = &mut tx;
                let value = $body;
                tx.commit().await?;
                Ok(value)
            }
        }
    };
}
pub(crate) use {durably, on_pool, on_tx};

/// SQL selecting the members of a JSON array bound as parameter `$n`, as a
/// one-column subquery (`value`), integers when `ints`.
pub(crate) fn json_members(pg: bool, n: u8, ints: bool) -> String {
    match (pg, ints) {
        (false, _) => format!("SELECT value FROM json_each(${n})"),
        (true, false) => format!("SELECT value FROM jsonb_array_elements_text(${n}::jsonb) AS j(value)"),
        (true, true) => format!("SELECT value::bigint FROM jsonb_array_elements_text(${n}::jsonb) AS j(value)"),
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// This process's node id: who holds the leases it takes (see [`Store::node_id`]).
    node: std::sync::Arc<str>,
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

/// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
const INCREMENTAL: i64 = 2;
/// The largest SQLite file [`Store::open`] converts to `auto_vacuum=INCREMENTAL`
/// by itself (256 MiB: a VACUUM of a few seconds).
pub const AUTO_CONVERT_MAX_BYTES: i64 = 256 << 20;
/// Pages one `PRAGMA incremental_vacuum` gives back at most (4 KiB pages: 16 MiB).
const RECLAIM_STEP: i64 = 4096;
/// Rows one pruning statement deletes at most: one short write transaction.
pub const PRUNE_BATCH: i64 = 5_000;

/// A parameter of [`Store::delete_in_batches`].
pub(crate) enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// Connections per process to a PostgreSQL server unless told otherwise.
pub const DEFAULT_PG_MAX_CONNECTIONS: u32 = 10;
/// Connections per process to a SQLite file unless told otherwise (one writes at a
/// time; the others read beside it in WAL mode).
pub const DEFAULT_SQLITE_MAX_CONNECTIONS: u32 = 8;

impl Store {
    /// A pooled SQLite connection whose commits fsync (`synchronous=FULL`), for the
    /// few writes that must survive a power cut; give it back through [`end_full_sync`].
    async fn full_sync_connection(pool: &SqlitePool) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        let mut conn = pool.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        Ok(conn)
    }

    pub(crate) async fn begin(&self) -> Result<Tx<'static>> {
        Ok(match &self.pool {
            // IMMEDIATE: every transaction here writes, most after reading. A
            // deferred one that read first cannot take the write lock once another
            // connection has committed since its read (WAL: SQLITE_BUSY at once,
            // busy_timeout never consulted), which surfaced as a rare 500 under
            // concurrent writes. Taking the lock at BEGIN waits the busy_timeout instead.
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Opens the database and runs its backend's migrations: `sqlite://PATH`
    /// (created if missing) or `postgres://...` (the database must exist).
    ///
    /// Migrations run under a lock, so servers starting together on one database
    /// do not race: on PostgreSQL sqlx's migrator holds `pg_advisory_lock` (keyed
    /// by the database name) from before it creates its table until it is done; on
    /// SQLite they all run in one `BEGIN IMMEDIATE` transaction (the write lock).
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, None).await
    }

    /// As [`Store::open`] with a pool of at most `max_connections` connections
    /// (at least 1; `None`: [`DEFAULT_PG_MAX_CONNECTIONS`] on PostgreSQL,
    /// [`DEFAULT_SQLITE_MAX_CONNECTIONS`] on SQLite).
    pub async fn open_with(url: &str, max_connections: Option<u32>) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.unwrap_or(DEFAULT_PG_MAX_CONNECTIONS).max(1))
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations_pg").run(&pool).await?;
            return Ok(Store { pool: Pool::Postgres(pool), node: leases::new_node_id() });
        }
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
            // Set on every connection, before any table exists: a new file is made
            // incremental from its first page, so pruning can give pages back to the
            // file system ([`Store::reclaim_space`]). On an older file it only takes
            // effect with a VACUUM (see below).
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            // The WAL file is cut back to this after a checkpoint, so a burst of
            // writes (a large prune) does not leave it large for good.
            .pragma("journal_size_limit", (64 << 20).to_string())
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.unwrap_or(DEFAULT_SQLITE_MAX_CONNECTIONS).max(1))
            .connect_with(options)
            .await?;
        // sqlx takes no lock on SQLite, and two servers opening a new file together
        // both applied migration 9 (one then failed: duplicate column). One
        // IMMEDIATE transaction holds the write lock from the check of what is
        // applied to the last migration (each runs in a savepoint inside it).
        let mut conn = pool.acquire().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        // run_direct: `run` on a borrowed connection trips a known higher-ranked
        // lifetime error ("Acquire is not general enough") once the future is spawned.
        sqlx::migrate!("./migrations").run_direct(&mut *tx).await?;
        tx.commit().await?;
        drop(conn);
        let store = Store { pool: Pool::Sqlite(pool), node: leases::new_node_id() };
        store.convert_small_file().await;
        Ok(store)
    }

    /// A SQLite file made before auto_vacuum was set never gives pages back until
    /// one full VACUUM rewrites it. One up to [`AUTO_CONVERT_MAX_BYTES`] is
    /// rewritten here (seconds at most); a larger one is left as it is, with a
    /// warning naming `switchyard vacuum`, since the rewrite needs about the
    /// file's size again on disk and holds the write lock meanwhile. A failure
    /// (another process busy with the file) is logged and the next start tries again.
    async fn convert_small_file(&self) {
        let Pool::Sqlite(pool) = &self.pool else { return };
        let looked: Result<(i64, i64, i64)> = async {
            let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(pool).await?;
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(pool).await?;
            let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(pool).await?;
            Ok((mode, pages, size))
        }
        .await;
        match looked {
            Ok((INCREMENTAL, _, _)) => {}
            Ok((_, pages, size)) if pages.saturating_mul(size) <= AUTO_CONVERT_MAX_BYTES => match self.make_incremental().await {
                Ok(()) => tracing::info!(bytes = pages * size, "made the SQLite file incremental (auto_vacuum), once"),
                Err(e) => tracing::warn!(error = %e, "could not make the SQLite file incremental; trying again at the next start"),
            },
            Ok((_, pages, size)) => tracing::warn!(
                bytes = pages.saturating_mul(size),
                "this SQLite file predates auto_vacuum=INCREMENTAL and will not shrink after pruning; stop the \
                 servers and run `switchyard vacuum` once to convert it (it needs as much free disk as the file)"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the SQLite file's auto_vacuum mode"),
        }
    }

    /// Rewrites a SQLite file with `auto_vacuum=INCREMENTAL` (one full `VACUUM`:
    /// the file's size again in free disk, the write lock held throughout); a
    /// file already incremental is left alone. Nothing to do on PostgreSQL,
    /// where autovacuum reuses the space of deleted rows.
    pub async fn make_incremental(&self) -> Result<()> {
        let Pool::Sqlite(pool) = &self.pool else { return Ok(()) };
        let mut conn = pool.acquire().await?;
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
        if mode != INCREMENTAL {
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await?;
            sqlx::query("VACUUM").execute(&mut *conn).await?;
            // In WAL mode the rewritten pages are in the WAL: copied back now, the
            // file takes its new size at once (and the WAL is emptied).
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Gives a SQLite file's free pages back to the file system
    /// (`PRAGMA incremental_vacuum`), [`RECLAIM_STEP`] pages per statement so no
    /// write transaction is long; called after pruning. Returns the pages given
    /// back: 0 on a file that is not incremental, and on PostgreSQL, where
    /// autovacuum makes deleted rows' space reusable inside the tables instead
    /// (the files do not shrink without `VACUUM FULL`, which is left to the operator).
    pub async fn reclaim_space(&self) -> Result<u64> {
        let Pool::Sqlite(pool) = &self.pool else { return Ok(0) };
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(pool).await?;
        if mode != INCREMENTAL {
            return Ok(0);
        }
        let mut given = 0;
        loop {
            let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(pool).await?;
            if free == 0 {
                break;
            }
            sqlx::query(&format!("PRAGMA incremental_vacuum({RECLAIM_STEP})")).execute(pool).await?;
            let left: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(pool).await?;
            if left >= free {
                // Nothing moved: the next pruning tries again.
                break;
            }
            given += (free - left) as u64;
            tokio::task::yield_now().await;
        }
        // The file itself shrinks when the WAL is copied back into it; a passive
        // checkpoint does that now if no reader holds older pages, without waiting.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await?;
        Ok(given)
    }

    /// Runs `sql`, a DELETE whose last parameter (after `params`) is how many rows
    /// it may delete, batch after batch (each statement its own short write
    /// transaction) until a batch deletes fewer than it may, or `most` rows went.
    /// Returns the rows deleted.
    pub(crate) async fn delete_in_batches(&self, sql: &str, params: &[Param<'_>], batch: i64, most: u64) -> Result<u64> {
        let mut total = 0;
        while total < most {
            let limit = (batch.max(1) as u64).min(most - total) as i64;
            let n = on_pool!(self, |p, pg| {
                let mut q = sqlx::query(sql);
                for param in params {
                    q = match param {
                        Param::Int(v) => q.bind(*v),
                        Param::Text(t) => q.bind(*t),
                    };
                }
                q.bind(limit).execute(p).await?.rows_affected()
            });
            total += n;
            if n < limit as u64 {
                break;
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Whether this store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |p, pg| p.close().await)
    }

    // ---- meta ----

    pub async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(on_pool!(self, |p, pg| {
            let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(p).await?;
            row.map(|r| r.get(0))
        }))
    }

    /// Stores `value` unless the key exists; returns what is stored afterwards,
    /// so two processes racing on a fresh database agree on one value.
    pub async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        on_pool!(self, |p, pg| {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT(key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(p)
                .await?;
        });
        Ok(self.meta_get(key).await?.unwrap_or_default())
    }

    /// Overwrites one meta value (key rotation re-seals the canary).
    pub async fn meta_set(&self, key: &str, value: &[u8]) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    // ---- tenants ----

    pub async fn organization_count(&self) -> Result<i64> {
        Ok(on_pool!(self, |p, pg| sqlx::query_scalar("SELECT COUNT(*) FROM organizations").fetch_one(p).await?))
    }

    /// Every organization, oldest first.
    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT id, name, created_at FROM organizations ORDER BY id").fetch_all(p).await?
        }))
    }

    /// The users of one organization, or of all when `org_id` is `None`, oldest first.
    pub async fn users(&self, org_id: Option<i64>) -> Result<Vec<User>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT id, organization_id, email, first_name, last_name, created_at FROM users
                 WHERE $1 IS NULL OR organization_id = $1 ORDER BY id",
            )
            .bind(org_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Creates an organization and its first user in one transaction.
    pub async fn create_organization<'a>(
        &self,
        name: &str,
        org_secret: impl Into<TenantSecret<'a>>,
        email: &str,
        user_secret: impl Into<TenantSecret<'a>>,
    ) -> Result<(Organization, User)> {
        let org_secret = org_secret.into();
        let mut tx = self.begin().await?;
        let created = now();
        let org: Organization = on_tx!(&mut tx, |c, pg| {
            sqlx::query_as(
                "INSERT INTO organizations (name, secret_hash, secret_sealed, secret_key_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id, name, created_at",
            )
            .bind(name)
            .bind(org_secret.hash)
            .bind(org_secret.blob())
            .bind(org_secret.key_id())
            .bind(&created)
            .fetch_one(&mut *c)
            .await?
        });
        let user = insert_user(&mut tx, org.id, email, user_secret.into()).await?;
        tx.commit().await?;
        Ok((org, user))
    }

    pub async fn create_user<'a>(&self, org_id: i64, email: &str, secret: impl Into<TenantSecret<'a>>) -> Result<User> {
        self.create_user_with_password(org_id, email, secret, None).await
    }

    /// Creates a user, with a password (an Argon2id PHC string) when given, in one
    /// transaction. A [`StoreError::Conflict`] names what is in the way: no such
    /// organization, the email taken in it, or its password already on another user.
    pub async fn create_user_with_password<'a>(
        &self,
        org_id: i64,
        email: &str,
        secret: impl Into<TenantSecret<'a>>,
        password_hash: Option<&str>,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let exists: Option<i64> = on_tx!(&mut tx, |c, pg| {
            sqlx::query_scalar("SELECT id FROM organizations WHERE id = $1").bind(org_id).fetch_optional(&mut *c).await?
        });
        if exists.is_none() {
            return Err(StoreError::Conflict(format!("no organization {org_id}")));
        }
        let user = insert_user(&mut tx, org_id, email, secret.into()).await?;
        if password_hash.is_some() {
            login::write_password(&mut tx, user.id, &user.email, password_hash).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces an organization's secret (hash and sealed copy); false when there
    /// is no such organization.
    pub async fn reset_organization_secret<'a>(&self, id: i64, secret: impl Into<TenantSecret<'a>>) -> Result<bool> {
        self.reset_secret(Tenant::Organization, id, secret.into()).await
    }

    /// Replaces a user's secret (hash and sealed copy); false when there is no such user.
    pub async fn reset_user_secret<'a>(&self, id: i64, secret: impl Into<TenantSecret<'a>>) -> Result<bool> {
        self.reset_secret(Tenant::User, id, secret.into()).await
    }

    /// Writes one tenant row's secret: whether it changed one row.
    async fn reset_secret(&self, tenant: Tenant, id: i64, secret: TenantSecret<'_>) -> Result<bool> {
        let table = tenant.table();
        let done = on_pool!(self, |p, pg| {
            sqlx::query(&format!(
                "UPDATE {table} SET secret_hash = $1, secret_sealed = $2, secret_key_id = $3 WHERE id = $4"
            ))
            .bind(secret.hash)
            .bind(secret.blob())
            .bind(secret.key_id())
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// The caller whose user and organization secrets hash to these values, if the
    /// user belongs to that organization.
    pub async fn authenticate(&self, user_hash: &[u8], org_hash: &[u8]) -> Result<Option<Caller>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT u.id AS user_id, u.email, u.first_name, u.last_name, o.id AS organization_id
                 FROM users u JOIN organizations o ON o.id = u.organization_id
                 WHERE u.secret_hash = $1 AND o.secret_hash = $2",
            )
            .bind(user_hash)
            .bind(org_hash)
            .fetch_optional(p)
            .await?
        }))
    }

    /// The caller a user id stands for (its organization included), for work a
    /// user started earlier and finishes now (an OAuth redirect, a Connect session).
    pub async fn caller_of_user(&self, user_id: i64) -> Result<Option<Caller>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT u.id AS user_id, u.email, u.first_name, u.last_name, o.id AS organization_id
                 FROM users u JOIN organizations o ON o.id = u.organization_id
                 WHERE u.id = $1",
            )
            .bind(user_id)
            .fetch_optional(p)
            .await?
        }))
    }

    // ---- instances ----

    /// Inserts an instance and its configuration in one transaction.
    pub async fn create_instance(
        &self,
        new: &NewInstance,
        config: &[(String, NewValue)],
        sealer: &dyn Sealer,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let created = now();
        let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into());
        let id: i64 = on_tx!(&mut tx, |c, pg| {
            sqlx::query_scalar(
                "INSERT INTO instances (organization_id, user_id, element_key, name, token_hash, tags,
                                        events_enabled, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(new.organization_id)
            .bind(new.user_id)
            .bind(&new.element_key)
            .bind(&new.name)
            .bind(&new.token_hash)
            .bind(&tags)
            .bind(new.events_enabled)
            .bind(&created)
            .bind(&created)
            .fetch_one(&mut *c)
            .await?
        });
        write_configuration(&mut tx, id, config, sealer).await?;
        if let Some(w) = &new.webhook {
            webhooks::write_webhook(&mut tx, id, Some(w)).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// One instance of an organization.
    pub async fn instance(&self, org_id: i64, id: i64) -> Result<Option<InstanceRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE organization_id = $1 AND id = $2"))
                .bind(org_id)
                .bind(id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// One instance by id, whatever its organization (for the platform's own work,
    /// never for a caller's request).
    pub async fn instance_by_id(&self, id: i64) -> Result<Option<InstanceRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// Records the vendor account's time zone as the vendor named it, or forgets it
    /// (`None`: read it again at the next call that needs it, as after a
    /// re-authorization, which may have connected another account).
    pub async fn set_account_zone(&self, instance_id: i64, zone: Option<&str>) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("UPDATE instances SET account_zone = $1 WHERE id = $2")
                .bind(zone)
                .bind(instance_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The instance whose token hashes to `token_hash`, whatever its organization:
    /// the caller compares organizations and answers 401 on a mismatch.
    pub async fn instance_by_token(&self, token_hash: &[u8]) -> Result<Option<InstanceRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("{INSTANCE_SELECT} WHERE token_hash = $1")).bind(token_hash).fetch_optional(p).await?
        }))
    }

    /// The organization's instances, optionally only those carrying every tag given.
    pub async fn instances(&self, org_id: i64, tags: &[String]) -> Result<Vec<InstanceRow>> {
        let mut sql = format!("{INSTANCE_SELECT} WHERE organization_id = $1");
        for n in 2..tags.len() + 2 {
            if self.is_postgres() {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(instances.tags::jsonb) AS j(value) WHERE j.value = ${n})"
                ));
            } else {
                sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM json_each(instances.tags) WHERE json_each.value = ${n})"));
            }
        }
        sql.push_str(" ORDER BY id");
        Ok(on_pool!(self, |p, pg| {
            let mut query = sqlx::query_as(&sql).bind(org_id);
            for tag in tags {
                query = query.bind(tag);
            }
            query.fetch_all(p).await?
        }))
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
        let mut tx = self.begin().await?;
        let tags = update.tags.as_ref().map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
        let keep: Vec<&str> = config.iter().map(|(k, _)| k.as_str()).collect();
        let keep = serde_json::to_string(&keep).unwrap_or_else(|_| "[]".into());
        let updated = on_tx!(&mut tx, |c, pg| {
            let done = sqlx::query(
                "UPDATE instances SET name = COALESCE($1, name), tags = COALESCE($2, tags),
                        events_enabled = COALESCE($3, events_enabled), valid = COALESCE($4, valid),
                        account_zone = CASE WHEN $5 THEN NULL ELSE account_zone END, updated_at = $6
                 WHERE organization_id = $7 AND id = $8",
            )
            .bind(&update.name)
            .bind(&tags)
            .bind(update.events_enabled)
            .bind(update.valid)
            .bind(update.forget_account_zone)
            .bind(now())
            .bind(org_id)
            .bind(id)
            .execute(&mut *c)
            .await?;
            if done.rows_affected() == 1 && replace {
                sqlx::query(&format!(
                    "DELETE FROM instance_configuration WHERE instance_id = $1 AND key NOT IN ({})",
                    json_members(pg, 2, false)
                ))
                .bind(id)
                .bind(&keep)
                .execute(&mut *c)
                .await?;
            }
            done.rows_affected() == 1
        });
        if !updated {
            return Ok(false);
        }
        write_configuration(&mut tx, id, config, sealer).await?;
        if let Some(w) = &update.webhook {
            webhooks::write_webhook(&mut tx, id, w.as_ref()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces an instance's token hash (a new token issued; the old one stops
    /// working). `false` when the organization has no such instance.
    pub async fn set_instance_token(&self, org_id: i64, id: i64, token_hash: &[u8]) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query("UPDATE instances SET token_hash = $1, updated_at = $2 WHERE organization_id = $3 AND id = $4")
                .bind(token_hash)
                .bind(now())
                .bind(org_id)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn set_disabled(&self, org_id: i64, id: i64, disabled: bool) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query("UPDATE instances SET disabled = $1, updated_at = $2 WHERE organization_id = $3 AND id = $4")
                .bind(disabled)
                .bind(now())
                .bind(org_id)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Deletes the instance and its configuration; its token stops working at once.
    pub async fn delete_instance(&self, org_id: i64, id: i64) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query("DELETE FROM instances WHERE organization_id = $1 AND id = $2")
                .bind(org_id)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// The stored configuration rows of an instance (secrets still sealed).
    pub async fn configuration(&self, instance_id: i64) -> Result<Vec<ConfigRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as("SELECT id, key, value, secret FROM instance_configuration WHERE instance_id = $1 ORDER BY id")
                .bind(instance_id)
                .fetch_all(p)
                .await?
        }))
    }

    // ---- key rotation ----

    /// Up to `limit` sealed rows whose key is not `current_key_id`.
    pub async fn sealed_rows_not_under(&self, current_key_id: u32, limit: i64) -> Result<Vec<SealedRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT id, instance_id, key, secret FROM instance_configuration
                 WHERE secret IS NOT NULL AND key_id <> $1 ORDER BY id LIMIT $2",
            )
            .bind(i64::from(current_key_id))
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
    }

    /// Replaces sealed blobs in one transaction; a row whose blob changed since it
    /// was read (a concurrent write) is left alone.
    pub async fn reseal(&self, rows: &[(SealedRow, Vec<u8>, u32)]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut changed = 0;
        for (row, blob, key_id) in rows {
            changed += on_tx!(&mut tx, |c, pg| {
                sqlx::query("UPDATE instance_configuration SET secret = $1, key_id = $2 WHERE id = $3 AND secret = $4")
                    .bind(blob)
                    .bind(i64::from(*key_id))
                    .bind(row.id)
                    .bind(&row.secret)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
            });
        }
        tx.commit().await?;
        Ok(changed)
    }
}

const INSTANCE_SELECT: &str = "SELECT id, organization_id, user_id, element_key, name, tags, valid,
    disabled, events_enabled, created_at, updated_at, account_zone FROM instances";

async fn insert_user(tx: &mut Tx<'_>, org_id: i64, email: &str, secret: TenantSecret<'_>) -> Result<User> {
    let created = now();
    let result = on_tx!(tx, |c, pg| {
        sqlx::query_as(
            "INSERT INTO users (organization_id, email, secret_hash, secret_sealed, secret_key_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, organization_id, email, first_name, last_name, created_at",
        )
        .bind(org_id)
        .bind(email)
        .bind(secret.hash)
        .bind(secret.blob())
        .bind(secret.key_id())
        .bind(&created)
        .fetch_one(&mut *c)
        .await
    });
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("a user with email {email} already exists in organization {org_id}"),
        )),
        other => Ok(other?),
    }
}

async fn write_configuration(
    tx: &mut Tx<'_>,
    instance_id: i64,
    config: &[(String, NewValue)],
    sealer: &dyn Sealer,
) -> Result<()> {
    for (key, value) in config {
        let (plain, secret, key_id) = match value {
            NewValue::Plain(v) => (Some(v.clone()), None, None),
            NewValue::Secret(v) => {
                let (blob, key_id) = sealer.seal(instance_id, key, v);
                (None, Some(blob), Some(i64::from(key_id)))
            }
            NewValue::Keep => continue,
        };
        on_tx!(&mut *tx, |c, pg| {
            sqlx::query(
                "INSERT INTO instance_configuration (instance_id, key, value, secret, key_id)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT(instance_id, key) DO UPDATE
                 SET value = excluded.value, secret = excluded.secret, key_id = excluded.key_id",
            )
            .bind(instance_id)
            .bind(key)
            .bind(&plain)
            .bind(&secret)
            .bind(key_id)
            .execute(&mut *c)
            .await?;
        });
    }
    Ok(())
}
