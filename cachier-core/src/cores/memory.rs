//! The in-process core: entries live in a hash map and die with the process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::Result;
use crate::key::{Key, KeyMap};

/// Keeps entries in memory, shared by the threads of one process.
///
/// Fast, but neither persistent nor shared between processes; it has no size cap.
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
    entries: RwLock<KeyMap<Entry>>,
    claimed: Arc<Mutex<HashSet<Key>>>,
}

impl MemoryCore {
    /// An empty memory core.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

// A panic while holding one of these locks cannot leave the map half-updated
// (every critical section is a single map operation), so poisoning is ignored.
impl Core for MemoryCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.get(key).cloned())
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.insert(*key, entry.clone());
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
        entries.retain(|_, entry| entry.computed_at >= cutoff);
        Ok((before - entries.len()) as u64)
    }
}
