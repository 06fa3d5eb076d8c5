//! Small entries packed in append-only segments, one per writing process,
//! instead of a file each (see [`FileCore::segments`](super::FileCore::segments)
//! and `docs/design/segments.md`).
//!
//! A segment, `<pid>-<n>.segment` in a version's directory, is a sequence of
//! records (see [`format`]): entries, exactly as an entry file holds them,
//! and marks saying that a key's entry was removed or used. Only the process
//! holding a segment's `flock` appends to it, so records never interleave,
//! and a process killed mid-append leaves a torn record at the end of its
//! own segment only. A process takes a segment no process holds (and cuts
//! off a torn end) before it makes a new one, so a directory has about as
//! many segments as processes ever wrote to it at once. A writer starts a new
//! segment past [`ROLL`] bytes, and after a failed `write`, so that a torn
//! record is always its segment's last.
//!
//! Each process indexes the records of every segment: for each key, the
//! newest record by its time (entries: when computed; marks: when made),
//! later in a segment winning a tie. An entry record is the key's entry;
//! a removal mark hides older entry records (an entry *file* is hidden by
//! being removed instead). The index is brought up to date only when the
//! directory's generation counters (see `generations`) say it may be out of
//! date: the segments are listed again after a removal count changed (a
//! writer making a new segment bumps it too), and their tails are read
//! again when the key's stamp changed, so a lookup of a key nobody stored
//! since makes no syscall (its record is read from a copy kept in memory,
//! or with one `pread`). A writer bumps the
//! key's stamp after its append returns, so no reader is sent to a record
//! still being written; a reader tailing a segment for another key's sake
//! may still meet one, and stops before a record that is short or fails
//! its checksum at the end of what it read (it is read again next time).
//!
//! Segments are untrusted input like entry files: read with `pread`, never
//! mapped (a segment truncated under a mapping would raise `SIGBUS`), every
//! record checked, a declared value length over [`MAX_VALUE`] refused unread,
//! and at most [`MAX_SEGMENTS`] segments and [`MAX_KEYS`] keys indexed (past
//! them, entries get files of their own). A record that fails its checksum
//! is a corrupt entry for its key; bytes where no record begins end what can
//! be read of that segment (its keys are then misses, computed again into
//! another).
//!
//! The bytes of replaced and removed entries stay until a compaction (see
//! [`Segments::compact`]) rewrites the newest records into a new segment.
//!
//! Lookups of keys whose records are read already share the index under
//! a read lock; every other method holds its write lock throughout.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::hash::BuildHasherDefault;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dir::{Dir, identity_of};
use super::format::{self, Mark, Parsed, Record};
use super::generations::{Generations, Stamp};
use crate::entry::Entry;
use crate::key::{Key, KeyHasher};

/// How a segment's name ends: `<pid>-<n>.segment`.
pub const EXT: &str = "segment";
/// Entries of values up to this many bytes go in segments (a record of at
/// most 4 KiB); larger ones keep a file of their own.
pub const MAX_VALUE: usize = 4096 - format::file_len(0);
/// A writer starts a new segment once its own is this long, and compacts
/// the segments if they are due (see [`Segments::compact`]).
const ROLL: u64 = if cfg!(test) { 64 << 10 } else { 64 << 20 };
/// Most segments one process reads; others are not read (their keys miss).
const MAX_SEGMENTS: usize = 256;
/// Most keys one process indexes: as many as the index's table holds at
/// 2^22 slots (it doubles once seven eighths are taken), 65 bytes a slot,
/// 270 MB; records of further keys are not indexed, and their entries get
/// files of their own, as they would without segments.
pub const MAX_KEYS: usize = if cfg!(test) { 64 } else { (1 << 22) / 8 * 7 };
/// Most bytes of segments one process keeps copies of, per directory (a
/// million records of 8-byte values take 58 MB).
const MAX_COPIED: u64 = if cfg!(test) { 4096 } else { 64 << 20 };
/// Segments hold at least this many bytes before they are compacted when
/// [`Compaction::Due`].
const COMPACT_AFTER: u64 = if cfg!(test) { 16 << 10 } else { 1 << 20 };
/// How many new segments a process makes, each taken by another before it
/// could lock it, before it gives up storing (see [`State::create`]).
const CREATE_ATTEMPTS: usize = 16;
/// Bytes read from a segment at a time.
const CHUNK: usize = 64 << 10;

