//! The memory of the caller behind a pair of credential hashes, sparing each call
//! a database round trip. (Opened instances are remembered by the engine.)
//!
//! A caller is kept until an organization or user changes, at most `ttl`: writes
//! through this process and other nodes' and processes' writes
//! (`Store::listen_changes`, followed by `switchyard serve`) forget them all.
//! `ttl` only bounds what a missed change costs.

use std::sync::Arc;
use std::time::Duration;

use switchyard_engine::memo::{Memo, Ticket};
use switchyard_store::Caller as StoredCaller;

/// How long a looked-up caller is kept at most (`serve --cache-ttl`).
pub const TTL: Duration = switchyard_engine::instance::TTL;
const CAPACITY: u64 = 10_000;

#[derive(Clone)]
pub struct CallerCache {
    callers: Memo<(Vec<u8>, Vec<u8>), Arc<StoredCaller>>,
}

impl Default for CallerCache {
    fn default() -> Self {
        CallerCache::with_ttl(TTL)
    }
}

impl CallerCache {
    /// A cache whose entries live `ttl` at most.
    pub fn with_ttl(ttl: Duration) -> Self {
        CallerCache { callers: Memo::new(CAPACITY, ttl) }
    }

    pub fn get(&self, user_hash: &[u8], org_hash: &[u8]) -> Option<Arc<StoredCaller>> {
        self.callers.get(&(user_hash.to_vec(), org_hash.to_vec()))
    }

    /// Take before reading a caller from the database; see [`Memo`].
    pub fn ticket(&self) -> Ticket {
        self.callers.ticket()
    }

    /// Remembers a caller read after `ticket` was taken, unless callers changed since.
    pub fn remember(&self, ticket: Ticket, user_hash: Vec<u8>, org_hash: Vec<u8>, caller: StoredCaller) {
        self.callers.remember(ticket, (user_hash, org_hash), Arc::new(caller));
    }

    /// After a secret, user or organization changed somewhere: rare, so all go.
    pub fn forget_all(&self) {
        self.callers.forget_all();
    }
}
