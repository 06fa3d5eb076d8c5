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
//! entries), except for an entry read from a segment: one offered when
//! there is no room is kept one time in [`ADMIT`] (per thread, when no
//! other change is under way), in place of the entries from segments kept
//! longest. So a key read often among more packed entries than fit is soon
//! kept, whatever filled the set first, while keys read evenly cost one
//! change in [`ADMIT`] reads.
//!
//! Lookups take no lock and write nothing other threads read (the map is
//! `papaya`'s), so threads hitting the same entries do not slow each other
//! down; changes take turns under one mutex, which keeps the count of bytes
//! exact.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime};

use rustix::fs::Stat;

use super::generations::Stamp;
use crate::entry::Entry;
use crate::key::{Key, KeyHasher};

/// How long an entry whose stamp is unchanged is served without a `stat`.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Largest value kept.
const MAX_VALUE: usize = 64 * 1024;
/// Most bytes kept at once, per function, counting each entry's bookkeeping.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// What one kept key costs besides its value (map slot, identity, `Arc` header).
const OVERHEAD: usize = 128;
/// An entry from a segment that finds no room is admitted once in this
/// many such offers a thread makes.
const ADMIT: u32 = 64;

/// A key's stamp taken before its file was checked, and when.
type Checked = (Stamp, SystemTime);

pub struct Recent {
    known: papaya::HashMap<Key, Known, BuildHasherDefault<KeyHasher>>,
    /// What the keys known cost, in bytes: changed only under `changes`,
    /// and read without it to refuse an entry from a segment.
    bytes: AtomicUsize,
    /// Held by every change, so that `bytes` stays exact.
    changes: Mutex<Packed>,
}

/// The keys of entries kept from segments, longest kept first. A key may
/// be there twice, or no longer name an entry from a segment: those are
/// passed over when entries are put out, and dropped when the queue
/// outgrows [`Packed::MAX`].
#[derive(Default)]
struct Packed(VecDeque<Key>);

impl Packed {
    /// Twice the most entries the set holds.
    const MAX: usize = 2 * MAX_BYTES / OVERHEAD;

    /// Adds `key`, just kept from a segment in `map`; past [`Packed::MAX`],
    /// first drops the keys that no longer name an entry from a segment,
    /// and the older place of keys there twice.
    fn push(&mut self, key: Key, map: &Map<'_>) {
        if self.0.len() >= Self::MAX {
            let mut seen = HashSet::with_capacity(self.0.len());
            let is_packed = |key: &Key| map.get(key).is_some_and(Known::is_packed);
            // From the newest, so that a key keeps its latest place.
            let newest_first: Vec<Key> = self
                .0
                .drain(..)
                .rev()
                .filter(|key| is_packed(key) && seen.insert(*key))
                .collect();
            self.0.extend(newest_first.into_iter().rev());
        }
        self.0.push_back(key);
    }
}

/// The map, pinned.
type Map<'a> = papaya::HashMapRef<'a, Key, Known, BuildHasherDefault<KeyHasher>, papaya::LocalGuard<'a>>;

impl Default for Recent {
    fn default() -> Self {
        Recent {
            known: papaya::HashMap::with_hasher(BuildHasherDefault::default()),
            bytes: AtomicUsize::new(0),
            changes: Mutex::default(),
        }
    }
}

/// What is known of one key.
enum Known {
    /// Its entry, read from `file` (`None`: from a segment, see
    /// `segments`); `checked` (where the directory has counters) when it
    /// was last checked.
    Entry {
        file: Option<FileId>,
        checked: Option<Checked>,
        entry: Entry,
    },
    /// It had no entry file, as checked then.
    Absent(Checked),
}

impl Known {
    /// Whether this is an entry read from a segment.
    fn is_packed(&self) -> bool {
        matches!(self, Known::Entry { file: None, .. })
    }

    fn cost(&self) -> usize {
        match self {
            Known::Entry { entry, .. } => entry.value.len() + OVERHEAD,
            Known::Absent(_) => OVERHEAD,
        }
    }
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
    /// Answers with what is known of `key` without a `stat`, if its stamp
    /// is still `stamp` (taken now) and its file was checked within
    /// [`RECHECK`] before `now`: `answer` is lent the entry kept, or given
    /// `None` for a key that had no file. `None` when the file must be
    /// checked. Takes no lock.
    pub fn current<R>(
        &self,
        key: &Key,
        stamp: Stamp,
        now: SystemTime,
        answer: impl FnOnce(Option<&Entry>) -> R,
    ) -> Option<R> {
        let fresh = |&(checked_stamp, checked_at): &Checked| {
            checked_stamp == stamp && now.duration_since(checked_at).is_ok_and(|age| age < RECHECK)
        };
        match self.known.pin().get(key)? {
            Known::Entry {
                checked: Some(checked),
                entry,
                ..
            } if fresh(checked) => Some(answer(Some(entry))),
            Known::Absent(checked) if fresh(checked) => Some(answer(None)),
            _ => None,
        }
    }

