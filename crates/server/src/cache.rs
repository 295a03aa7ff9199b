//! A short memory of the caller behind a pair of credential hashes, sparing each
//! call a database round trip. (Opened instances are remembered by the engine.)
//!
//! Entries live `TTL` at most: another process sharing the database sees a reset
//! secret at most `TTL` late.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use switchyard_store::Caller as StoredCaller;

/// How long a looked-up caller is trusted without asking the database.
pub const TTL: Duration = Duration::from_secs(1);
const CAPACITY: u64 = 10_000;

#[derive(Clone)]
pub struct CallerCache {
    callers: Cache<(Vec<u8>, Vec<u8>), Arc<StoredCaller>>,
}

impl Default for CallerCache {
    fn default() -> Self {
        CallerCache { callers: Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build() }
    }
}

impl CallerCache {
    pub fn get(&self, user_hash: &[u8], org_hash: &[u8]) -> Option<Arc<StoredCaller>> {
        self.callers.get(&(user_hash.to_vec(), org_hash.to_vec()))
    }

    pub fn remember(&self, user_hash: Vec<u8>, org_hash: Vec<u8>, caller: StoredCaller) {
        self.callers.insert((user_hash, org_hash), Arc::new(caller));
    }
}
