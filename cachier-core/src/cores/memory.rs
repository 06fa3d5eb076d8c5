//! The in-process core: entries live in a hash map and die with the process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::budget::Budget;
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::Result;
use crate::key::{Key, KeyMap};

/// Keeps entries in memory, shared by the threads of one process.
///
/// Fast, but neither persistent nor shared between processes. Its size is
/// capped only by a function's [`Budget`] (evicting the least recently
/// stored or read entries first).
///
/// ```
/// use cachier_core::{Core, Entry, Key, MemoryCore};
/// let core = MemoryCore::new();
/// let key = Key::new("doc::f", &"x").unwrap();
/// assert!(core.get(&key).unwrap().is_none());
/// let claim = core.try_claim(&key).unwrap().expect("nobody else computes");
/// assert!(core.try_claim(&key).unwrap().is_none());
/// drop(claim);
/// assert!(core.try_claim(&key).unwrap().is_some());
/// ```
#[derive(Default)]
pub struct MemoryCore {
    entries: RwLock<KeyMap<Kept>>,
    claimed: Arc<Mutex<HashSet<Key>>>,
    /// The clock of use: every store, and every read of an entry not used
    /// since the clock last moved, takes the next tick.
    clock: AtomicU64,
}

/// An entry and the tick of its last use.
struct Kept {
    entry: Entry,
    used: AtomicU64,
}

impl MemoryCore {
    /// An empty memory core.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next tick of the clock of use.
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }
}

// A panic while holding one of these locks cannot leave the map half-updated
// (every critical section is a single map operation), so poisoning is ignored.
impl Core for MemoryCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.get(key).map(|kept| {
            // Nothing is written while the entry is the last one used, so
            // that readers of a hot entry do not fight over cache lines.
            if kept.used.load(Ordering::Relaxed) != self.clock.load(Ordering::Relaxed) {
                kept.used.store(self.tick(), Ordering::Relaxed);
            }
            kept.entry.clone()
        }))
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        let used = AtomicU64::new(self.tick());
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.insert(
            *key,
            Kept {
                entry: entry.clone(),
                used,
            },
        );
        Ok(())
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        if !claimed.insert(*key) {
            return Ok(None);
        }
        let claimed = Arc::clone(&self.claimed);
        let key = *key;
        Ok(Some(Claim::new(move || {
            claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        })))
    }

    fn clear(&self) -> Result<()> {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    fn clear_claims(&self) -> Result<()> {
        self.claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|_, kept| kept.entry.computed_at >= cutoff);
        Ok((before - entries.len()) as u64)
    }

    /// Sorts every entry by its last use under the write lock: the cost of
    /// an eviction round grows with the number of entries.
    fn evict(&self, budget: Budget) -> Result<Option<u64>> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let all = entries
            .iter()
            .map(|(key, kept)| {
                (
                    kept.used.load(Ordering::Relaxed),
                    kept.entry.value.len() as u64,
                    *key,
                )
            })
            .collect();
        let victims = budget.victims(all);
        for key in &victims {
            entries.remove(key);
        }
        Ok(Some(victims.len() as u64))
    }
}
