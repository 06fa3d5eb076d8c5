//! The in-process core: entries live in a hash map and die with the process.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::budget::Budget;
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::Result;
use crate::key::{Key, KeyHasher};

/// Keeps entries in memory, shared by the threads of one process.
///
/// Fast, but neither persistent nor shared between processes. Its size is
/// capped only by a function's [`Budget`] (evicting the least recently
/// stored or read entries first; reads between the same two stores count as
/// equally recent).
///
/// Reads take no lock, and write nothing other threads read but an
/// entry's mark of use, once between two stores (see [`Core::read`]), so
/// threads reading the same entries do not slow each other down; a store,
/// a clear or an eviction never waits for a reader. A store that outgrows
/// the map copies it into a larger one while readers go on (other stores
/// wait for the copy). A clear puts an empty map in place of the full one,
/// which is freed, entries and table, once the reads under way in it end:
/// a cleared core holds no memory for the entries it had, and is as fast
/// as a new one. Every method may be called from any thread.
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
pub struct MemoryCore {
    /// Replaced by an empty map on a clear: papaya's own clear leaves a
    /// tombstone in every slot of a table that keeps its largest size, and
    /// hits among the entries stored after it then cost up to 1.7x as much
    /// (see BENCHMARKS.md, round 17).
    entries: ArcSwap<Map>,
    claimed: Arc<Mutex<HashSet<Key>>>,
    /// The clock of use, in steps of two: a store takes the next tick (an
    /// even number), a read marks its entry with the odd one after the last
    /// store's. Entries read since the same store are equally recent, and
    /// more recent than that store's entry; a read of an entry marked
    /// already writes nothing, and no read writes the clock.
    clock: AtomicU64,
}

impl Default for MemoryCore {
    fn default() -> Self {
        MemoryCore {
            entries: ArcSwap::from_pointee(empty()),
            claimed: Arc::default(),
            clock: AtomicU64::default(),
        }
    }
}

/// The map of entries.
type Map = papaya::HashMap<Key, Kept, BuildHasherDefault<KeyHasher>>;

/// An empty map, which allocates nothing until its first store. It grows
/// in one copy (papaya's blocking resize) rather than a few entries at
/// every store while a copy is under way.
fn empty() -> Map {
    papaya::HashMap::builder()
        .resize_mode(papaya::ResizeMode::Blocking)
        .hasher(BuildHasherDefault::default())
        .build()
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

    /// The tick of a store: the next one of the clock of use.
    fn tick(&self) -> u64 {
        self.clock.fetch_add(2, Ordering::Relaxed) + 2
    }

    /// The entry kept under `key`, marked used.
    fn used<'g>(&self, entries: &'g Entries<'_>, key: &Key) -> Option<&'g Entry> {
        let kept = entries.get(key)?;
        // Nothing is written once the entry is marked read since the last
        // store, so that readers of the same entries do not fight over
        // cache lines.
        let read = self.clock.load(Ordering::Relaxed) + 1;
        if kept.used.load(Ordering::Relaxed) != read {
            kept.used.store(read, Ordering::Relaxed);
        }
        Some(&kept.entry)
    }

    /// Every entry's last use, size, and what names it for eviction.
    fn uses(entries: &Entries<'_>) -> Vec<(u64, u64, Chosen)> {
        entries
            .iter()
            .map(|(key, kept)| {
                let used = kept.used.load(Ordering::Relaxed);
                (used, kept.entry.value.len() as u64, (*key, used))
            })
            .collect()
    }

    /// Removes the `chosen` entries still unused since the round looked;
    /// how many went.
    fn remove_unused(entries: &Entries<'_>, chosen: Vec<Chosen>) -> u64 {
        let unused_since = |used| move |_: &Key, kept: &Kept| kept.used.load(Ordering::Relaxed) == used;
        chosen
            .into_iter()
            .filter(|(key, used)| matches!(entries.remove_if(key, unused_since(*used)), Ok(Some(_))))
            .count() as u64
    }
}

