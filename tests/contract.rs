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
