//! Instances as the engine uses them: the element they belong to, their
//! configuration opened (secrets decrypted, over the element's defaults), a short
//! memory of instances opened by token, and the sealer that stores secrets bound
//! to their row.
//!
//! The memory lives [`TTL`] at most. Writes through this process forget it at once;
//! on PostgreSQL other nodes forget an instance when its change is announced
//! (`switchyard serve` follows `Store::listen_changes`), and `TTL` bounds what a
//! missed announcement (or another SQLite process) costs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use switchyard_elements::ElementDefinition;
use switchyard_store::{config_aad, InstanceRow, Sealer};
use switchyard_vault::{KeyRing, Vault, VaultError};

use crate::error::EngineError;
use crate::Engine;

/// How long an opened instance is trusted without asking the database.
pub const TTL: Duration = Duration::from_secs(1);
const CAPACITY: u64 = 10_000;

/// An instance as hub calls need it: its row and its configuration, secrets
/// opened, over the element defaults.
pub struct OpenInstance {
    pub row: InstanceRow,
    pub config: BTreeMap<String, String>,
}

/// Instances opened recently, by the hash of their token. Cheap to clone.
#[derive(Clone)]
pub struct InstanceCache {
    instances: Cache<Vec<u8>, Arc<OpenInstance>>,
}

impl Default for InstanceCache {
    fn default() -> Self {
        InstanceCache::with_ttl(TTL)
    }
}

impl InstanceCache {
    /// A cache whose entries live `ttl` at most.
    pub fn with_ttl(ttl: Duration) -> Self {
        InstanceCache { instances: Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build() }
    }

    pub fn get(&self, token_hash: &[u8]) -> Option<Arc<OpenInstance>> {
        self.instances.get(token_hash)
    }

    pub fn remember(&self, token_hash: Vec<u8>, instance: OpenInstance) -> Arc<OpenInstance> {
        let instance = Arc::new(instance);
        self.instances.insert(token_hash, instance.clone());
        instance
    }

    /// After any write to an instance or its configuration. Writes are rare, so
    /// forgetting every instance is simpler than finding the one entry.
    pub fn forget_all(&self) {
        self.instances.invalidate_all();
    }

    /// Forgets one instance (another node changed it). Walks the cache, which
    /// is cheap next to the write being announced.
    pub fn forget_instance(&self, instance_id: i64) {
        for (token_hash, open) in self.instances.iter() {
            if open.row.id == instance_id {
                self.instances.invalidate(&*token_hash);
            }
        }
    }
}

/// Seals configuration values with the vault, bound to their row.
pub struct VaultSealer<'a>(pub &'a Vault);

impl Sealer for VaultSealer<'_> {
    fn seal(&self, instance_id: i64, key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        let blob = self.0.encrypt_str(plaintext, &config_aad(instance_id, key));
        let key_id = KeyRing::key_id_of(&blob).unwrap_or_default();
        (blob, key_id)
    }
}

/// The element's default configuration values.
pub fn defaults(def: &ElementDefinition) -> BTreeMap<String, String> {
    def.configuration
        .iter()
        .filter_map(|p| Some((p.key.clone(), p.default_value.clone()?)))
        .collect()
}

impl Engine {
    /// The instance whose token hashes to `token_hash`, opened (remembered briefly);
    /// `None` for a token nobody holds. Disabled and invalid instances are opened
    /// too: what they may do is the caller's decision.
    pub async fn open_by_token(&self, token_hash: &[u8]) -> Result<Option<Arc<OpenInstance>>, EngineError> {
        if let Some(open) = self.instances.get(token_hash) {
            return Ok(Some(open));
        }
        let Some(row) = self.store.instance_by_token(token_hash).await? else {
            return Ok(None);
        };
        let def = self.element_of(&row)?;
        let config = self.open_configuration(&def, &row).await?;
        Ok(Some(self.instances.remember(token_hash.to_vec(), OpenInstance { row, config })))
    }

