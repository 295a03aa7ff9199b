//! A short memory of what every hub call looks up: the caller behind a pair of
//! credential hashes, and the instance behind a token hash with its configuration
//! opened. It spares each hub call three database round trips and a decryption.
//!
//! Entries live `TTL` at most. Writes through this process forget the instance
//! cache at once; another process sharing the database sees a deleted, disabled or
//! reconfigured instance, or a reset secret, at most `TTL` late.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use switchyard_store::{Caller as StoredCaller, InstanceRow};

/// How long a looked-up caller or instance is trusted without asking the database.
pub const TTL: Duration = Duration::from_secs(1);
const CAPACITY: u64 = 10_000;

/// An instance as hub calls need it: its row and its configuration, secrets
/// opened, over the element defaults.
pub struct OpenInstance {
    pub row: InstanceRow,
    pub config: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct LookupCache {
    callers: Cache<(Vec<u8>, Vec<u8>), Arc<StoredCaller>>,
    instances: Cache<Vec<u8>, Arc<OpenInstance>>,
}

impl Default for LookupCache {
    fn default() -> Self {
        LookupCache {
            callers: Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build(),
            instances: Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build(),
        }
    }
}

impl LookupCache {
    pub fn caller(&self, user_hash: &[u8], org_hash: &[u8]) -> Option<Arc<StoredCaller>> {
        self.callers.get(&(user_hash.to_vec(), org_hash.to_vec()))
    }

    pub fn remember_caller(&self, user_hash: Vec<u8>, org_hash: Vec<u8>, caller: StoredCaller) {
        self.callers.insert((user_hash, org_hash), Arc::new(caller));
    }

    pub fn instance(&self, token_hash: &[u8]) -> Option<Arc<OpenInstance>> {
        self.instances.get(token_hash)
    }

    pub fn remember_instance(&self, token_hash: Vec<u8>, instance: OpenInstance) -> Arc<OpenInstance> {
        let instance = Arc::new(instance);
        self.instances.insert(token_hash, instance.clone());
        instance
    }

    /// After any write to an instance or its configuration. Writes are rare, so
    /// forgetting every instance is simpler than finding the one entry.
    pub fn forget_instances(&self) {
        self.instances.invalidate_all();
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
        }
    }

    #[test]
    fn instances_are_forgotten_on_write_and_after_the_ttl() {
        let cache = LookupCache::default();
        cache.remember_instance(b"t1".to_vec(), OpenInstance { row: row(1), config: BTreeMap::new() });
        assert_eq!(cache.instance(b"t1").map(|i| i.row.id), Some(1));
        assert!(cache.instance(b"t2").is_none());
        cache.forget_instances();
        assert!(cache.instance(b"t1").is_none());

        let short = LookupCache {
            callers: Cache::builder().time_to_live(Duration::from_millis(20)).build(),
            instances: Cache::builder().time_to_live(Duration::from_millis(20)).build(),
        };
        short.remember_instance(b"t".to_vec(), OpenInstance { row: row(2), config: BTreeMap::new() });
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.instance(b"t").is_none(), "expired");
    }
}
