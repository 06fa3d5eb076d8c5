//! Entries this process read recently, each with the identity of the file it
//! came from, so that a hit reads no file, and usually makes no syscall.
//!
//! Every store writes a new file and renames it over the entry's path, so the
//! path then names a file of another identity (device, inode, size, modification
//! and change times); a clear removes it. Either way the next `stat` of the path
//! no longer matches, and the file is read again. (Only a clear and a store of
//! the same key by other processes, reusing the freed inode with the same size
//! within one tick of the filesystem clock, could go unseen: the entry then
//! served is still one computed for the same arguments.)
//!
//! Where the directory has generation counters (see `generations`), an entry
//! also keeps the [`Stamp`] of its key taken before its file was checked: while
//! the stamp is the same and the check is less than [`RECHECK`] old, it is
//! served with no `stat` at all. The recheck bounds how long a change made
//! without cachier (a file deleted by hand, the directory removed) goes unseen.
//!
//! With counters, a key found to have no entry file is remembered as absent
//! in the same way (its stamp, and when), so that looking it up again, as a
//! computing caller does once it holds the key's claim, makes no syscall
//! either.
//!
//! Memory is bounded: entries over [`MAX_VALUE`] bytes are not kept, and the
//! whole set is dropped when it would exceed [`MAX_BYTES`] (about 130,000 small
//! entries).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustix::fs::Stat;

use super::generations::Stamp;
use crate::entry::Entry;
use crate::key::{Key, KeyMap};

/// How long an entry whose stamp is unchanged is served without a `stat`.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Largest value kept.
const MAX_VALUE: usize = 64 * 1024;
/// Most bytes kept at once, per function, counting each entry's bookkeeping.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// What one kept entry costs besides its value (map slot, identity, `Arc` header).
const OVERHEAD: usize = 128;

#[derive(Default)]
pub struct Recent {
    entries: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_key: KeyMap<Remembered>,
    /// Keys that had no entry file: the key's stamp before that was seen, and when.
    absent: KeyMap<(Stamp, SystemTime)>,
    bytes: usize,
}

struct Remembered {
    file: FileId,
    /// The key's stamp before `file` was last checked, and when that was.
    checked: Option<(Stamp, SystemTime)>,
    entry: Entry,
}

/// What identifies one file's content, as far as `stat` can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileId {
    // The widths of `stat`'s fields differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    fn of(stat: &Stat) -> FileId {
        FileId {
            device: stat.st_dev as u64,
            inode: stat.st_ino as u64,
            len: stat.st_size as u64,
            modified: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            changed: (stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        }
    }
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is known of `key` without a `stat`, if its stamp is still `stamp`
    /// (taken now) and its file was checked within [`RECHECK`] before `now`:
    /// `Some(Some(entry))` for an entry kept, `Some(None)` for a key that had
    /// no file; `None` when the file must be checked.
    pub fn current(&self, key: &Key, stamp: Stamp, now: SystemTime) -> Option<Option<Entry>> {
        let fresh = |(checked_stamp, checked_at): (Stamp, SystemTime)| {
            checked_stamp == stamp && now.duration_since(checked_at).is_ok_and(|age| age < RECHECK)
        };
        let kept = self.lock();
        if let Some(remembered) = kept.by_key.get(key) {
            return remembered
                .checked
                .filter(|&checked| fresh(checked))
                .map(|_| Some(remembered.entry.clone()));
        }
        kept.absent
            .get(key)
            .filter(|&&checked| fresh(checked))
            .map(|_| None)
    }

    /// Remembers that `key` had no entry file; `checked`: its stamp taken
    /// before that was seen, and the time.
    pub fn remember_absent(&self, key: Key, checked: (Stamp, SystemTime)) {
        self.lock().keep(key, OVERHEAD, |kept| {
            kept.absent.insert(key, checked);
        });
    }

    /// Whether an entry is kept for `key` (worth a `stat` to validate it).
    pub fn holds(&self, key: &Key) -> bool {
        self.lock().by_key.contains_key(key)
    }

    /// The entry kept for `key`, if it came from the file `stat` describes;
    /// `checked`: the key's stamp taken before that `stat`, and the time.
    pub fn get(&self, key: &Key, stat: &Stat, checked: Option<(Stamp, SystemTime)>) -> Option<Entry> {
        let file = FileId::of(stat);
        let mut kept = self.lock();
        let remembered = kept.by_key.get_mut(key)?;
        if remembered.file != file {
            return None;
        }
        remembered.checked = checked;
        Some(remembered.entry.clone())
    }

    /// Keeps `entry`, read from the file `stat` describes (`checked` as for
    /// [`get`](Self::get)).
    pub fn remember(&self, key: Key, stat: &Stat, checked: Option<(Stamp, SystemTime)>, entry: &Entry) {
        if entry.value.len() > MAX_VALUE {
            return;
        }
        let remembered = Remembered {
            file: FileId::of(stat),
            checked,
            entry: entry.clone(),
        };
        self.lock().keep(key, cost(entry), |kept| {
            kept.by_key.insert(key, remembered);
        });
    }

    /// After the file of the entry kept for `key` was touched (see
    /// [`Dir::touch`](super::dir::Dir::touch)): keeps its new identity,
    /// `after`, if the kept one is `before` and `after` is the same file.
    pub fn touched(&self, key: &Key, before: &Stat, after: &Stat) {
        let (before, after) = (FileId::of(before), FileId::of(after));
        let same_file = (before.device, before.inode, before.len) == (after.device, after.inode, after.len);
        if let Some(remembered) = self.lock().by_key.get_mut(key)
            && remembered.file == before
            && same_file
        {
            remembered.file = after;
        }
    }

    pub fn forget(&self, key: &Key) {
        self.lock().forget(key);
    }

    pub fn forget_all(&self) {
        *self.lock() = Kept::default();
    }
}

impl Kept {
    /// Forgets what is kept of `key`, then keeps what `insert` puts in its
    /// place, which costs `bytes`: everything is dropped first if it would
    /// then exceed [`MAX_BYTES`].
    fn keep(&mut self, key: Key, bytes: usize, insert: impl FnOnce(&mut Kept)) {
        self.forget(&key);
        if self.bytes + bytes > MAX_BYTES {
            *self = Kept::default();
        }
        self.bytes += bytes;
        insert(self);
    }

    fn forget(&mut self, key: &Key) {
        if let Some(old) = self.by_key.remove(key) {
            self.bytes -= cost(&old.entry);
        }
        if self.absent.remove(key).is_some() {
            self.bytes -= OVERHEAD;
        }
    }
}

fn cost(entry: &Entry) -> usize {
    entry.value.len() + OVERHEAD
}