    /// The element an instance belongs to.
    pub fn element_of(&self, row: &InstanceRow) -> Result<Arc<ElementDefinition>, EngineError> {
        self.catalog
            .get(&row.element_key)
            .cloned()
            .ok_or_else(|| EngineError::internal(format!("instance {} names unknown element {}", row.id, row.element_key)))
    }

    /// The instance's configuration with secrets opened, over the element defaults.
    pub async fn open_configuration(&self, def: &ElementDefinition, row: &InstanceRow) -> Result<BTreeMap<String, String>, EngineError> {
        let mut config = defaults(def);
        config.extend(self.stored_configuration(row.id).await?);
        Ok(config)
    }

    /// The values stored for an instance, secrets opened (no element defaults).
    pub async fn stored_configuration(&self, instance_id: i64) -> Result<BTreeMap<String, String>, EngineError> {
        let mut config = BTreeMap::new();
        for c in self.store.configuration(instance_id).await? {
            let value = match (c.value, c.secret) {
                (Some(v), _) => v,
                (None, Some(blob)) => self
                    .vault
                    .decrypt_str(&blob, &config_aad(instance_id, &c.key))
                    .map_err(vault_error)?
                    .expose()
                    .to_owned(),
                (None, None) => continue,
            };
            config.insert(c.key, value);
        }
        Ok(config)
    }

    /// The sealer for configuration writes.
    pub fn sealer(&self) -> VaultSealer<'_> {
        VaultSealer(&self.vault)
    }

    /// Whether this node may seal new secrets now: a 503 when its key ring lacks
    /// the key the database names as current (`rotate-key --activate` ran on a
    /// node that has it). Ask before a write that seals, or before anything that
    /// cannot be undone and is followed by one (an OAuth refresh).
    pub fn check_sealing(&self) -> Result<(), EngineError> {
        self.vault.check_sealing().map_err(vault_error)
    }
}

/// A vault failure as the caller sees it. A key this node lacks is a 503 that
/// names the key id (ids are fingerprints, not secrets) so the operator knows
/// what to add; anything else is an internal error. Logged either way.
pub fn vault_error(e: VaultError) -> EngineError {
    match e {
        VaultError::UnknownKey(id) | VaultError::CurrentKeyMissing(id) => {
            tracing::error!(key_id = id, error = %e, "this node's master key ring lacks a key the database uses");
            EngineError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "This server's master key ring lacks key id {id}, which the database uses for secrets; \
                     add that key to this server (see docs/deploy.md, rotating the master key on several nodes)"
                ),
            )
        }
        other => EngineError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> InstanceRow {
        InstanceRow {
            id,
            organization_id: 1,
            user_id: 1,
            element_key: "bigcommerce".into(),
            name: "n".into(),
            tags: vec![],
            valid: true,
            disabled: false,
            events_enabled: false,
            created_at: String::new(),
            updated_at: String::new(),
            account_zone: None,
        }
    }

    #[test]
    fn instances_are_forgotten_on_write_and_after_the_ttl() {
        let cache = InstanceCache::default();
        cache.remember(b"t1".to_vec(), OpenInstance { row: row(1), config: BTreeMap::new() });
        assert_eq!(cache.get(b"t1").map(|i| i.row.id), Some(1));
        assert!(cache.get(b"t2").is_none());
        cache.forget_all();
        assert!(cache.get(b"t1").is_none());

        let short = InstanceCache::with_ttl(Duration::from_millis(20));
        short.remember(b"t".to_vec(), OpenInstance { row: row(2), config: BTreeMap::new() });
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.get(b"t").is_none(), "expired");
    }

    #[test]
    fn one_instance_is_forgotten_by_id() {
        let cache = InstanceCache::default();
        cache.remember(b"a".to_vec(), OpenInstance { row: row(1), config: BTreeMap::new() });
        cache.remember(b"b".to_vec(), OpenInstance { row: row(2), config: BTreeMap::new() });
        cache.forget_instance(1);
        assert!(cache.get(b"a").is_none());
        assert_eq!(cache.get(b"b").map(|i| i.row.id), Some(2));
    }
}