/// When [`Segments::compact`] rewrites the segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compaction {
    /// Once the records that are no key's newest are over half the bytes
    /// and the segments hold [`COMPACT_AFTER`] bytes or more: what the
    /// processes using a cache do, so that rewriting costs less than the
    /// bytes it gives back.
    Due,
    /// As soon as one record is no key's newest: what `cachier gc` asks for.
    Now,
}

/// The segments of one directory, as this process knows them.
#[derive(Default)]
pub struct Segments {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// By number; `None` once its file is gone.
    segments: Vec<Option<Segment>>,
    /// The number of the segment this process appends to, if any.
    writer: Option<usize>,
    keys: HashMap<Key, Slot, BuildHasherDefault<KeyHasher>>,
    /// The directory's removal count when the segments were last listed.
    listed_at: Option<u64>,
    /// The key slots of the generation counters when the tails were last read.
    read_at: Vec<u64>,
    /// Whether a record was left out of the index, [`MAX_KEYS`] being
    /// reached (see [`State::full`]).
    full: bool,
}

struct Segment {
    name: String,
    file: File,
    /// Where its records read so far end.
    read_to: u64,
    /// Its records from `copied_from` on (from its first entry record,
    /// bytes of marks alone before it aside), that checked out when read,
    /// kept while the segments' copies fit in [`MAX_COPIED`]: a lookup of
    /// a record among them reads no file.
    copy: Vec<u8>,
    copied_from: u64,
}

impl Segment {
    fn new(name: String, file: File) -> Segment {
        Segment {
            name,
            file,
            read_to: 0,
            copy: Vec::new(),
            copied_from: 0,
        }
    }

    /// Which of the records from `from` to `to`, the first entry among
    /// them at `first_entry`, join the copy: those that continue it (or
    /// start it at that entry), as many bytes as `room` allows. A segment
    /// larger than the room is copied as far as it fits.
    fn to_copy(&self, from: u64, to: u64, first_entry: Option<u64>, room: u64) -> Range<u64> {
        let start = match (self.copy.is_empty(), first_entry) {
            (true, Some(first_entry)) => first_entry,
            (false, _) if self.copied_from + self.copy.len() as u64 == from => from,
            _ => return from..from,
        };
        start..to.min(start.saturating_add(room))
    }

    /// Copies the records from `from` to `to` into memory, as far as
    /// [`to_copy`](Self::to_copy) says: read from the file, or taken from
    /// `records` (the bytes from `from` on, just appended). A read that
    /// fails or comes short leaves the copy as it was (a lookup then reads
    /// the file).
    fn copy(&mut self, (from, to): (u64, u64), first_entry: Option<u64>, room: u64, records: Option<&[u8]>) {
        let range = self.to_copy(from, to, first_entry, room);
        if range.is_empty() {
            return;
        }
        let (start, len) = (self.copy.len(), (range.end - range.start) as usize);
        self.copy.resize(start + len, 0);
        let copied = match records {
            Some(records) => {
                let skipped = (range.start - from) as usize;
                self.copy[start..].copy_from_slice(&records[skipped..skipped + len]);
                true
            }
            None => {
                read_at_most(&self.file, &mut self.copy[start..], range.start).is_ok_and(|read| read == len)
            }
        };
        match copied {
            true if start == 0 => self.copied_from = range.start,
            true => {}
            false => self.copy.truncate(start),
        }
    }

    /// The `len` bytes at `offset`: from the copy if it holds them.
    fn read(&self, offset: u64, len: usize) -> io::Result<Cow<'_, [u8]>> {
        let start = offset
            .checked_sub(self.copied_from)
            .map_or(usize::MAX, |start| usize::try_from(start).unwrap_or(usize::MAX));
        if let Some(bytes) = self.copy.get(start..start.saturating_add(len)) {
            return Ok(Cow::Borrowed(bytes));
        }
        let mut bytes = vec![0; len];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => corrupt("a segment cut short under its record".into()),
                _ => e,
            })?;
        Ok(Cow::Owned(bytes))
    }
}

/// The newest record of a key.
#[derive(Clone, Copy)]
struct Slot {
    segment: u32,
    len: u32,
    offset: u64,
    /// When it was computed (an entry) or made (a mark), since the epoch.
    at: u64,
    /// For an entry: when last used (at least `at`).
    used: u64,
    kind: SlotKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    Entry,
    Removed,
    Corrupt,
}

