//! `switchyard migrate-db`: moves an installation from its SQLite file to a new
//! PostgreSQL database.

use anyhow::{bail, Context};
use switchyard_store::Store;

use crate::database::{database_path, is_postgres, shown_url};

/// Copies every table but the leases from `from` (`sqlite://PATH`, an existing
/// file) into `to` (`postgres://...`, an existing database with no rows), then
/// prints each table's row count in both. Secrets stay sealed: the key file (or
/// `SWITCHYARD_MASTER_KEY`) of the old installation opens the new one.
pub async fn run(from: &str, to: &str, batch: usize) -> anyhow::Result<()> {
    if is_postgres(from) {
        bail!("--from must be a SQLite database (sqlite://PATH); migrate-db moves an installation onto PostgreSQL");
    }
    if !is_postgres(to) {
        bail!("--to must be a PostgreSQL database (postgres://...), not {}", shown_url(to));
    }
    let path = database_path(from)?;
    if !path.is_file() {
        bail!("there is no SQLite database at {}", path.display());
    }
    let source = Store::open(from).await.with_context(|| format!("opening {}", shown_url(from)))?;
    let target = Store::open(to).await.with_context(|| format!("opening {}", shown_url(to)))?;
    let counts = source.copy_to(&target, batch).await.context("copying the installation")?;
    source.close().await;
    target.close().await;

    println!("{:<28} {:>12} {:>12}", "table", "source rows", "copied rows");
    for c in &counts {
        println!("{:<28} {:>12} {:>12}", c.table, c.source, c.target);
    }
    let total: i64 = counts.iter().map(|c| c.target).sum();
    println!("copied {total} rows in {} tables; every count matches", counts.len());
    tracing::info!(rows = total, "installation copied; start the servers on the new database with the same master key");
    Ok(())
}
