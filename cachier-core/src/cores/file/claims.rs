//! Claims across processes: who computes a key.
//!
//! On Linux a claim is a write lock on one byte of the directory's `claims`
//! file, at an offset drawn from the key (an open-file-description lock,
//! `F_OFD_SETLK`). Claiming a key creates no file and removes none, so a miss
//! allocates no inode besides its entry's. A directory handle keeps the file
//! open for all its claims ([`Claims`]): the kernel tells processes apart by
//! their descriptors, and the handle tells its own claims apart by key.
//! Elsewhere a claim is a lock file per key (see `lock`). Either way the
//! kernel drops the lock when its holder's descriptor closes, including when
//! the process is killed, so a dead computation never leaves a claim behind.
//!
//! [`Core::clear_claims`](crate::Core::clear_claims) unlinks the file: later
//! claims go to a new one, and a caller that locked the old file just before
//! sees that the name no longer names its file, and tries again. Where the
//! directory has generation counters (see `generations`), the clear bumps
//! them before it unlinks the file, and a claim looks at the name (a `stat`)
//! only when they moved since the file was last seen there, or that was a
//! second ago or more: most claims are two syscalls, the lock and its
//! release. A claims file replaced by hand (not through cachier) is thus
//! seen within a second, as entry files changed by hand are (see `recent`).

use std::io;
use std::sync::Arc;

#[cfg(target_os = "linux")]
pub use self::byte_locks::{Claims, try_claim};
use super::dir::Dir;
use super::trust::Sharing;
use crate::cores::Claim;
use crate::key::Key;

/// The file's name in a function's (or version's) directory.
pub const FILE_NAME: &str = "claims";

#[cfg(not(target_os = "linux"))]
pub fn try_claim(dir: &Arc<Dir>, key: &Key, sharing: Sharing) -> io::Result<Option<Claim>> {
    super::lock::try_lock(dir, &super::name_of(key, super::LOCK_EXT), sharing)
}

#[cfg(target_os = "linux")]
mod byte_locks {
    use std::collections::HashMap;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::sync::{Mutex, PoisonError};
    use std::time::Instant;

    use super::*;
    use crate::cores::file::dir::{Identity, identity_of};
    use crate::cores::file::generations::Generations;
    use crate::cores::file::recent::RECHECK;

    /// The claims a directory handle holds: its `claims` file, opened once,
    /// and the keys claimed through it.
    #[derive(Default)]
    pub struct Claims {
        state: Arc<Mutex<State>>,
    }

    #[derive(Default)]
    struct State {
        /// The claims file as last opened, with its identity.
        file: Option<(Arc<File>, Identity)>,
        /// The directory's removal count (see `generations`) read just before
        /// the file was last seen at its name, and when: while the count is
        /// the same, no removal through cachier began since, and the file is
        /// still there.
        seen: Option<(u64, Instant)>,
        /// The keys claimed through this handle, each with the number of its claim.
        held: HashMap<Key, u64>,
        claims: u64,
    }

    impl Claims {
        /// Forgets the file and every claim held through it (after the file
        /// was unlinked by [`Core::clear_claims`](crate::Core::clear_claims)):
        /// the next claims go to a new file, whoever holds the old ones.
        pub fn forget_all(&self) {
            *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::default();
        }
    }

    /// Tries to claim `key` in `dir`: `Ok(None)` if another caller holds it.
    ///
    /// Concurrency: the claims of one directory handle are taken one at a
    /// time (a lock around two syscalls), and so are their releases.
    pub fn try_claim(dir: &Arc<Dir>, key: &Key, sharing: Sharing) -> io::Result<Option<Claim>> {
        let shared = &dir.claims().state;
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if state.held.contains_key(key) {
            return Ok(None);
        }
        let offset = offset(key);
        let file = loop {
            let (file, opened) = match &state.file {
                Some(open) => open.clone(),
                None => {
                    let file = Arc::new(dir.open_lock(FILE_NAME, sharing)?);
                    let open = (Arc::clone(&file), identity_of(&*file)?);
                    state.file = Some(open.clone());
                    open
                }
            };
            if !lock_byte(&file, offset, libc::F_WRLCK)? {
                return Ok(None);
            }
            if still_named(dir, &mut state.seen, opened)? {
                break file;
            }
            // Unlinked or replaced since it was opened: claim in the new one.
            lock_byte(&file, offset, libc::F_UNLCK)?;
            (state.file, state.seen) = (None, None);
        };
        state.claims += 1;
        let number = state.claims;
        state.held.insert(*key, number);
        let (shared, key) = (Arc::clone(shared), *key);
        Ok(Some(Claim::new(move || {
            let _ = lock_byte(&file, offset, libc::F_UNLCK);
            let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if state.held.get(&key) == Some(&number) {
                state.held.remove(&key);
            }
        })))
    }

    /// Whether the claims file of identity `opened` is still at its name, now
    /// that a lock on it is held: one load of the directory's counters if no
    /// removal began since it was `seen` there less than [`RECHECK`] ago, a
    /// `stat` otherwise.
    fn still_named(dir: &Dir, seen: &mut Option<(u64, Instant)>, opened: Identity) -> io::Result<bool> {
        // Read before the `stat`, so that a removal after it changes the count.
        let removals = dir.generations().map(Generations::removals);
        let now = Instant::now();
        if let (Some(removals), Some((seen_removals, seen_at))) = (removals, *seen)
            && removals == seen_removals
            && now.duration_since(seen_at) < RECHECK
        {
            return Ok(true);
        }
        let named = dir.names(FILE_NAME, opened)?;
        *seen = removals.filter(|_| named).map(|removals| (removals, now));
        Ok(named)
    }

    /// The byte of the claims file that stands for `key`: any offset a lock
    /// of one byte can start at. Two keys meeting there (one pair in 2^62
    /// where offsets have 64 bits) only take turns.
    fn offset(key: &Key) -> libc::off_t {
        // The second word, not the first that slots keys in maps and generations.
        (key.word(1) as libc::off_t) & (libc::off_t::MAX >> 1)
    }

    /// Takes (`F_WRLCK`) or releases (`F_UNLCK`) a write lock on the byte at
    /// `offset` for the open file description of `file`, without waiting:
    /// `false` if another one holds it.
    fn lock_byte(file: &File, offset: libc::off_t, kind: libc::c_int) -> io::Result<bool> {
        // SAFETY: `flock` is plain data; all-zero is a valid value (and
        // `l_pid` must be 0 for an open-file-description lock).
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = kind as libc::c_short;
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
}