/// What the segments say of a key.
pub enum Lookup {
    /// Its entry.
    Entry(Entry),
    /// Its newest record is a removal: an entry file may hold its entry
    /// (a larger one, stored since).
    File,
    /// No record: where every store packs or marks, it has no entry.
    Absent,
}

/// Where the next small entry of a key goes, as [`Segments::place`] says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Place {
    /// In this process's segment.
    Segment,
    /// In this process's segment, once the key's entry file is removed: its
    /// newest record is a removal, so an entry file may hold its entry.
    SegmentOverFile,
    /// In a file of its own: the index is full (see [`MAX_KEYS`]) and holds
    /// no record of the key.
    File,
}

/// An entry kept in a segment, as [`Segments::entries`] lists it.
pub struct Packed {
    pub key: Key,
    /// When it was computed.
    pub computed_at: SystemTime,
    /// When it was last used.
    pub used: SystemTime,
    /// Its record's size in bytes.
    pub len: u64,
}

impl Segments {
    /// What the segments hold of `key`, whose stamp was `stamp` at `now`,
    /// before this call. Marks its entry used if it was not within
    /// `resolution`. A record that fails its checks is an
    /// [`io::ErrorKind::InvalidData`] error.
    ///
    /// Threads looking up keys whose records are read already, with no use
    /// to mark, share the index under its read lock; the others take turns.
    pub fn get(
        &self,
        dir: &Dir,
        key: &Key,
        (stamp, now): (Stamp, SystemTime),
        resolution: Duration,
    ) -> io::Result<Lookup> {
        let due = |used| time_of(used) + resolution <= now;
        {
            let state = self.read();
            if state.is_current(dir, key, stamp) {
                let (found, mark) = state.find(key, due)?;
                if !mark {
                    return Ok(found);
                }
            }
        }
        let mut state = self.write();
        state.refresh(dir, Some((key, stamp)));
        let (found, mark) = state.find(key, due)?;
        if mark {
            // A use not recorded is an eviction order slightly off, no more.
            let _ = state.append(dir, &format::encode_mark(Mark::Used, key, now));
        }
        Ok(found)
    }

    /// Where the next small entry of `key` goes.
    pub fn place(&self, dir: &Dir, key: &Key) -> Place {
        let Some(stamp) = dir.generations().map(|generations| generations.stamp(key)) else {
            return Place::File;
        };
        let mut state = self.write();
        state.refresh(dir, Some((key, stamp)));
        match state.keys.get(key) {
            Some(slot) if slot.kind == SlotKind::Removed => Place::SegmentOverFile,
            None if state.full() => Place::File,
            _ => Place::Segment,
        }
    }

    /// Appends `record` (an entry or a mark, see [`format`]) to this
    /// process's segment, taking or making one first. The caller then bumps
    /// the key's stamp.
    pub fn append(&self, dir: &Dir, record: &[u8]) -> io::Result<()> {
        self.write().append(dir, record)
    }

    /// Every entry the segments hold, read up to date first.
    pub fn entries(&self, dir: &Dir) -> Vec<Packed> {
        let mut state = self.write();
        state.refresh(dir, None);
        let entries = state.keys.iter().filter(|(_, slot)| slot.kind == SlotKind::Entry);
        entries
            .map(|(key, slot)| Packed {
                key: *key,
                computed_at: time_of(slot.at),
                used: time_of(slot.used),
                len: u64::from(slot.len),
            })
            .collect()
    }

    /// Rewrites the newest records of this process's segment and of those no
    /// process holds into a new one, which this process then appends to, and
    /// removes them, when the records there that are no key's newest
    /// (replaced, removed, use marks) are as many as `when` says. Removal
    /// marks go too if every segment is rewritten (no other process holds
    /// one).
    ///
    /// Readers of the old segments go on reading them through the
    /// descriptors they hold until they list the segments again; every
    /// record keeps its time, so a record stored meanwhile elsewhere stays
    /// the newest of its key.
    pub fn compact(&self, dir: &Dir, when: Compaction) -> io::Result<()> {
        self.write().compact(dir, when)
    }

