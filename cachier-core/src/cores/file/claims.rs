//! Claims across processes: who computes a key.
//!
//! On Linux a claim is a write lock on one byte of the directory's `claims`
//! file, at an offset drawn from the key (an open-file-description lock,
//! `F_OFD_SETLK`, taken through a descriptor of its own). Claiming a key
//! creates no file and removes none, so a miss allocates no inode besides its
//! entry's. Elsewhere a claim is a lock file per key (see `lock`). Either
//! way the kernel drops the lock when its holder's descriptor closes,
//! including when the process is killed, so a dead computation never leaves
//! a claim behind.
//!
//! [`Core::clear_claims`](crate::Core::clear_claims) unlinks the file: later
//! claims go to a new one, and a caller that locked the old file just before
//! sees that the name no longer names its file, and tries again.

use std::io;
use std::sync::Arc;

use super::dir::Dir;
use super::trust::Sharing;
use crate::cores::Claim;
use crate::key::Key;

/// The file's name in a function's (or version's) directory.
pub const FILE_NAME: &str = "claims";

/// Tries to claim `key` in `dir`: `Ok(None)` if another caller holds it.
#[cfg(target_os = "linux")]
pub fn try_claim(dir: &Arc<Dir>, key: &Key, sharing: Sharing) -> io::Result<Option<Claim>> {
    loop {
        let file = dir.open_lock(FILE_NAME, sharing)?;
        if !lock_byte(&file, offset(key))? {
            return Ok(None);
        }
        if dir.names(FILE_NAME, &file)? {
            return Ok(Some(Claim::new(move || drop(file))));
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn try_claim(dir: &Arc<Dir>, key: &Key, sharing: Sharing) -> io::Result<Option<Claim>> {
    super::lock::try_lock(dir, &super::name_of(key, super::LOCK_EXT), sharing)
}

/// The byte of the claims file that stands for `key`: any offset a lock of
/// one byte can start at. Two keys meeting there (one pair in 2^62 where offsets have 64 bits) only
/// take turns.
#[cfg(target_os = "linux")]
fn offset(key: &Key) -> libc::off_t {
    // The second word, not the first that slots keys in maps and generations.
    (key.word(1) as libc::off_t) & (libc::off_t::MAX >> 1)
}

/// Takes a write lock on the byte at `offset` for the open file description
/// of `file`, without waiting: `false` if another one holds it.
#[cfg(target_os = "linux")]
fn lock_byte(file: &std::fs::File, offset: libc::off_t) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain data; all-zero is a valid value (and `l_pid`
    // must be 0 for an open-file-description lock).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = offset;
    lock.l_len = 1;
    // SAFETY: a valid descriptor, and a pointer to an initialized `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(error),
    }
}
