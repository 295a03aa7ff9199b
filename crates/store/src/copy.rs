//! Copying a whole installation from one database to another (`switchyard
//! migrate-db`): SQLite to PostgreSQL, table by table, ids kept.
//!
//! The tables are listed here by name: every table of the schema is either in
//! [`COPIED_TABLES`] or in [`NOT_COPIED_TABLES`], and a copy meeting any other table
//! refuses to start, so a table added by a later migration cannot be left behind
//! silently.

use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Postgres, QueryBuilder, Row};

use crate::{Pool, Result, Store, StoreError};

/// The tables `migrate-db` copies, parents before children (foreign keys are
/// checked row by row).
pub const COPIED_TABLES: &[&str] = &[
    "meta",
    "organizations",
    "users",
    "connect_sessions",
    "sessions",
    "instances",
    "instance_configuration",
    "object_definitions",
    "transformations",
    "vendor_calls",
    "idempotency_keys",
    "events",
    "event_deliveries",
    "event_stopped_callbacks",
    "event_poll_marks",
    "event_poll_seen",
    "event_poll_status",
    "event_poll_due",
    "oauth_refresh",
    "event_webhooks",
    "event_webhook_digests",
];

/// The tables `migrate-db` leaves empty: leases name the nodes of the old
/// installation and mean nothing to the new one, which takes them afresh; failed
/// login counters last a minute; SQLite's cache change log tells the processes on
/// that file what changed (PostgreSQL nodes hear it by notification instead);
/// OAuth states live ten minutes, for an authorization in flight in a browser
/// whose redirect back would reach the old installation anyway.
pub const NOT_COPIED_TABLES: &[&str] = &["leases", "login_failures", "cache_changes", "oauth_states"];

/// sqlx's record of applied migrations: each database keeps its own (the target
/// is migrated when it is opened).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Rows of one table in the source and in the target after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

/// One column value, typed by the target's column type.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

impl Kind {
    fn of(table: &str, column: &str, pg_type: &str) -> Result<Kind> {
        Ok(match pg_type {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "boolean" => Kind::Bool,
            "text" | "character varying" => Kind::Text,
            "bytea" => Kind::Bytes,
            other => {
                return Err(StoreError::Conflict(format!(
                    "migrate-db cannot copy column {table}.{column} of type {other}"
                )))
            }
        })
    }

    fn read(self, row: &SqliteRow, i: usize) -> Result<Value> {
        // Unchecked: SQLite's column types are affinities, and a value's storage
        // class may differ from the declared type (booleans are integers).
        Ok(match self {
            Kind::Int => Value::Int(row.try_get_unchecked(i)?),
            Kind::Bool => Value::Bool(row.try_get_unchecked(i)?),
            Kind::Text => Value::Text(row.try_get_unchecked(i)?),
            Kind::Bytes => Value::Bytes(row.try_get_unchecked(i)?),
        })
    }
}

/// `"name"`: identifiers come from the schema, quoted so words like `key` stay names.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Largest number of bind parameters in one PostgreSQL statement.
const PG_MAX_BINDS: usize = 65_535;