    /// Remembers that `key` had no entry file, as `checked`.
    pub fn remember_absent(&self, key: Key, checked: Checked) {
        self.keep(key, Known::Absent(checked));
    }

    /// Whether an entry read from a file is kept for `key` (worth a `stat`
    /// to validate it). Takes no lock.
    pub fn holds(&self, key: &Key) -> bool {
        matches!(
            self.known.pin().get(key),
            Some(Known::Entry { file: Some(_), .. })
        )
    }

    /// The entry kept for `key`, if it came from the file `stat` describes;
    /// `checked`: the key's stamp taken before that `stat`, and the time.
    pub fn get(&self, key: &Key, stat: &Stat, checked: Option<Checked>) -> Option<Entry> {
        self.recheck(key, |file, _| {
            (file == FileId::of(stat)).then_some((file, checked))
        })
    }

    /// Keeps `entry`, read from the file `stat` describes, or from a
    /// segment if `None` (`checked` as for [`get`](Self::get)).
    pub fn remember(&self, key: Key, stat: Option<&Stat>, checked: Option<Checked>, entry: &Entry) {
        if entry.value.len() > MAX_VALUE {
            return;
        }
        let known = Known::Entry {
            file: stat.map(FileId::of),
            checked,
            entry: entry.clone(),
        };
        self.keep(key, known);
    }

    /// After the file of the entry kept for `key` was touched (see
    /// [`Dir::touch`](super::dir::Dir::touch)): keeps its new identity,
    /// `after`, if the kept one is `before` and `after` is the same file.
    pub fn touched(&self, key: &Key, before: &Stat, after: &Stat) {
        let (before, after) = (FileId::of(before), FileId::of(after));
        let same_file = (before.device, before.inode, before.len) == (after.device, after.inode, after.len);
        self.recheck(key, |file, checked| {
            (file == before && same_file).then_some((after, checked))
        });
    }

    pub fn forget(&self, key: &Key) {
        let _changes = self.lock();
        if let Some(old) = self.known.pin().remove(key) {
            self.bytes.fetch_sub(old.cost(), Ordering::Relaxed);
        }
    }

    pub fn forget_all(&self) {
        self.forget_all_locked(&self.known.pin(), &mut self.lock());
    }

