//! When a function's store is brought back within its [`Budget`]: an
//! eviction round lists the store, so it runs after a store only once the
//! stores since the last round could have exceeded the budget by a sixteenth.
//!
//! A round brings the store down to its budget; between rounds, each process
//! storing adds at most a sixteenth of the budget (entries and bytes alike, at
//! least one entry) before its next round. With `P` processes storing at
//! once, a store holds at most `budget × (1 + P/16)`. The first store of a
//! process always starts a round, so a budget lowered since the last run
//! takes effect at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::budget::Budget;

/// What this process stored since its last eviction round.
#[derive(Default)]
pub(super) struct Eviction {
    since: Mutex<Since>,
    /// Whether the core was found to keep no record of use (said once).
    unsupported: AtomicBool,
}

#[derive(Default)]
struct Since {
    rounds: u64,
    entries: u64,
    bytes: u64,
}

impl Eviction {
    /// Counts a store of `bytes` bytes; whether a round is due under `budget`
    /// (if so, the count starts again). Serialized, and microseconds beside
    /// the store it follows.
    pub fn due(&self, budget: &Budget, bytes: u64) -> bool {
        let mut since = self.since.lock().unwrap_or_else(PoisonError::into_inner);
        since.entries += 1;
        since.bytes = since.bytes.saturating_add(bytes);
        let slack =
            |limit: Option<u64>, stored: u64| limit.is_some_and(|limit| stored >= (limit / 16).max(1));
        let due = since.rounds == 0
            || slack(budget.max_entries, since.entries)
            || slack(budget.max_bytes, since.bytes);
        if due {
            *since = Since {
                rounds: since.rounds + 1,
                ..Since::default()
            };
        }
        due
    }

    /// Whether this is the first time the core was found to keep no record
    /// of use (so that the budget's being unenforced is said once).
    pub fn first_unsupported(&self) -> bool {
        !self.unsupported.swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_start_at_the_first_store_then_every_sixteenth_of_the_budget() {
        let eviction = Eviction::default();
        let budget = Budget::new().max_entries(64);
        let due: Vec<bool> = (0..9).map(|_| eviction.due(&budget, 1)).collect();
        assert_eq!(due, [true, false, false, false, true, false, false, false, true]);
        let bytes = Eviction::default();
        let budget = Budget::new().max_bytes(1_600);
        let due: Vec<bool> = [50, 50, 99, 1, 100]
            .iter()
            .map(|&b| bytes.due(&budget, b))
            .collect();
        assert_eq!(due, [true, false, true, false, true]);
        let tiny = Eviction::default();
        assert!((0..3).all(|_| tiny.due(&Budget::new().max_entries(3), 1)));
    }
}
