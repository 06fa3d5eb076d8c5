//! The backend-independent contract suite, run against every built-in core.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachier::{Core, FileCore, MemoryCore};

/// A fresh directory per core, under the target directory's scratch space.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "contract-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

mod memory {
    use super::*;
    cachier_core::core_contract!(|| Box::new(MemoryCore::new()) as Box<dyn Core>);
}

mod file {
    use super::*;
    cachier_core::core_contract!(|| Box::new(FileCore::new(fresh_dir())) as Box<dyn Core>);
}

/// Every entry of the suite is small enough for a segment.
mod file_segments {
    use super::*;
    cachier_core::core_contract!(|| {
        Box::new(FileCore::new(fresh_dir()).version("contract").segments(true)) as Box<dyn Core>
    });
}

/// The engine asks a core for claims unless it is process-local, and gives
/// a process-local core keys of this process only.
mod process_local {
    use std::sync::Arc;
    use std::time::SystemTime;

    use cachier::{CallOptions, Claim, Entry, FunctionCache, Key, Plain, Result};

    use super::*;

    /// A memory core that says it is process-local or not, and counts the
    /// claims asked of it.
    struct Counting {
        local: bool,
        claims: Arc<AtomicUsize>,
        inner: MemoryCore,
    }

    impl Core for Counting {
        fn get(&self, key: &Key) -> Result<Option<Entry>> {
            self.inner.get(key)
        }
        fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
            self.inner.set(key, entry)
        }
        fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
            self.claims.fetch_add(1, Ordering::SeqCst);
            self.inner.try_claim(key)
        }
        fn clear(&self) -> Result<()> {
            self.inner.clear()
        }
        fn clear_claims(&self) -> Result<()> {
            self.inner.clear_claims()
        }
        fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
            self.inner.delete_stale(cutoff)
        }
        fn process_local(&self) -> bool {
            self.local
        }
    }

    #[test]
    fn only_stores_other_processes_see_are_asked_for_claims() {
        for (local, claims) in [(false, 2), (true, 0)] {
            let counted = Arc::new(AtomicUsize::new(0));
            let core = Counting {
                local,
                claims: Arc::clone(&counted),
                inner: MemoryCore::new(),
            };
            let cache = FunctionCache::builder("contract::claimed").core(core).build();
            for x in [1u64, 2, 1, 2] {
                let got = cache.call(&CallOptions::DEFAULT, cache.key(&x), || Plain(x * 10));
                assert_eq!(got.0, x * 10);
            }
            assert_eq!(cache.info().recalculations, 2);
            assert_eq!(counted.load(Ordering::SeqCst), claims, "process_local: {local}");
            let stable = Key::new("contract::claimed", &1u64).unwrap();
            assert_eq!(
                cache.key(&1u64).unwrap() == stable,
                !local,
                "process_local: {local}"
            );
        }
    }
}
