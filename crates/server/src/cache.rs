//! A short memory of the caller behind a pair of credential hashes, sparing each
//! call a database round trip. (Opened instances are remembered by the engine.)
//!
//! Entries live `TTL` at most. On PostgreSQL a node forgets them all when another
//! node or the CLI announces a reset or deleted secret (`switchyard serve` follows
//! `Store::listen_changes`); `TTL` bounds what a missed announcement (or another
//! SQLite process) costs.

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
        CallerCache::with_ttl(TTL)
    }
}

impl CallerCache {
    /// A cache whose entries live `ttl` at most.
    pub fn with_ttl(ttl: Duration) -> Self {
        CallerCache { callers: Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build() }
    }

    pub fn get(&self, user_hash: &[u8], org_hash: &[u8]) -> Option<Arc<StoredCaller>> {
        self.callers.get(&(user_hash.to_vec(), org_hash.to_vec()))
    }

    pub fn remember(&self, user_hash: Vec<u8>, org_hash: Vec<u8>, caller: StoredCaller) {
        self.callers.insert((user_hash, org_hash), Arc::new(caller));
    }

    /// After a secret changed somewhere: resets are rare, so all go.
    pub fn forget_all(&self) {
        self.callers.invalidate_all();
    }
}
