//! A memory of values read from the database that is kept until the database says
//! they changed, and never keeps a value read before a change it was told of.
//!
//! The race it closes: a reader misses, reads the row, and is about to remember
//! it when a writer commits a change and forgets the entry; the reader would then
//! remember the old row, and (with no short expiry to bound it) keep serving it.
//! A reader takes a [`Ticket`] before it reads; forgetting anything moves the
//! epoch on, and a ticket from an older epoch remembers nothing. Misses and
//! changes take a short lock; hits take none.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

/// Proof of when a reader started reading; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// Values by key, each kept at most `ttl`. Cheap to clone.
#[derive(Clone)]
pub struct Memo<K, V> {
    entries: Cache<K, V>,
    epoch: Arc<Mutex<u64>>,
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A memory of at most `capacity` entries, each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Memo {
            entries: Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
            epoch: Arc::new(Mutex::new(0)),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key)
    }

    /// Take before reading what may be remembered.
    pub fn ticket(&self) -> Ticket {
        Ticket(*self.lock())
    }

    /// Remembers `value` unless something was forgotten since `ticket` was taken
    /// (the value may be older than that change); whether it was remembered.
    pub fn remember(&self, ticket: Ticket, key: K, value: V) -> bool {
        let epoch = self.lock();
        if *epoch != ticket.0 {
            return false;
        }
        self.entries.insert(key, value);
        true
    }

    pub fn forget(&self, key: &K) {
        let mut epoch = self.lock();
        *epoch += 1;
        self.entries.invalidate(key);
    }

    pub fn forget_all(&self) {
        let mut epoch = self.lock();
        *epoch += 1;
        self.entries.invalidate_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a counter: a panic elsewhere cannot leave it half-made.
        self.epoch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_change_is_not_remembered() {
        let memo: Memo<u32, &str> = Memo::new(10, Duration::from_secs(60));
        let early = memo.ticket();
        memo.forget(&1);
        assert!(!memo.remember(early, 1, "old"));
        assert_eq!(memo.get(&1), None);

        let late = memo.ticket();
        assert!(memo.remember(late, 1, "new"));
        assert_eq!(memo.get(&1), Some("new"));
        memo.forget_all();
        assert_eq!(memo.get(&1), None);
        assert!(!memo.remember(late, 1, "stale"), "forget_all moves the epoch too");
    }

    #[test]
    fn entries_expire() {
        let memo: Memo<u32, u32> = Memo::new(10, Duration::from_millis(20));
        assert!(memo.remember(memo.ticket(), 1, 1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(memo.get(&1), None);
    }
}