    /// Forgets every key, under the lock (`packed`).
    fn forget_all_locked(&self, map: &Map<'_>, packed: &mut Packed) {
        map.clear();
        packed.0.clear();
        self.bytes.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Packed> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `cost` more bytes fit.
    fn has_room(&self, cost: usize) -> bool {
        self.bytes.load(Ordering::Relaxed) + cost <= MAX_BYTES
    }

    /// Replaces what is known of `key` with `known`: everything is
    /// forgotten first if it would then cost more than [`MAX_BYTES`], unless
    /// `known` came from a segment (reading it again costs no syscall: it
    /// never pushes out what a `stat` validates): the entries from segments
    /// kept longest are then forgotten until it fits.
    ///
    /// An entry from a segment that finds no room, with nothing known of
    /// its key to replace, is refused, except one time in [`ADMIT`] when
    /// the lock is free: threads reading many packed entries do not take
    /// turns here.
    fn keep(&self, key: Key, known: Known) {
        let from_segment = known.is_packed();
        let map = self.known.pin();
        let mut packed = if from_segment && !self.has_room(known.cost()) && !map.contains_key(&key) {
            if !Self::admits() {
                return;
            }
            match self.changes.try_lock() {
                Ok(packed) => packed,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            }
        } else {
            self.lock()
        };
        if let Some(old) = map.remove(&key) {
            self.bytes.fetch_sub(old.cost(), Ordering::Relaxed);
        }
        if !self.has_room(known.cost()) {
            if !from_segment {
                self.forget_all_locked(&map, &mut packed);
            } else if !self.put_out(&map, &mut packed, known.cost()) {
                return;
            }
        }
        if from_segment {
            packed.push(key, &map);
        }
        self.bytes.fetch_add(known.cost(), Ordering::Relaxed);
        map.insert(key, known);
    }

    /// Whether this refusal of an entry from a segment is the calling
    /// thread's one in [`ADMIT`] to admit instead.
    fn admits() -> bool {
        thread_local!(static OFFERS: Cell<u32> = const { Cell::new(0) });
        OFFERS.with(|offers| {
            let n = offers.get().wrapping_add(1);
            offers.set(n);
            n % ADMIT == 0
        })
    }

    /// Forgets the entries from segments kept longest until `cost` more
    /// bytes fit; whether they do.
    fn put_out(&self, map: &Map<'_>, packed: &mut Packed, cost: usize) -> bool {
        while !self.has_room(cost) {
            let Some(key) = packed.0.pop_front() else {
                return false;
            };
            if let Ok(Some((_, old))) = map.remove_if(&key, |_, known| known.is_packed()) {
                self.bytes.fetch_sub(old.cost(), Ordering::Relaxed);
            }
        }
        true
    }

    /// Gives the entry read from a file kept for `key` the file identity and check that
    /// `update` makes of its own, if it makes them, and returns the entry.
    /// Its cost stays the same.
    fn recheck(
        &self,
        key: &Key,
        update: impl FnOnce(FileId, Option<Checked>) -> Option<(FileId, Option<Checked>)>,
    ) -> Option<Entry> {
        let _changes = self.lock();
        let map = self.known.pin();
        let Some(Known::Entry {
            file: Some(file),
            checked,
            entry,
        }) = map.get(key)
        else {
            return None;
        };
        let (file, checked) = update(*file, *checked)?;
        let entry = entry.clone();
        map.insert(
            *key,
            Known::Entry {
                file: Some(file),
                checked,
                entry: entry.clone(),
            },
        );
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads keep, replace and forget entries past the bound: the count
    /// of bytes is then exactly what the map holds, and within the bound.
    #[test]
    fn the_bytes_kept_are_counted_exactly_and_stay_bounded() {
        let recent = Recent::default();
        let stat = rustix::fs::stat(".").unwrap();
        std::thread::scope(|threads| {
            for thread in 0..4u8 {
                let recent = &recent;
                threads.spawn(move || {
                    for i in 0..20_000u32 {
                        let key = Key::new("recent", &(thread, i % 5_000)).unwrap();
                        recent.remember(
                            key,
                            Some(&stat),
                            None,
                            &Entry::new(SystemTime::now(), vec![0; 1_000]),
                        );
                        if i % 3 == 0 {
                            recent.forget(&key);
                        }
                    }
                });
            }
        });
        let held: usize = recent.known.pin().values().map(Known::cost).sum();
        assert!(held > 0);
        assert_eq!(recent.bytes.load(Ordering::Relaxed), held);
        assert!(held <= MAX_BYTES, "{held} bytes kept");
    }

    /// Offers `key`'s entry, read from a segment, and tells whether it is
    /// then kept.
    fn offer_packed(recent: &Recent, key: Key) -> bool {
        let (stamp, now) = (Stamp { directory: 0, key: 0 }, SystemTime::now());
        let entry = Entry::new(now, vec![0; 1_000]);
        recent.remember(key, None, Some((stamp, now)), &entry);
        recent.current(&key, stamp, now, |_| ()).is_some()
    }

    /// Once the set is full of entries from segments, a key offered again
    /// and again is kept within [`ADMIT`] offers, in place of the entries
    /// kept longest, and the bytes stay exact and bounded; most keys offered
    /// once are not kept.
    #[test]
    fn a_packed_entry_read_often_is_kept_once_the_set_is_full() {
        let recent = Recent::default();
        let key = |n: u32| Key::new("recent::packed", &n).unwrap();
        let fits = MAX_BYTES / (1_000 + OVERHEAD);
        for n in 0..fits as u32 {
            assert!(offer_packed(&recent, key(n)), "room for key {n}");
        }
        let refused = (0..1_000u32)
            .filter(|n| !offer_packed(&recent, key(1_000_000 + n)))
            .count();
        assert!(refused > 900, "{refused} of 1,000 keys offered once refused");
        let hot = key(2_000_000);
        assert!((0..ADMIT).any(|_| offer_packed(&recent, hot)), "never kept");
        let oldest = key(0);
        assert!(
            recent
                .current(&oldest, Stamp { directory: 0, key: 0 }, SystemTime::now(), |_| ())
                .is_none()
        );
        let held: usize = recent.known.pin().values().map(Known::cost).sum();
        assert_eq!(recent.bytes.load(Ordering::Relaxed), held);
        assert!(held <= MAX_BYTES, "{held} bytes kept");
    }

    /// A key kept from segments again and again leaves the queue of packed
    /// keys bounded.
    #[test]
    fn the_queue_of_packed_keys_stays_bounded() {
        let recent = Recent::default();
        let key = Key::new("recent::again", &0u8).unwrap();
        for _ in 0..2 * Packed::MAX {
            offer_packed(&recent, key);
        }
        assert!(recent.lock().0.len() <= Packed::MAX);
    }
}
