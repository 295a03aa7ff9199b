//! Opening the database together with the key ring that decrypts it, and key rotation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use switchyard_store::{config_aad, Store};
use switchyard_vault::{KeyRing, Vault, MASTER_KEY_ENV};

use crate::DatabaseOptions;

/// The meta row holding a blob sealed at database creation; opening it proves the
/// key ring belongs to this database.
const CANARY: &str = "vault.canary";

/// The database and the vault that opens its secrets.
pub struct Opened {
    pub store: Store,
    pub vault: Vault,
}

/// Whether a database URL names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL as it may be shown in logs and errors: a PostgreSQL password (in the
/// user part or a `password=` parameter) is replaced by `***`.
pub fn shown_url(url: &str) -> String {
    if !is_postgres(url) {
        return url.to_owned();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Unparsable: show only the scheme, never what might be a password.
        return "postgres://(unreadable URL)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// The SQLite file behind a `sqlite://PATH` URL.
pub(crate) fn database_path(url: &str) -> anyhow::Result<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .with_context(|| format!("unsupported database URL {} (expected sqlite://PATH or postgres://...)", shown_url(url)))?;
    let path = path.split('?').next().unwrap_or(path);
    Ok(PathBuf::from(path))
}

/// The key file: as given, else beside a SQLite database, else (PostgreSQL) in
/// the working directory.
fn key_file_path(opts: &DatabaseOptions) -> anyhow::Result<PathBuf> {
    if let Some(path) = &opts.master_key_file {
        return Ok(path.clone());
    }
    if is_postgres(&opts.database_url) {
        return Ok(PathBuf::from("switchyard.key"));
    }
    let db = database_path(&opts.database_url)?;
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(dir.join("switchyard.key"))
}

/// Opens the database (creating and migrating it if needed) and the key ring.
///
/// A new database gets a canary sealed with the current key. An existing one must
/// open with the ring given, or this refuses with a message saying which key it
/// needs: a server never runs on a key that would make its secrets garbage.
pub async fn open(opts: &DatabaseOptions) -> anyhow::Result<Opened> {
    let shown = shown_url(&opts.database_url);
    let store = Store::open_with(&opts.database_url, opts.database_max_connections)
        .await
        .with_context(|| format!("opening database {shown}"))?;
    let existing_canary = store.meta_get(CANARY).await?;

    let vault = match std::env::var(MASTER_KEY_ENV) {
        Ok(list) if !list.trim().is_empty() => {
            Vault::new(KeyRing::from_base64_list(&list).with_context(|| format!("reading {MASTER_KEY_ENV}"))?)
        }
        _ => {
            let path = key_file_path(opts)?;
            if existing_canary.is_some() {
                // Never create a fresh key for a database that already has secrets.
                Vault::open(&path).with_context(|| {
                    format!(
                        "the database {} holds encrypted secrets but its master key file {} cannot be read; \
                         restore the key file that was backed up with the database, or set {MASTER_KEY_ENV}",
                        shown,
                        path.display()
                    )
                })?
            } else {
                let (ring, created) = KeyRing::load_or_create(&path)
                    .with_context(|| format!("master key file {}", path.display()))?;
                if created {
                    tracing::info!(path = %path.display(), "created a new master key file (mode 0600); back it up with the database");
                }
                Vault::with_key_file(ring, path)
            }
        }
    };

    let canary = match existing_canary {
        Some(c) => c,
        None => store.meta_get_or_insert(CANARY, &vault.make_canary()).await?,
    };
    if let Err(e) = vault.verify_canary(&canary) {
        bail!(
            "the master key does not open the database {}: {e}. \
             Use the key file (or {MASTER_KEY_ENV}) that belongs to this database",
            shown
        );
    }
    Ok(Opened { store, vault })
}

/// Adds a new current key to the key file, then re-encrypts every sealed value
/// (and the canary) under it in batches. Servers keep running: they re-read the
/// key file when they meet a key id they do not know.
pub async fn rotate_key(opts: &DatabaseOptions, batch: i64) -> anyhow::Result<()> {
    if std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        bail!(
            "{MASTER_KEY_ENV} is set: keys given in the environment are rotated by putting a new \
             key first in the list; rotate-key manages the key file"
        );
    }
    let opened = open(opts).await?;
    let path = key_file_path(opts)?;
    let mut ring = KeyRing::load(&path).with_context(|| format!("master key file {}", path.display()))?;
    let old = ring.current_id();
    let new = ring.rotate();
    ring.save(&path).with_context(|| format!("writing {}", path.display()))?;
    opened.vault.reload()?;
    tracing::info!(old_key = old, new_key = new, "added a new current master key");

    let mut total = 0u64;
    loop {
        let rows = opened.store.sealed_rows_not_under(new, batch).await?;
        if rows.is_empty() {
            break;
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for row in rows {
            let blob = opened
                .vault
                .reencrypt(&row.secret, &config_aad(row.instance_id, &row.key))
                .with_context(|| format!("re-encrypting configuration row {}", row.id))?;
            resealed.push((row, blob, new));
        }
        let changed = opened.store.reseal(&resealed).await?;
        total += changed;
        if changed == 0 {
            // Every row of the batch was rewritten meanwhile by a writer that
            // still used an older key; take the next look from scratch.
            tokio::task::yield_now().await;
        }
    }
    let canary = opened.store.meta_get(CANARY).await?.unwrap_or_default();
    opened.store.meta_set(CANARY, &opened.vault.reencrypt_canary(&canary)?).await?;
    opened.store.close().await;
    println!("{{\"currentKeyId\":{new},\"previousKeyId\":{old},\"reencrypted\":{total}}}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn shown_urls_never_carry_a_postgres_password() {
        assert_eq!(shown_url("sqlite://switchyard.db"), "sqlite://switchyard.db");
        assert_eq!(shown_url("postgres://app:s3cret@db.example:5432/sy"), "postgres://app:***@db.example:5432/sy");
        assert_eq!(shown_url("postgres://app@db.example/sy"), "postgres://app@db.example/sy");
        let shown = shown_url("postgresql://db.example/sy?user=app&password=s3cret&sslmode=require");
        assert!(!shown.contains("s3cret") && shown.contains("sslmode=require"), "{shown}");
        assert!(!shown_url("postgres://app:s3cret@[bad").contains("s3cret"));
    }
}
