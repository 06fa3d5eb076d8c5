//! Claims as lock files, where there are no byte-range locks of open file
//! descriptions (see `claims`), and lock files older builds left.
//!
//! A claim is an exclusive lock on `<key>.lock`. The kernel drops the lock when
//! its holder's file handle closes, including when the process is killed, so a
//! dead computation can never leave a claim behind.
//!
//! Released claims unlink their file. A caller that locked a file which was
//! unlinked meanwhile (it opened it just before the unlink) sees that the name
//! no longer names its file, and tries again on the new one.

use std::fs::{File, TryLockError};
use std::io;
use std::sync::Arc;

use super::dir::{Dir, identity_of};
use super::trust::Sharing;
use crate::cores::Claim;

/// Tries to take the lock `name` in `dir`: `Ok(None)` if another handle holds it.
pub fn try_lock(dir: &Arc<Dir>, name: &str, sharing: Sharing) -> io::Result<Option<Claim>> {
    loop {
        let file = dir.open_lock(name, sharing)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if dir.names(name, identity_of(&file)?)? {
            let (dir, name) = (Arc::clone(dir), name.to_owned());
            return Ok(Some(Claim::new(move || release(&dir, &name, file))));
        }
    }
}

fn release(dir: &Dir, name: &str, file: File) {
    // Unlink while still holding the lock, so nobody can lock this file and keep it.
    if let Err(e) = dir.remove(name) {
        tracing::warn!(name, error = %e, "cachier: cannot remove a released lock file");
    }
    drop(file);
}