impl Store {
    /// The tables of this database's schema (sqlx's migration record left out), sorted.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                    .fetch_all(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                )
                .fetch_all(p)
                .await?
            }
        };
        names.retain(|n| n != MIGRATIONS_TABLE);
        names.sort();
        Ok(names)
    }

    /// Copies every table of [`COPIED_TABLES`] from this SQLite store into `target`,
    /// a PostgreSQL store whose tables are all empty, keeping ids and moving each
    /// identity sequence past the largest id copied.
    ///
    /// Reads one consistent snapshot of the source and writes everything in one
    /// target transaction (in statements of at most `batch` rows), so a failure
    /// leaves the target as empty as it was. Before committing it compares the row
    /// count of every table on both sides; the counts are returned in table order.
    ///
    /// Errors: the source is not SQLite or the target not PostgreSQL; a table in
    /// either schema is neither copied nor listed in [`NOT_COPIED_TABLES`]; the
    /// two schemas' columns differ; the target holds a row
    /// ([`StoreError::Conflict`]); counts differ; any database error.
    pub async fn copy_to(&self, target: &Store, batch: usize) -> Result<Vec<TableCount>> {
        let (Pool::Sqlite(source_pool), Pool::Postgres(target_pool)) = (&self.pool, &target.pool) else {
            return Err(StoreError::Conflict("migrate-db copies from a SQLite database to a PostgreSQL database".into()));
        };
        for (side, store) in [("source", self), ("target", target)] {
            for table in store.table_names().await? {
                if !COPIED_TABLES.contains(&table.as_str()) && !NOT_COPIED_TABLES.contains(&table.as_str()) {
                    return Err(StoreError::Conflict(format!(
                        "the {side} database has a table {table} that migrate-db does not know; \
                         it must be listed as copied or not copied before an installation can be moved"
                    )));
                }
            }
        }
        let source_tables = self.table_names().await?;

        let mut source_conn = source_pool.acquire().await?;
        // A read transaction: every table is read from one snapshot (WAL mode).
        let mut source = source_conn.begin().await?;
        let mut tx = target_pool.begin().await?;

        for table in target.table_names().await? {
            let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(&table)))
                .fetch_one(&mut *tx)
                .await?;
            if any {
                return Err(StoreError::Conflict(format!(
                    "the target database is not empty (table {table} has rows); \
                     migrate-db copies into a new, empty database only"
                )));
            }
        }

        let mut counts = Vec::with_capacity(COPIED_TABLES.len());
        for &table in COPIED_TABLES {
            if !source_tables.iter().any(|t| t == table) {
                return Err(StoreError::Conflict(format!("the source database has no table {table}")));
            }
            let columns: Vec<(String, String)> = sqlx::query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r: &PgRow| (r.get(0), r.get(1)))
            .collect();
            let mut source_columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(&mut *source)
                .await?;
            let mut target_columns: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
            source_columns.sort();
            target_columns.sort();
            if source_columns != target_columns {
                return Err(StoreError::Conflict(format!(
                    "table {table} has columns {source_columns:?} in the source but {target_columns:?} in the target"
                )));
            }
            let kinds = columns.iter().map(|(n, t)| Kind::of(table, n, t)).collect::<Result<Vec<_>>>()?;
            let list = columns.iter().map(|(n, _)| quoted(n)).collect::<Vec<_>>().join(", ");
            let select = format!("SELECT {list} FROM {}", quoted(table));
            let per_statement = batch.clamp(1, PG_MAX_BINDS / columns.len().max(1));

            // One pass over the source (a cursor on the snapshot), written in
            // statements of `per_statement` rows.
            let mut rows = sqlx::query(&select).fetch(&mut *source);
            let mut values: Vec<Vec<Value>> = Vec::with_capacity(per_statement);
            loop {
                let row = rows.try_next().await?;
                if let Some(row) = &row {
                    values.push(kinds.iter().enumerate().map(|(i, k)| k.read(row, i)).collect::<Result<Vec<_>>>()?);
                }
                if values.len() == per_statement || (row.is_none() && !values.is_empty()) {
                    let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({list}) ", quoted(table)));
                    insert.push_values(values.drain(..), |mut b, row| {
                        for v in row {
                            match v {
                                Value::Int(x) => b.push_bind(x),
                                Value::Bool(x) => b.push_bind(x),
                                Value::Text(x) => b.push_bind(x),
                                Value::Bytes(x) => b.push_bind(x),
                            };
                        }
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                if row.is_none() {
                    break;
                }
            }
            drop(rows);

            let identity: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            for column in identity {
                // The next id handed out is one past the largest copied.
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({c}), 0) + 1, false) FROM {t}",
                    c = quoted(&column),
                    t = quoted(table)
                ))
                .bind(quoted(table))
                .bind(&column)
                .execute(&mut *tx)
                .await?;
            }

            let count = format!("SELECT COUNT(*) FROM {}", quoted(table));
            let source_count: i64 = sqlx::query_scalar(&count).fetch_one(&mut *source).await?;
            let target_count: i64 = sqlx::query_scalar(&count).fetch_one(&mut *tx).await?;
            if source_count != target_count {
                return Err(StoreError::Conflict(format!(
                    "table {table}: {source_count} rows in the source but {target_count} copied; nothing was written"
                )));
            }
            counts.push(TableCount { table, source: source_count, target: target_count });
        }
        tx.commit().await?;
        source.rollback().await?;
        Ok(counts)
    }
}
