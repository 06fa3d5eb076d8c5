//! Per-function counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one function's cache has done since the process started.
///
/// Every cached call is counted once as a hit, a miss or a stale hit, by what its
/// lookup found; `recalculations` counts runs of the body.
///
/// ```
/// let info = cachier_core::CacheInfo::default();
/// assert_eq!(info.calls(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Calls that found a fresh entry.
    pub hits: u64,
    /// Calls that found no usable entry.
    pub misses: u64,
    /// Calls that found a stale entry (served at once with `next_time`, else recomputed).
    pub stale_hits: u64,
    /// Runs of the body under the cache, in the foreground or the background.
    pub recalculations: u64,
    /// Failures of the cache itself (I/O, corrupt entries, encoding, server errors).
    pub cache_errors: u64,
    /// Entries this process evicted to keep the store within its budget
    /// (`max_entries`, `max_bytes`).
    pub evictions: u64,
}

impl CacheInfo {
    /// Calls that looked up the cache: hits, misses and stale hits.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.hits + self.misses + self.stale_hits
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale_hits: AtomicU64,
    pub recalculations: AtomicU64,
    pub cache_errors: AtomicU64,
    pub evictions: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CacheInfo {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheInfo {
            hits: read(&self.hits),
            misses: read(&self.misses),
            stale_hits: read(&self.stale_hits),
            recalculations: read(&self.recalculations),
            cache_errors: read(&self.cache_errors),
            evictions: read(&self.evictions),
        }
    }
}
