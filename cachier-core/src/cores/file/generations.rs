//! Generation counters shared by every process through a memory-mapped file,
//! so that a hit on an entry this process read before costs no syscall.
//!
//! `<dir>/generations` is one 4 KiB page of 512 little-endian `u64`
//! counters. Slot 0 counts the operations on the whole directory (eviction,
//! cleanup, `cachier clear` and `gc`), and its top bit, once set, says the
//! directory was retired by a clear (renamed aside to be deleted: its path
//! now names another directory, or none); slot `1 + k % 511` counts the
//! stores of the keys `k` (a key's first eight bytes) maps to. A writer bumps
//! the slot *after* its file is in place (renamed, or removed); a reader
//! takes the [`Stamp`] of a key (its two slots) *before* it reads or `stat`s
//! the key's file, and keeps it with what it read. While the key's stamp is
//! unchanged no process can have stored or removed its file since, so the
//! entry kept in memory is the one on disk (see `recent`).
//!
//! Counters are mapped only where a shared mapping is coherent between
//! processes and nobody else may write the file: in a private directory
//! (see [`Sharing::Private`]) on a local filesystem (ext4, XFS, Btrfs,
//! tmpfs, F2FS, ZFS, bcachefs, overlayfs). Elsewhere (network filesystems,
//! group-shared directories, other systems than Linux) there are no
//! counters, and every hit `stat`s its entry's file as before. A file
//! that is not a regular file of this user's, or cannot be mapped, means no
//! counters either: never an error.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::dir::Dir;
use super::trust::Sharing;
use crate::key::Key;

/// The file's name in a function's (or version's) directory.
pub const FILE_NAME: &str = "generations";
/// The counters mapped: one page.
const SLOTS: usize = 512;
const LEN: usize = SLOTS * size_of::<u64>();
/// Slot 0's bit for a retired directory.
const RETIRED: u64 = 1 << 63;

/// The counters of one directory, mapped into this process.
pub struct Generations {
    slots: NonNull<AtomicU64>,
}

// The mapping is shared memory accessed only through atomics.
unsafe impl Send for Generations {}
unsafe impl Sync for Generations {}

/// What a key's counters were at one moment: equal stamps taken at two
/// moments mean no store of that key and no removal in between.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    /// Slot 0: the directory's removals.
    pub directory: u64,
    /// The key's slot.
    pub key: u64,
}

impl Generations {
    /// Maps the counters of `dir` (creating the file), if they can be used
    /// there: see the module's documentation.
    pub fn open(dir: &Dir, sharing: Sharing) -> Option<Generations> {
        if sharing != Sharing::Private || !local_filesystem(dir) {
            return None;
        }
        let file = dir.open_generations(FILE_NAME, LEN as u64).ok()?;
        // SAFETY: a fresh shared mapping of a regular file of at least `LEN`
        // bytes, owned by this user, in a directory nobody else may write.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                LEN,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }
        .ok()?;
        NonNull::new(ptr.cast()).map(|slots| Generations { slots })
    }

    fn slot(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < SLOTS);
        // SAFETY: `index` is within the mapping, which lives as long as `self`
        // and is aligned to a page.
        unsafe { &*self.slots.as_ptr().add(index) }
    }

    /// The slot counting the stores of `key`.
    pub fn key_slot(key: &Key) -> usize {
        1 + (key.word(0) % (SLOTS as u64 - 1)) as usize
    }

    /// The stamp of `key` now: take it before reading the key's file.
    pub fn stamp(&self, key: &Key) -> Stamp {
        Stamp {
            directory: self.slot(0).load(Ordering::Acquire),
            key: self.slot(Self::key_slot(key)).load(Ordering::Acquire),
        }
    }

    /// Every slot now, in order.
    pub fn slots(&self) -> Vec<u64> {
        (0..SLOTS)
            .map(|index| self.slot(index).load(Ordering::Acquire))
            .collect()
    }

    /// After the file of `key` was replaced.
    pub fn stored(&self, key: &Key) {
        self.slot(Self::key_slot(key)).fetch_add(1, Ordering::Release);
    }

    /// The count of removals from the whole directory (slot 0): equal
    /// counts read at two moments mean no removal began in between, if
    /// removers bump it before they remove (as a clear of claims does).
    pub fn removals(&self) -> u64 {
        self.slot(0).load(Ordering::Acquire)
    }

    /// After files were removed from the directory (and, for the claims
    /// file, before: see `claims`).
    pub fn removed(&self) {
        self.slot(0).fetch_add(1, Ordering::Release);
    }

    /// After the directory was renamed aside by a clear: every process
    /// holding it must open its path again. Changes every stamp.
    pub fn retire(&self) {
        self.slot(0).fetch_or(RETIRED, Ordering::Release);
    }

    /// Whether the directory was retired (see [`retire`](Self::retire)).
    pub fn retired(&self) -> bool {
        self.slot(0).load(Ordering::Acquire) & RETIRED != 0
    }
}

impl Drop for Generations {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.slots.as_ptr().cast(), LEN) };
    }
}

/// Whether `dir` is on a filesystem whose shared mappings every process on
/// this machine sees alike, with no server between them.
#[cfg(target_os = "linux")]
fn local_filesystem(dir: &Dir) -> bool {
    const LOCAL: [u64; 8] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // F2FS
        0x2FC1_2FC1, // ZFS
        0xCA45_1A4E, // bcachefs
        0x794C_7630, // overlayfs
    ];
    // `f_type`'s width differs between platforms.
    #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
    dir.statfs()
        .is_ok_and(|fs| LOCAL.contains(&(fs.f_type as u64 & 0xFFFF_FFFF)))
}

#[cfg(not(target_os = "linux"))]
fn local_filesystem(_: &Dir) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Processes of every build read one another's marks: the retired bit is
    /// pinned like the counters (tests/golden.rs pins the slots).
    #[test]
    fn a_retired_directory_has_the_top_bit_of_slot_0_set() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        let dir = Dir::open(&path, Sharing::Private, true)
            .unwrap()
            .unwrap()
            .with_generations(Sharing::Private);
        let generations = dir.generations().expect("counters where tests run");
        generations.removed();
        assert!(!dir.is_retired());
        generations.retire();
        assert!(dir.is_retired() && dir.is_removed());
        let bytes = std::fs::read(path.join(FILE_NAME)).unwrap();
        assert_eq!(bytes[..8], ((1u64 << 63) | 1).to_le_bytes());
        assert!(bytes[8..].iter().all(|&b| b == 0));
    }
}
