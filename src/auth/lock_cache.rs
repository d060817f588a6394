//! A replica's short memory of locked accounts. A bot hammering a locked PESEL
//! is answered 423 from here for up to [`MAX_AGE`], without a store round
//! trip: the lock's end and the store's time are remembered, and the time
//! since is measured on the service clock (a difference, so a skewed replica
//! clock does not matter).
//!
//! What it costs: a lock lifted by the helpline (unlock, reset, reclaim) on
//! *another* replica is seen here up to [`MAX_AGE`] late; on this replica at
//! once. Locks only ever start in the store, so nothing is refused here that
//! the store would allow, apart from that second.

use crate::clock::{Millis, seconds_until};
use crate::keys::PeselKey;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a remembered lock is believed without asking the store.
pub const MAX_AGE: Millis = 1_000;
/// Bound on remembered locks; beyond it, new ones are not remembered.
const CAPACITY: usize = 65_536;

#[derive(Clone, Copy)]
struct Entry {
    until: Millis,
    /// The store's time when the store said so, and ours at that moment.
    store_now: Millis,
    seen_at: Millis,
}

#[derive(Default)]
pub struct LockCache {
    entries: Mutex<HashMap<PeselKey, Entry>>,
}

/// A remembered lock: its end and the seconds until then, by the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedLock {
    pub until: Millis,
    pub retry_after: u64,
}

impl Entry {
    /// The store's time now, if the entry is still to be believed.
    fn store_now(&self, now: Millis) -> Option<Millis> {
        let age = now - self.seen_at;
        let store_now = self.store_now + age;
        ((0..MAX_AGE).contains(&age) && store_now < self.until).then_some(store_now)
    }
}

impl LockCache {
    /// Remembers that the store said `key` is locked until `until` at its time
    /// `store_now`; `now` is the service clock.
    pub fn remember(&self, key: &PeselKey, until: Millis, store_now: Millis, now: Millis) {
        let entry = Entry {
            until,
            store_now,
            seen_at: now,
        };
        if entry.store_now(now).is_none() {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(key) {
            map.retain(|_, e| e.store_now(now).is_some());
            if map.len() >= CAPACITY {
                return;
            }
        }
        map.insert(*key, entry);
    }

    /// The remembered lock of `key`, if it is still believed at `now`.
    pub fn get(&self, key: &PeselKey, now: Millis) -> Option<CachedLock> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = *map.get(key)?;
        match entry.store_now(now) {
            Some(store_now) => Some(CachedLock {
                until: entry.until,
                retry_after: seconds_until(store_now, entry.until),
            }),
            None => {
                map.remove(key);
                None
            }
        }
    }

    /// Forgets `key` (a lock lifted on this replica).
    pub fn forget(&self, key: &PeselKey) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PeselKey {
        PeselKey::from_hex(&format!("{b:02x}").repeat(16)).expect("hex")
    }

    #[test]
    fn a_lock_is_believed_for_at_most_max_age_and_never_past_its_end() {
        let c = LockCache::default();
        // The store is 5 s ahead of us; the lock ends 3.6 s after its time.
        c.remember(&key(1), 8_600, 5_000, 0);
        assert_eq!(
            c.get(&key(1), 400),
            Some(CachedLock {
                until: 8_600,
                retry_after: 4
            })
        );
        assert_eq!(c.get(&key(1), MAX_AGE), None, "older than MAX_AGE");
        assert_eq!(c.get(&key(1), 400), None, "a stale entry is dropped");

        c.remember(&key(2), 5_300, 5_000, 0);
        assert!(c.get(&key(2), 299).is_some());
        assert_eq!(c.get(&key(2), 300), None, "the lock has ended");
    }

    #[test]
    fn forget_and_ended_locks_and_other_keys() {
        let c = LockCache::default();
        c.remember(&key(1), 10_000, 1_000, 0);
        c.remember(&key(2), 900, 1_000, 0); // already over: not remembered
        assert!(c.get(&key(2), 0).is_none());
        assert!(c.get(&key(3), 0).is_none());
        c.forget(&key(1));
        assert!(c.get(&key(1), 0).is_none());
    }
}
