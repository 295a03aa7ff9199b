//! Each store test runs on both backends: a fresh SQLite file, and a fresh
//! PostgreSQL database created for the test and dropped after it.
//!
//! PostgreSQL is the server at `SWITCHYARD_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`, the CI machine's); a test fails,
//! never skips, when it cannot be reached.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};
use switchyard_store::Store;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server URL the per-test databases are created through.
pub fn admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database (no tables yet); dropping it removes it.
pub struct EmptyDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl EmptyDb {
    pub async fn new(backend: Backend) -> EmptyDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                EmptyDb { url, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                static SEQ: AtomicU32 = AtomicU32::new(0);
                let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                let name = format!("sy_test_{}_{nanos}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
                let admin = admin_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "the store tests need PostgreSQL at {admin} (set SWITCHYARD_TEST_POSTGRES to another \
                         server; .ci/run checks it with pg_isready): {e}"
                    )
                });
                conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
                conn.close().await.unwrap();
                EmptyDb { url: database_url(&admin, &name), _dir: None, pg_name: Some(name) }
            }
        }
    }
}

/// A store on a fresh database; dropping it removes the database.
pub struct TestDb {
    // Declared first, so dropped before the database goes.
    pub store: Store,
    _db: EmptyDb,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let db = EmptyDb::new(backend).await;
        TestDb { store: Store::open(&db.url).await.unwrap(), _db: db }
    }
}

/// `admin` with its database replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime, which cannot block on itself: the
        // database goes on a thread of its own (FORCE ends the store's connections).
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

/// Defines a test module with one test per backend running `$body` with `$b: Backend`.
#[macro_export]
macro_rules! on_both {
    ($(#[$meta:meta])* async fn $name:ident($b:ident: Backend) $body:block) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            async fn run($b: $crate::support::Backend) $body

            #[tokio::test]
            async fn sqlite() {
                run($crate::support::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run($crate::support::Backend::Postgres).await
            }
        }
    };
}

impl TestDb {
    /// A second store on this test's database, as another server process opens
    /// it: the same rows, its own pool and node id. (Not every test binary uses it.)
    #[allow(dead_code)]
    pub async fn another_node(&self) -> Store {
        Store::open(&self._db.url).await.unwrap()
    }
}
