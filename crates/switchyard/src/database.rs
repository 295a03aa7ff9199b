//! Opening the database together with the key ring that decrypts it, and key rotation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use switchyard_store::{config_aad, tenant_secret_aad, Store};
use switchyard_vault::{KeyRing, Vault, MASTER_KEY_ENV};

use crate::DatabaseOptions;

/// The meta row holding a blob sealed at database creation; opening it proves the
/// key ring belongs to this database.
pub(crate) const CANARY: &str = "vault.canary";

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
    if is_postgres(&opts.database_url) {
        // Several nodes: the key that sealed the canary is current, whatever the
        // key file says (`rotate-key --activate` ran on some node); the canary just
        // opened, so the ring has it.
        if let Some(id) = KeyRing::key_id_of(&canary) {
            vault.follow_current(id)?;
        }
    }
    Ok(Opened { store, vault })
}

/// What `switchyard rotate-key` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Add a new key, make it current and re-encrypt, in one step (one node).
    Whole,
    /// Add a key to this node's key file without making it current: a new random
    /// key, or the keys of another node's key file that this one lacks.
    Add { key_from: Option<PathBuf> },
    /// Make a key every node already has current in the database (the newest of
    /// this node's ring unless named) and re-encrypt every secret under it.
    Activate { key_id: Option<u32> },
}

fn refuse_master_key_env(what: &str) -> anyhow::Result<()> {
    if std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        bail!(
            "{MASTER_KEY_ENV} is set: keys given in the environment are {what} \
             (see docs/deploy.md); rotate-key --add and plain rotate-key manage the key file"
        );
    }
    Ok(())
}

/// `switchyard rotate-key`: see [`Rotation`]. Prints one JSON line.
///
/// Activation seals the canary under the new key first, which tells every node
/// (PostgreSQL: the `keys` notification; SQLite: the key file, whose current key
/// changes too) to seal new values under it; then every sealed value is
/// re-encrypted in batches of `batch`. Servers keep running throughout.
pub async fn rotate_key(opts: &DatabaseOptions, rotation: Rotation, batch: i64) -> anyhow::Result<()> {
    match rotation {
        Rotation::Whole => {
            refuse_master_key_env("rotated by putting a new key first in the list")?;
            let opened = open(opts).await?;
            let path = key_file_path(opts)?;
            let mut ring = KeyRing::load(&path).with_context(|| format!("master key file {}", path.display()))?;
            let new = ring.add_new();
            ring.save(&path).with_context(|| format!("writing {}", path.display()))?;
            opened.vault.reload()?;
            activate(opts, opened, new, batch).await
        }
        Rotation::Add { key_from } => {
            refuse_master_key_env("added by appending the new key to the list")?;
            // Not `open`: this node's ring may lack the current key (another node
            // activated it), which is what adding it mends.
            let shown = shown_url(&opts.database_url);
            let store = Store::open(&opts.database_url).await.with_context(|| format!("opening database {shown}"))?;
            let canary = store.meta_get(CANARY).await?;
            store.close().await;
            let path = key_file_path(opts)?;
            let mut ring = KeyRing::load(&path).with_context(|| format!("master key file {}", path.display()))?;
            let added = match &key_from {
                Some(from) => {
                    let other = KeyRing::load(from).with_context(|| format!("master key file {}", from.display()))?;
                    ring.add_keys_of(&other)
                }
                None => vec![ring.add_new()],
            };
            if let Some(canary) = canary {
                if let Err(e) = ring.verify_canary(&canary) {
                    bail!("the key file {} (with the keys added) does not open the database {shown}: {e}", path.display());
                }
            }
            ring.save(&path).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(?added, path = %path.display(), "added master keys (not current)");
            println!("{}", serde_json::json!({"addedKeyIds": added, "currentKeyId": ring.current_id(), "keyIds": ring.key_ids()}));
            Ok(())
        }
        Rotation::Activate { key_id } => {
            let opened = open(opts).await?;
            let new = key_id.unwrap_or_else(|| opened.vault.snapshot().newest_id());
            activate(opts, opened, new, batch).await
        }
    }
}

