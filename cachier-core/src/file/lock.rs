//! 'Being calculated' markers as OS file locks.
//!
//! A marker is an exclusive lock on `<key>.lock`. The kernel drops the lock when
//! its holder's file handle closes, including when the process is killed, so a
//! dead computation can never leave a marker behind.
//!
//! Released markers unlink their file. A caller that locked a file which was
//! unlinked meanwhile (it opened it just before the unlink) sees that the path no
//! longer names its file, and tries again on the new one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::core::Claim;

/// Tries to take the lock at `path`: `Ok(None)` if another handle holds it.
pub fn try_lock(path: &Path) -> io::Result<Option<Claim>> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if still_linked(&file, path)? {
            let path = path.to_path_buf();
            return Ok(Some(Claim::new(move || release(&path, file))));
        }
    }
}

fn release(path: &PathBuf, file: File) {
    // Unlink while still holding the lock, so nobody can lock this file and keep it.
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cachier: cannot remove a released lock file");
    }
    drop(file);
}

#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> io::Result<bool> {
    // Windows refuses to delete a file that is open, so the path still names it.
    Ok(path.exists())
}