/// An entry an eviction round chose: its key and the tick of its last use
/// when the round looked.
type Chosen = (Key, u64);

/// The map, pinned: what it holds stays alive while this is held.
type Entries<'a> = papaya::HashMapRef<'a, Key, Kept, BuildHasherDefault<KeyHasher>, papaya::LocalGuard<'a>>;

// A panic while holding the claims lock cannot leave the set half-updated
// (every critical section is a single set operation), so poisoning is ignored.
impl Core for MemoryCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        Ok(self.used(&self.entries.load().pin(), key).cloned())
    }

    /// Lends the entry where it is, without cloning it.
    fn read(&self, key: &Key, read: &mut dyn FnMut(&Entry)) -> Result<()> {
        if let Some(entry) = self.used(&self.entries.load().pin(), key) {
            read(entry);
        }
        Ok(())
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        let kept = Kept {
            entry: entry.clone(),
            used: AtomicU64::new(self.tick()),
        };
        self.entries.load().pin().insert(*key, kept);
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

    /// Entries die with the process: the engine claims no keys.
    fn process_local(&self) -> bool {
        true
    }

    /// A store that began before the clear may land in the old map: it
    /// counts as made before the clear.
    fn clear(&self) -> Result<()> {
        self.entries.store(Arc::new(empty()));
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
        let mut deleted = 0;
        self.entries.load().pin().retain(|_, kept| {
            let keep = kept.entry.computed_at >= cutoff;
            deleted += u64::from(!keep);
            keep
        });
        Ok(deleted)
    }

    /// Sorts every entry by its last use (to the store: see `clock`): the
    /// cost of an eviction round grows with the number of entries. An entry
    /// stored, or read for the first time since the last store, while the
    /// round runs is spared (it is no longer the one the round chose), and
    /// counted in the next.
    fn evict(&self, budget: Budget) -> Result<Option<u64>> {
        let entries = self.entries.load();
        let entries = entries.pin();
        let chosen = budget.victims(Self::uses(&entries));
        Ok(Some(Self::remove_unused(&entries, chosen)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clear drops the entries at once (papaya's own clear only retires
    /// them, to be freed in a later batch), and the core works on.
    #[test]
    fn a_clear_frees_the_entries_at_once() {
        let core = MemoryCore::new();
        let key = Key::new("memory::clear", &1u64).unwrap();
        let entry = Entry::new(SystemTime::now(), vec![1, 2, 3]);
        core.set(&key, &entry).unwrap();
        assert_eq!(Arc::strong_count(&entry.value), 2);
        core.clear().unwrap();
        assert_eq!(Arc::strong_count(&entry.value), 1, "the cleared entry is freed");
        assert!(core.get(&key).unwrap().is_none());
        core.set(&key, &entry).unwrap();
        assert!(core.get(&key).unwrap().is_some());
    }

    /// The promise of [`MemoryCore::evict`], step by step: entries read or
    /// stored after the round chose them stay; the others go.
    #[test]
    fn entries_used_while_an_eviction_round_runs_are_spared() {
        let core = MemoryCore::new();
        let keys: Vec<Key> = (0..4u64)
            .map(|i| Key::new("memory::evict", &i).unwrap())
            .collect();
        let entry = Entry::new(SystemTime::now(), vec![1]);
        keys.iter().for_each(|key| core.set(key, &entry).unwrap());
        let entries = core.entries.load();
        let entries = entries.pin();
        let chosen = Budget::new().max_entries(0).victims(MemoryCore::uses(&entries));
        assert_eq!(chosen.len(), 4);
        // While the round runs: one entry is read, one stored again.
        core.read(&keys[1], &mut |_| {}).unwrap();
        core.set(&keys[2], &entry).unwrap();
        assert_eq!(MemoryCore::remove_unused(&entries, chosen), 2);
        let left = |key: &Key| core.get(key).unwrap().is_some();
        assert_eq!(
            keys.iter().map(left).collect::<Vec<_>>(),
            [false, true, true, false]
        );
    }
}