    /// Marks the entries of `keys` removed, in one append; the caller then
    /// bumps the directory's removal count.
    pub fn remove(&self, dir: &Dir, keys: &[Key]) -> io::Result<()> {
        let now = SystemTime::now();
        let mut marks = Vec::with_capacity(keys.len() * format::MARK_LEN);
        for key in keys {
            marks.extend_from_slice(&format::encode_mark(Mark::Removed, key, now));
        }
        if marks.is_empty() {
            return Ok(());
        }
        self.write().append(dir, &marks)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bytes the segments' copies hold.
fn copied(segments: &[Option<Segment>]) -> u64 {
    segments
        .iter()
        .flatten()
        .map(|segment| segment.copy.len() as u64)
        .sum()
}

impl State {
    /// How many more bytes the copies of segments may take.
    fn copy_room(&self) -> u64 {
        MAX_COPIED.saturating_sub(copied(&self.segments))
    }

    /// Whether the index holds no more keys: a key without a record may then
    /// have an entry file.
    fn full(&self) -> bool {
        self.full || self.keys.len() >= MAX_KEYS
    }

    /// Whether the index holds what the segments did when `key`'s stamp
    /// was `stamp`: [`refresh`](Self::refresh) would read nothing.
    fn is_current(&self, dir: &Dir, key: &Key, stamp: Stamp) -> bool {
        dir.generations().is_none_or(|generations| {
            self.listed_at == Some(generations.removals()) && self.has_read(key, stamp)
        })
    }

    /// Whether the segments were listed and their tails read since `key`'s
    /// stamp was `stamp`.
    fn has_read(&self, key: &Key, stamp: Stamp) -> bool {
        self.listed_at == Some(stamp.directory)
            && self.read_at.get(Generations::key_slot(key)) == Some(&stamp.key)
    }

    /// What the index says of `key`, read from its record, and whether
    /// `due` says its entry's last use (see [`Slot::used`]) is due a mark.
    fn find(&self, key: &Key, due: impl FnOnce(u64) -> bool) -> io::Result<(Lookup, bool)> {
        let Some(slot) = self.keys.get(key).copied() else {
            let lookup = if self.full() { Lookup::File } else { Lookup::Absent };
            return Ok((lookup, false));
        };
        match slot.kind {
            SlotKind::Removed => return Ok((Lookup::File, false)),
            SlotKind::Corrupt => return Err(corrupt("a segment record fails its checksum".into())),
            SlotKind::Entry => {}
        }
        let Some(segment) = self.segments.get(slot.segment as usize).and_then(Option::as_ref) else {
            return Ok((Lookup::Absent, false));
        };
        let entry = format::decode(key, &segment.read(slot.offset, slot.len as usize)?).map_err(corrupt)?;
        Ok((Lookup::Entry(entry), due(slot.used)))
    }

    /// Brings the index up to date for `key` (its stamp taken before), or
    /// for every key.
    fn refresh(&mut self, dir: &Dir, key: Option<(&Key, Stamp)>) {
        let Some(generations) = dir.generations() else {
            return;
        };
        let removals = generations.removals();
        if self.listed_at != Some(removals) {
            self.list(dir);
            self.listed_at = Some(removals);
            self.read_at.clear();
        }
        if !key.is_some_and(|(key, stamp)| self.has_read(key, stamp)) {
            // Taken before the tails are read: stores bumped after are read next time.
            self.read_at = generations.slots();
            self.read_tails();
        }
    }

    /// Opens the segments listed in `dir` that are not open yet, and
    /// forgets those whose files are gone, with their keys. A segment whose
    /// name now names another file (removed, and its name taken again, as
    /// a process reusing a dead one's pid does) is gone, and the new file
    /// is read from its start.
    fn list(&mut self, dir: &Dir) {
        let names = match dir.list() {
            Ok(names) => names,
            Err(error) => {
                tracing::warn!(%error, "cachier: cannot list a cache directory's segments");
                return;
            }
        };
        let names: Vec<String> = names.into_iter().filter(|name| is_segment(name)).collect();
        let named = |segment: &Segment| {
            names.contains(&segment.name) && names_file(dir, &segment.name, &segment.file)
        };
        let mut gone = Vec::new();
        for (number, held) in self.segments.iter_mut().enumerate() {
            if held.as_ref().is_some_and(|segment| !named(segment)) {
                *held = None;
                gone.push(number);
            }
        }
        if !gone.is_empty() {
            self.keys
                .retain(|_, slot| !gone.contains(&(slot.segment as usize)));
            if self.writer.is_some_and(|writer| gone.contains(&writer)) {
                self.writer = None;
            }
        }
        for name in names {
            let open = self
                .segments
                .iter()
                .flatten()
                .filter(|segment| segment.name == name);
            if open.count() > 0 || self.segments.iter().flatten().count() >= MAX_SEGMENTS {
                continue;
            }
            match dir.open_regular(&name) {
                Ok(Some((file, _))) => self.segments.push(Some(Segment::new(name, file))),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, segment = name, "cachier: a segment not read"),
            }
        }
    }

    /// Indexes the records appended to every segment since last read.
    fn read_tails(&mut self) {
        for number in 0..self.segments.len() {
            if let Err(error) = self.read_on(number) {
                tracing::warn!(%error, "cachier: a segment not read");
            }
        }
    }

    /// Indexes the records of segment `number` past those read; returns
    /// where they end.
    fn read_on(&mut self, number: usize) -> io::Result<u64> {
        let room = self.copy_room();
        let Some(mut segment) = self.segments[number].take() else {
            return Ok(0);
        };
        let from = segment.read_to;
        let mut first_entry = None;
        let read = scan(&segment.file, from, |offset, parsed| {
            if let Parsed::Whole(Record::Entry { .. }) = parsed {
                first_entry.get_or_insert(offset);
            }
            self.index(number, offset, parsed);
        });
        if let Ok(end) = read {
            segment.read_to = end;
            segment.copy((from, end), first_entry, room, None);
        }
        self.segments[number] = Some(segment);
        read
    }

    /// Takes the record `parsed`, at `offset` in segment `segment`, into the index.
    fn index(&mut self, segment: usize, offset: u64, parsed: Parsed) {
        // Numbers of segments and record sizes fit: at most 2^32 segments
        // are ever opened, and records are at most 4 KiB.
        let slot = |len: usize, at, kind| Slot {
            segment: segment as u32,
            len: len as u32,
            offset,
            at,
            used: at,
            kind,
        };
        let (key, slot) = match parsed {
            Parsed::Whole(Record::Entry { key, at, len }) => (key, slot(len, at, SlotKind::Entry)),
            Parsed::Whole(Record::Mark {
                mark: Mark::Removed,
                key,
                at,
            }) => (key, slot(format::MARK_LEN, at, SlotKind::Removed)),
            Parsed::Whole(Record::Mark {
                mark: Mark::Used,
                key,
                at,
            }) => {
                if let Some(slot) = self
                    .keys
                    .get_mut(&key)
                    .filter(|slot| slot.kind == SlotKind::Entry)
                {
                    slot.used = slot.used.max(at);
                }
                return;
            }
            // Its time is not to be trusted: it replaces what was read
            // before it, and any record read after it replaces it.
            Parsed::Corrupt { key, len } => (key, slot(len, 0, SlotKind::Corrupt)),
            Parsed::Short { .. } | Parsed::Lost => return,
        };
        let full = self.keys.len() >= MAX_KEYS;
        match self.keys.get_mut(&key) {
            Some(old) if slot.kind == SlotKind::Corrupt || slot.at >= old.at => *old = slot,
            Some(_) => {}
            None if full => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "cachier: {MAX_KEYS} keys indexed; entries of further keys get files of their own"
                    )
                });
                self.full = true;
            }
            None => {
                self.keys.insert(key, slot);
            }
        }
    }

    /// Appends `records` to this process's segment, and indexes them.
    fn append(&mut self, dir: &Dir, records: &[u8]) -> io::Result<()> {
        let number = match self.writer {
            Some(number) => number,
            None => self.start_writing(dir)?,
        };
        let room = self.copy_room();
        let Some(segment) = self.segments[number].as_mut() else {
            self.writer = None;
            return Err(io::ErrorKind::NotFound.into());
        };
        let offset = segment.read_to;
        if let Err(error) = (&segment.file).write_all(records) {
            // What was written of them, if anything, stays its segment's last.
            self.writer = None;
            return Err(error);
        }
        segment.read_to += records.len() as u64;
        let rolled = segment.read_to >= ROLL;
        if rolled {
            // Let go, for compaction to take.
            let _ = segment.file.unlock();
            self.writer = None;
        }
        let (mut at, mut first_entry) = (0, None);
        while let Parsed::Whole(record) = format::parse(&records[at..], MAX_VALUE) {
            if let Record::Entry { .. } = record {
                first_entry.get_or_insert(offset + at as u64);
            }
            self.index(number, offset + at as u64, Parsed::Whole(record));
            at += record.size();
        }
        if let Some(segment) = self.segments[number].as_mut() {
            let end = segment.read_to;
            segment.copy((offset, end), first_entry, room, Some(records));
        }
        // A process that only reads appends use marks and never reclaims:
        // compacting as its segment rolls bounds what reading writes.
        if rolled && let Err(error) = self.compact(dir, Compaction::Due) {
            tracing::warn!(%error, "cachier: segments not compacted");
        }
        Ok(())
    }

    /// Takes a segment no process holds, or makes one; returns its number.
    fn start_writing(&mut self, dir: &Dir) -> io::Result<usize> {
        self.refresh(dir, None);
        for number in 0..self.segments.len() {
            let Some(segment) = &self.segments[number] else {
                continue;
            };
            if segment.read_to >= ROLL {
                continue;
            }
            let Ok(Some(file)) = dir.open_segment(&segment.name, false) else {
                continue;
            };
            // The file indexed, held, then still named so: not one a
            // compaction removed before this process could hold it.
            if !same_file(&file, &segment.file)
                || file.try_lock().is_err()
                || !names_file(dir, &segment.name, &file)
            {
                continue;
            }
            // Held now: read to its end, and cut off whatever no record begins.
            if let Some(segment) = &mut self.segments[number] {
                segment.file = file;
            }
            let end = self.read_on(number)?;
            if let Some(segment) = &self.segments[number] {
                segment.file.set_len(end)?;
            }
            self.writer = Some(number);
            return Ok(number);
        }
        let number = self.create(dir)?;
        // Sends every process to list the segments again.
        if let Some(generations) = dir.generations() {
            generations.removed();
        }
        Ok(number)
    }

    /// Makes a new segment, held, as the one this process appends to;
    /// returns its number.
    ///
    /// A new segment is named before it is locked: in between, another
    /// process may take it as one no process holds (to append to it, or to
    /// compact it). It is then theirs, and this process makes another, up to
    /// [`CREATE_ATTEMPTS`] times.
    fn create(&mut self, dir: &Dir) -> io::Result<usize> {
        // A name a dead process with this one's pid used may be taken.
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let mut made = None;
        for _ in 0..CREATE_ATTEMPTS {
            let name = format!(
                "{}-{}.{EXT}",
                std::process::id(),
                NONCE.fetch_add(1, Ordering::Relaxed)
            );
            let file = match dir.open_segment(&name, true) {
                Ok(Some(file)) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Ok(None) => return Err(io::ErrorKind::NotFound.into()),
                Err(e) => return Err(e),
            };
            match file.try_lock() {
                Ok(()) => {
                    made = Some((name, file));
                    break;
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        let (name, file) = made.ok_or(io::ErrorKind::WouldBlock)?;
        self.segments.push(Some(Segment::new(name, file)));
        let number = self.segments.len() - 1;
        self.writer = Some(number);
        Ok(number)
    }

    /// Appends the records `newest` names (with a use mark after an entry
    /// used since it was stored) to segment `number`, in chunks.
    fn rewrite(&self, number: usize, newest: &[(Key, Slot)]) -> io::Result<()> {
        let Some(target) = &self.segments[number] else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let mut out = Vec::with_capacity(CHUNK + 2 * MAX_VALUE);
        for &(key, slot) in newest {
            let Some(segment) = &self.segments[slot.segment as usize] else {
                continue;
            };
            let record = segment.read(slot.offset, slot.len as usize)?;
            // Bytes changed since they were indexed are left behind.
            if !matches!(format::parse(&record, MAX_VALUE), Parsed::Whole(whole) if whole.key() == key) {
                continue;
            }
            out.extend_from_slice(&record);
            if slot.kind == SlotKind::Entry && slot.used > slot.at {
                out.extend_from_slice(&format::encode_mark(Mark::Used, &key, time_of(slot.used)));
            }
            if out.len() >= CHUNK {
                (&target.file).write_all(&out)?;
                out.clear();
            }
        }
        (&target.file).write_all(&out)
    }

    /// See [`Segments::compact`].
    fn compact(&mut self, dir: &Dir, when: Compaction) -> io::Result<()> {
        self.refresh(dir, None);
        // Records left out of a full index would be lost.
        if self.full() {
            return Ok(());
        }
        // Held while they are compacted, so that no process takes them:
        // this process's own, and every one no process holds.
        let (mut held, mut locks) = (Vec::new(), Vec::new());
        for (number, segment) in self.segments.iter().enumerate() {
            let Some(segment) = segment else {
                continue;
            };
            if self.writer == Some(number) {
                held.push(number);
            } else if let Ok(Some(file)) = dir.open_segment(&segment.name, false)
                && same_file(&file, &segment.file)
                && file.try_lock().is_ok()
            {
                held.push(number);
                locks.push(file);
            }
        }
        // Read to their ends, now that none can grow.
        self.refresh(dir, None);
        let open = self.segments.iter().flatten().count();
        held.retain(|&number| self.segments[number].is_some());
        let bytes: u64 = held
            .iter()
            .flat_map(|&number| &self.segments[number])
            .map(|s| s.read_to)
            .sum();
        // A removal hides older records, which only the segments not held
        // (or not opened, past the most read) may still have.
        let every = held.len() == open && open < MAX_SEGMENTS;
        let kept = |slot: &Slot| {
            held.contains(&(slot.segment as usize))
                && (slot.kind == SlotKind::Entry || (slot.kind == SlotKind::Removed && !every))
        };
        // Summed before anything is collected: at each roll of a writer's
        // segment, a compaction seldom due is asked for.
        let live: u64 = self
            .keys
            .values()
            .filter(|slot| kept(slot))
            .map(|slot| u64::from(slot.len))
            .sum();
        let due = match when {
            Compaction::Due => bytes >= COMPACT_AFTER && live * 2 <= bytes,
            Compaction::Now => live < bytes,
        };
        if !due {
            return Ok(());
        }
        let mut newest: Vec<(Key, Slot)> = self
            .keys
            .iter()
            .filter(|(_, slot)| kept(slot))
            .map(|(key, slot)| (*key, *slot))
            .collect();
        newest.sort_unstable_by_key(|(_, slot)| (slot.segment, slot.offset));
        let number = self.create(dir)?;
        let mut done = self.rewrite(number, &newest);
        if done.is_ok() {
            // The old ones' copies make room for the new one's.
            for &old in &held {
                if let Some(segment) = &mut self.segments[old] {
                    segment.copy = Vec::new();
                    segment.copied_from = 0;
                }
            }
            // Indexed as any segment is: read from its start.
            done = self.read_on(number).map(drop);
        }
        if let Err(error) = done {
            self.writer = None;
            return Err(error);
        }
        // Whole now: the old ones go, and every process lists the segments again.
        let removed = held.iter().try_for_each(|&old| match &self.segments[old] {
            Some(segment) => dir.remove(&segment.name).map(drop),
            None => Ok(()),
        });
        if let Some(generations) = dir.generations() {
            generations.removed();
        }
        drop(locks);
        removed
    }
}

/// Reads the records of `file` from `from` on, lending each to `each` with
/// its offset; returns where the last whole one ends. Stops before bytes
/// where no record begins, and before a record short of the file's end or
/// failing its checksum at the end (still being written, or torn).
fn scan(file: &File, from: u64, mut each: impl FnMut(u64, Parsed)) -> io::Result<u64> {
    let mut buffer = Vec::new();
    // The file's offset of `buffer[0]`, and whether the buffer reaches the end.
    let (mut start, mut at_end) = (from, false);
    let mut at = from;
    loop {
        let rest = &buffer[(at - start) as usize..];
        let parsed = format::parse(rest, MAX_VALUE);
        // A record reaching the end of what was read may be cut short by it.
        let reaching = match parsed {
            Parsed::Short { len } => Some(len),
            Parsed::Corrupt { len, .. } if len == rest.len() => Some(len),
            _ => None,
        };
        if let Some(len) = reaching {
            if at_end {
                return Ok(at);
            }
            buffer.drain(..(at - start) as usize);
            start = at;
            let have = buffer.len();
            // A byte past the record tells whether it is the last.
            let want = (len + 1).max(CHUNK);
            buffer.resize(want, 0);
            let got = read_at_most(file, &mut buffer[have..], start + have as u64)?;
            buffer.truncate(have + got);
            at_end = have + got < want;
            continue;
        }
        let len = match parsed {
            Parsed::Whole(record) => record.size(),
            Parsed::Corrupt { len, .. } => len,
            Parsed::Short { .. } | Parsed::Lost => return Ok(at),
        };
        each(at, parsed);
        at += len as u64;
    }
}

/// Whether `name` in `dir` still names `file`: it was neither removed nor
/// taken by another file since.
fn names_file(dir: &Dir, name: &str, file: &File) -> bool {
    identity_of(file)
        .and_then(|id| dir.names(name, id))
        .unwrap_or(false)
}

/// Whether `a` and `b` are the same file: not one named as the other was
/// since.
fn same_file(a: &File, b: &File) -> bool {
    matches!((identity_of(a), identity_of(b)), (Ok(a), Ok(b)) if a == b)
}

/// Reads into `buffer` from `offset` until it is full or the file ends;
/// returns how many bytes were read.
fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut read = 0;
    while read < buffer.len() {
        match file.read_at(&mut buffer[read..], offset + read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// Whether `name` is that of a segment: `<digits>-<digits>.segment`.
pub fn is_segment(name: &str) -> bool {
    name.strip_suffix(EXT)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(super::names_writer)
}

fn time_of(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn corrupt(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cores::Core;
    use crate::cores::file::FileCore;

    /// Another process's segment is copied from its first entry on (the
    /// marks before it hold no value worth the room), as far as the room
    /// allows (4 KiB in this crate's tests), however large the segment;
    /// the records past the copy, the one it cuts included, are read from
    /// the file.
    #[test]
    fn a_reader_copies_from_the_first_entry_as_far_as_the_room_allows() {
        let root = tempfile::tempdir().unwrap();
        let core = || FileCore::new(root.path().join("f")).version("v").segments(true);
        let key = |n: u64| Key::new("copied", &n).unwrap();
        // Twenty values too large to pack (their files' removal marks come
        // first in the segment), then entries of 7 KiB in all.
        let value = |n: u64| vec![n as u8; if n < 20 { 5000 } else { 100 }];
        let writer = core();
        for n in 0..64 {
            let entry = Entry::new(SystemTime::now(), value(n));
            writer.set(&key(n), &entry).unwrap();
        }
        let reader = core();
        for n in 0..64 {
            let found = reader.get(&key(n)).unwrap();
            assert_eq!(found.map(|entry| entry.value.to_vec()), Some(value(n)), "{n}");
        }
        let dir = reader.open_dir(false).unwrap().unwrap();
        let state = dir.segments().unwrap().read();
        let segment = state.segments.iter().flatten().next().unwrap();
        assert!(segment.read_to > 7000, "{}", segment.read_to);
        assert_eq!(segment.copied_from, 20 * format::MARK_LEN as u64);
        assert_eq!(segment.copy.len() as u64, MAX_COPIED);
    }

    /// Reading an entry more than a minute after its last recorded use
    /// appends a use mark: a process that only reads would grow the
    /// segments without end. Each roll of its segment (64 KiB in this
    /// crate's tests) compacts them instead.
    #[test]
    fn use_marks_are_compacted_as_their_segment_rolls() {
        let root = tempfile::tempdir().unwrap();
        let core = FileCore::new(root.path().join("f")).version("v").segments(true);
        let key = |n: u64| Key::new("marked", &n).unwrap();
        for n in 0..10 {
            let entry = Entry::new(SystemTime::now(), vec![n as u8; 8]);
            core.set(&key(n), &entry).unwrap();
        }
        let dir = core.open_dir(false).unwrap().unwrap();
        let (segments, generations) = (dir.segments().unwrap(), dir.generations().unwrap());
        let segment_bytes = || -> u64 {
            let files = std::fs::read_dir(core.dpath().unwrap())
                .unwrap()
                .map(Result::unwrap);
            let segments = files.filter(|file| file.path().extension().is_some_and(|ext| ext == EXT));
            segments.map(|file| file.metadata().unwrap().len()).sum()
        };
        // An hour apart, every read is due a mark: four rolls' worth.
        let marks = 4 * ROLL / format::MARK_LEN as u64;
        let mut now = SystemTime::now();
        for _ in 0..marks / 10 {
            now += Duration::from_secs(3600);
            for n in 0..10 {
                let looked_up = (generations.stamp(&key(n)), now);
                let found = segments.get(&dir, &key(n), looked_up, Duration::from_secs(60));
                assert!(matches!(found, Ok(Lookup::Entry(_))), "{n}");
            }
        }
        assert!(segment_bytes() < 2 * ROLL, "{} bytes", segment_bytes());
        for n in 0..10 {
            let found = core.get(&key(n)).unwrap();
            assert_eq!(found.map(|entry| entry.value.to_vec()), Some(vec![n as u8; 8]));
        }
    }
}
