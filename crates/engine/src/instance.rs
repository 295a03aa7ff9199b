//! Instances as the engine uses them: the element they belong to, their
//! configuration opened (secrets decrypted, over the element defaults), the
//! memory of instances opened by token, and the sealer that stores secrets bound
//! to their row.
//!
//! An opened instance is kept until it changes, at most [`TTL`]: writes through
//! this process forget it at once, and `switchyard serve` forgets what other
//! nodes and processes change as it hears of it (`Store::listen_changes`: at
//! once on PostgreSQL, within a second on SQLite). `TTL` only bounds what a
//! missed change costs. A hub call on a remembered instance reads nothing from
//! the database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use switchyard_elements::ElementDefinition;
use switchyard_store::{config_aad, InstanceRow, Sealer};
use switchyard_vault::{KeyRing, Vault, VaultError};

use crate::error::EngineError;
use crate::memo::{Memo, Ticket};
use crate::Engine;

/// How long an opened instance is kept at most (`serve --cache-ttl`).
pub const TTL: Duration = Duration::from_secs(600);
/// Opened instances kept at once (about 1 KB each); the least used go first.
const CAPACITY: u64 = 100_000;

/// An instance as hub calls need it: its row and its configuration, secrets
/// opened, over the element defaults.
pub struct OpenInstance {
    pub row: InstanceRow,
    pub config: BTreeMap<String, String>,
}

/// Instances opened by token. Cheap to clone.
#[derive(Clone)]
pub struct InstanceCache {
    /// Opened instances by id: what a change forgets.
    open: Memo<i64, Arc<OpenInstance>>,
    /// The instance a token hash belongs to. A token is made with its instance
    /// and never changes, so this needs no forgetting: a deleted instance is
    /// missing from `open` and the database says there is no such token.
    tokens: Cache<Vec<u8>, i64>,
}

impl Default for InstanceCache {
    fn default() -> Self {
        InstanceCache::with_ttl(TTL)
    }
}

impl InstanceCache {
    /// A cache whose entries live `ttl` at most.
    pub fn with_ttl(ttl: Duration) -> Self {
        InstanceCache {
            open: Memo::new(CAPACITY, ttl),
            tokens: Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build(),
        }
    }

    pub fn get(&self, token_hash: &[u8]) -> Option<Arc<OpenInstance>> {
        self.open.get(&self.tokens.get(token_hash)?)
    }

    /// Take before reading an instance from the database; see [`Memo`].
    pub fn ticket(&self) -> Ticket {
        self.open.ticket()
    }

    /// Remembers an instance read after `ticket` was taken (unless it changed
    /// since); the instance, shared.
    pub fn remember(&self, ticket: Ticket, token_hash: Vec<u8>, instance: OpenInstance) -> Arc<OpenInstance> {
        let instance = Arc::new(instance);
        self.tokens.insert(token_hash, instance.row.id);
        self.open.remember(ticket, instance.row.id, instance.clone());
        instance
    }

    /// After a write to an instance's row or configuration, or its deletion.
    pub fn forget_instance(&self, instance_id: i64) {
        self.open.forget(&instance_id);
    }

    /// When changes may have gone unheard.
    pub fn forget_all(&self) {
        self.open.forget_all();
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
    /// The instance whose token hashes to `token_hash`, opened (remembered until it changes);
    /// `None` for a token nobody holds. Disabled and invalid instances are opened
    /// too: what they may do is the caller's decision.
    pub async fn open_by_token(&self, token_hash: &[u8]) -> Result<Option<Arc<OpenInstance>>, EngineError> {
        if let Some(open) = self.instances.get(token_hash) {
            return Ok(Some(open));
        }
        let ticket = self.instances.ticket();
        let Some(row) = self.store.instance_by_token(token_hash).await? else {
            return Ok(None);
        };
        let def = self.element_of(&row)?;
        let config = self.open_configuration(&def, &row).await?;
        Ok(Some(self.instances.remember(ticket, token_hash.to_vec(), OpenInstance { row, config })))
    }

    /// The instance with this id, opened afresh (not remembered: the console's
    /// explorer calls by id, rarely); `None` when there is none. As with
    /// [`Engine::open_by_token`], whether it may be used is the caller's decision.
    pub async fn open_by_id(&self, id: i64) -> Result<Option<Arc<OpenInstance>>, EngineError> {
        let Some(row) = self.store.instance_by_id(id).await? else {
            return Ok(None);
        };
        let def = self.element_of(&row)?;
        let config = self.open_configuration(&def, &row).await?;
        Ok(Some(Arc::new(OpenInstance { row, config })))
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

    fn open(id: i64) -> OpenInstance {
        OpenInstance { row: row(id), config: BTreeMap::new() }
    }

    #[test]
    fn instances_are_kept_until_they_change_or_the_ttl_passes() {
        let cache = InstanceCache::default();
        cache.remember(cache.ticket(), b"t1".to_vec(), open(1));
        cache.remember(cache.ticket(), b"t2".to_vec(), open(2));
        assert_eq!(cache.get(b"t1").map(|i| i.row.id), Some(1));
        assert!(cache.get(b"t3").is_none());
        cache.forget_instance(1);
        assert!(cache.get(b"t1").is_none());
        assert_eq!(cache.get(b"t2").map(|i| i.row.id), Some(2), "only the changed instance goes");
        cache.forget_all();
        assert!(cache.get(b"t2").is_none());

        let short = InstanceCache::with_ttl(Duration::from_millis(20));
        short.remember(short.ticket(), b"t".to_vec(), open(2));
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.get(b"t").is_none(), "expired");
    }

    #[test]
    fn an_instance_read_before_its_change_is_not_kept() {
        let cache = InstanceCache::default();
        let ticket = cache.ticket();
        // A write committed and was announced while this reader read the old row.
        cache.forget_instance(1);
        let served = cache.remember(ticket, b"t".to_vec(), open(1));
        assert_eq!(served.row.id, 1, "the reader still answers with what it read");
        assert!(cache.get(b"t").is_none(), "but the next call reads again");
    }
}