/// Makes key `new` current (key file, canary) and re-encrypts every sealed value under it.
async fn activate(opts: &DatabaseOptions, opened: Opened, new: u32, batch: i64) -> anyhow::Result<()> {
    let Opened { store, vault } = opened;
    if !vault.key_ids().contains(&new) {
        bail!("this node's master key ring has no key id {new} (it has {:?}); add it first with rotate-key --add", vault.key_ids());
    }
    let canary = store.meta_get(CANARY).await?.unwrap_or_default();
    let old = KeyRing::key_id_of(&canary).unwrap_or_else(|| vault.current_id());
    vault.follow_current(new)?;
    if let Some(path) = vault.key_file() {
        let mut ring = KeyRing::load(path).with_context(|| format!("master key file {}", path.display()))?;
        ring.set_current(new)?;
        ring.save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    if old != new {
        store.meta_set(CANARY, &vault.reencrypt_canary(&canary)?).await?;
        tracing::info!(old_key = old, new_key = new, "the database's current master key changed");
    }
    let mut total = reencrypt_all(&store, &vault, new, batch).await?;
    if is_postgres(&opts.database_url) {
        // A node that sealed a value before it heard of the new key (it hears within
        // a notification's delay) is caught by one more pass.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        total += reencrypt_all(&store, &vault, new, batch).await?;
    }
    store.close().await;
    println!("{{\"currentKeyId\":{new},\"previousKeyId\":{old},\"reencrypted\":{total}}}");
    Ok(())
}

/// Re-encrypts every sealed value not yet under key `new` (instance
/// configuration, then user and organization secrets, then Connect session and
/// OAuth state blobs); returns how many.
async fn reencrypt_all(store: &Store, vault: &Vault, new: u32, batch: i64) -> anyhow::Result<u64> {
    let mut total = 0u64;
    loop {
        let rows = store.sealed_rows_not_under(new, batch).await?;
        if rows.is_empty() {
            let tenants = reseal_tenant_secrets(store, vault, new, batch).await?;
            return Ok(total + tenants + reseal_connect_blobs(store, vault, new, batch).await?);
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for row in rows {
            let blob = vault
                .reencrypt(&row.secret, &config_aad(row.instance_id, &row.key))
                .with_context(|| format!("re-encrypting configuration row {}", row.id))?;
            resealed.push((row, blob, new));
        }
        let changed = store.reseal(&resealed).await?;
        total += changed;
        if changed == 0 {
            // Every row of the batch was rewritten meanwhile by a writer that
            // still used an older key; take the next look from scratch.
            tokio::task::yield_now().await;
        }
    }
}

/// Re-encrypts the sealed user and organization secrets under key `new`, in
/// batches; returns how many were rewritten.
async fn reseal_tenant_secrets(store: &Store, vault: &Vault, new: u32, batch: i64) -> anyhow::Result<u64> {
    let mut total = 0u64;
    loop {
        let rows = store.sealed_tenant_secrets_not_under(new, batch).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for row in rows {
            let blob = vault
                .reencrypt(&row.sealed, &tenant_secret_aad(row.tenant, &row.secret_hash))
                .with_context(|| format!("re-encrypting the secret of {:?} {}", row.tenant, row.id))?;
            resealed.push((row, blob, new));
        }
        let changed = store.reseal_tenant_secrets(&resealed).await?;
        total += changed;
        if changed == 0 {
            // Each was replaced meanwhile (reset-secret); look again.
            tokio::task::yield_now().await;
        }
    }
}

/// Re-encrypts the sealed Connect session secrets and OAuth state payloads under
/// key `new`, in batches; returns how many blobs were rewritten.
async fn reseal_connect_blobs(store: &Store, vault: &Vault, new: u32, batch: i64) -> anyhow::Result<u64> {
    let mut total = 0u64;
    loop {
        let rows = store.sealed_connect_blobs_not_under(new, batch).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let mut resealed = Vec::with_capacity(rows.len());
        for row in rows {
            let blob = vault.reencrypt(&row.sealed, &row.aad).with_context(|| format!("re-encrypting a {:?} blob", row.kind))?;
            resealed.push((row, blob, new));
        }
        let changed = store.reseal_connect_blobs(&resealed).await?;
        total += changed;
        if changed == 0 {
            // Each changed meanwhile; look again.
            tokio::task::yield_now().await;
        }
    }
}

/// `switchyard vacuum`: makes a SQLite file incremental (one full VACUUM) and
/// prints its size before and after; on PostgreSQL says there is nothing to do.
pub async fn vacuum(db: &DatabaseOptions) -> anyhow::Result<()> {
    if is_postgres(&db.database_url) {
        // Connect anyway, so a wrong URL is an error rather than "nothing to do".
        let store = Store::open(&db.database_url).await.context("opening the database")?;
        store.close().await;
        println!("PostgreSQL: nothing to do (autovacuum makes deleted rows' space reusable; see docs/deploy.md)");
        return Ok(());
    }
    let path = database_path(&db.database_url)?;
    let before = std::fs::metadata(&path).with_context(|| format!("no database at {}", path.display()))?.len();
    let store = Store::open(&db.database_url).await?;
    store.make_incremental().await.context("VACUUM")?;
    store.close().await;
    let after = std::fs::metadata(&path)?.len();
    println!("{}: {before} bytes before, {after} after; pruned rows now give their space back", path.display());
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

