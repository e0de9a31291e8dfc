//! A bounded least-recently-used cache with per-entry expiry, for token
//! validations and password verifications (both expensive: a Keystone round
//! trip, a bcrypt hash).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use clinker_types::Timestamp;

/// At most `capacity` entries; the least recently used goes first, and an
/// entry past its expiry is never returned.
#[derive(Debug)]
pub struct ExpiringLru<K, V> {
    capacity: usize,
    next_use: u64,
    entries: HashMap<K, (u64, Timestamp, V)>,
    by_use: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + Hash, V: Clone> ExpiringLru<K, V> {
    /// An empty cache of `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            next_use: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    fn touch(&mut self) -> u64 {
        self.next_use += 1;
        self.next_use
    }

    /// The value of `key` if it has not expired at `now`.
    pub fn get(&mut self, key: &K, now: Timestamp) -> Option<V> {
        let (used, expires, _) = self.entries.get(key)?;
        let used = *used;
        if *expires <= now {
            self.remove(key);
            return None;
        }
        let stamp = self.touch();
        self.by_use.remove(&used);
        self.by_use.insert(stamp, key.clone());
        let entry = self.entries.get_mut(key)?;
        entry.0 = stamp;
        Some(entry.2.clone())
    }

    /// Stores `value` until `expires`, evicting the least recently used
    /// entry when full.
    pub fn insert(&mut self, key: K, value: V, expires: Timestamp) {
        self.remove(&key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let stamp = self.touch();
        self.by_use.insert(stamp, key.clone());
        self.entries.insert(key, (stamp, expires, value));
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        if let Some((used, _, _)) = self.entries.remove(key) {
            self.by_use.remove(&used);
        }
    }

    /// The number of entries (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_evicts_the_least_recently_used() {
        let mut cache = ExpiringLru::new(2);
        let t = Timestamp(1_000);
        cache.insert("a", 1, Timestamp(2_000));
        cache.insert("b", 2, Timestamp(2_000));
        assert_eq!(cache.get(&"a", t), Some(1)); // a is now the most recent
        cache.insert("c", 3, Timestamp(2_000));
        assert_eq!(cache.get(&"b", t), None, "b was the least recently used");
        assert_eq!(cache.get(&"a", t), Some(1));
        assert_eq!(cache.get(&"c", t), Some(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&"a", Timestamp(2_000)), None, "expired");
        assert_eq!(cache.len(), 1);
        cache.insert("c", 4, Timestamp(5_000));
        assert_eq!(cache.get(&"c", t), Some(4));
        assert_eq!(cache.len(), 1);
    }
}
