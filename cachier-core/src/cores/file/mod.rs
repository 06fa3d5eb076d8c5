//! The default core: one file per entry under a directory per function.
//!
//! `<cache_dir>/<function>/<key>.cachier` holds an entry (see [`mod@format`]);
//! a core for one version of a function's code (see [`FileCore::version`])
//! keeps its entries one level down, in `<function>/code-<16 hex>/`, which
//! every process using it holds (a shared `flock`) and touches when it opens
//! it, so that versions no process used for a day can be reclaimed.
//! Claims are byte locks in the directory's `claims` file on Linux, and
//! `<key>.lock` files elsewhere (see `claims`). A hit reads one file and a store
//! writes one, whatever the number of entries. On Linux a store writes a file
//! with no name (`O_TMPFILE`) and links it in place once whole; one that
//! replaces an entry, and every store elsewhere, writes a temporary file
//! `<key>.<pid>-<n>.tmp`, locked while it is written, and renames it into
//! place. Either way a reader or a process killed mid-write sees the old entry
//! or the new one, never a torn one.
//!
//! The directory is untrusted input: it is reached through a checked handle
//! (see `dir` and [`Sharing`]), every file read is bounded by the size its
//! header declares, and only files whose names this core writes are ever
//! removed.
//!
//! Entries read recently stay in memory with the identity of their file (see
//! `recent`). A hit on one takes no lock, and makes no syscall while the
//! directory's generation counters (`generations`, a shared mapping that
//! every store and removal bumps) show that no process stored its key or
//! removed files since, and at least once a second (or where there are no
//! counters: every time) costs a single `stat` relative to the directory
//! handle, which sees every store (a new file) and clear (no file) of any
//! process.
//!
//! A clear of a version's directory with counters renames it aside
//! (`<function>/retired-<version>-<pid>-<nanos>`) and marks it retired in
//! its counters, which sends every process holding it back to the path at
//! its next call; a thread of the clearing process then deletes its files
//! (see `FileCore::retire`). Clearing a million entries thus takes as
//! long as clearing one.
//!
//! An entry file's modification time is when the entry was last used, shared
//! by every process: a store sets it, and a read that checks the file (at
//! least once a second) sets it again (one `futimens`) if it is a minute or
//! more old, so that reads of a busy cache seldom write an inode (memcached
//! bumps an item in its LRU at most once a minute for the same reason).
//! Entry files are opened with `O_NOATIME` (Linux, files the process owns),
//! so that a read never writes their access time.
//! Evictions under a [`Budget`] take the entries of the oldest ones first.
//!
//! A core made with [`FileCore::segments`] (as cached functions' cores
//! are, by default) packs entries of up to 4 KiB into append-only
//! segments, one per writing process, instead of a file each (see
//! `segments`): a store
//! appends a record, a removal appends a mark, and the files of larger
//! entries stay as above.

mod claims;
mod dir;
pub mod format;
mod generations;
mod lock;
mod recent;
pub mod scan;
mod segments;
mod trust;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use rustix::fs::Stat;
use sha1::{Digest, Sha1};

use self::dir::Dir;
use self::format::Mark;
use self::generations::Stamp;
use self::segments::{Compaction, Lookup, Place};
pub use self::trust::Sharing;
use crate::budget::Budget;
use crate::clock;
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::Key;

const ENTRY_EXT: &str = "cachier";
const LOCK_EXT: &str = "lock";
const TEMP_EXT: &str = "tmp";
/// How the name of a version's directory begins.
const VERSION_PREFIX: &str = "code-";
/// What a clear renames a version's directory to begins with this.
const RETIRED_PREFIX: &str = "retired-";
/// Temporary and lock files untouched this long, and held by no process, were
/// left by a killed writer and are reclaimed.
const GRACE: Duration = Duration::from_secs(60);
/// The directory of another version of a function's code, held by no process,
/// is reclaimed once no process opened it or stored into it for this long:
/// alternating between two builds keeps the entries of both.
const VERSION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How finely uses of an entry are told apart: a read marks its entry used
/// only if it was not used within this time.
const USE_RESOLUTION: Duration = Duration::from_secs(60);
/// How many directories a store or claim tries while clears by other
/// processes retire each one under it (see `FileCore::retire`).
const ATTEMPTS: usize = 8;
/// Entry files up to this size are read whole with one call.
const FIRST_READ: usize = 64 * 1024;
/// Longest function directory name kept as it is; longer ones are shortened
/// and end in a digest of the whole.
const MAX_DIR_NAME: usize = 200;

/// Stores each entry of one function in its own file.
///
/// Every method may be called from any thread, and by any number of
/// processes at once. A hit on an entry this process read before takes no
/// lock and writes nothing other threads read, so threads hitting the same
/// entries do not slow each other down (see [`Core::read`]).
///
/// ```
/// use cachier_core::{Core, Entry, FileCore, Key};
/// let dir = tempfile::tempdir().unwrap();
/// let core = FileCore::new(dir.path().join("demo.f"));
/// let key = Key::new("demo::f", &(1u64, 2u64)).unwrap();
/// core.set(&key, &Entry::new(std::time::SystemTime::now(), vec![3])).unwrap();
/// assert_eq!(&*core.get(&key).unwrap().unwrap().value, &[3]);
/// assert_eq!(core.dpath(), Some(dir.path().join("demo.f")));
/// ```
pub struct FileCore {
    /// Where the entries are: the function's directory, or its version's.
    path: PathBuf,
    /// The name of the version's directory inside the function's, if any.
    version: Option<String>,
    /// The version's identity (see [`FileCore::version`]), if any.
    identity: Option<String>,
    sharing: Sharing,
    /// The open directory, once it exists; reopened if it is removed.
    /// Read without a lock by every call; changed under `opening`.
    dir: ArcSwapOption<Dir>,
    /// Held while the directory is opened or let go: one thread opens it.
    opening: Mutex<()>,
    recent: recent::Recent,
    /// Whether small entries are packed in segments (see [`FileCore::segments`]).
    segments: bool,
}

/// What a file in a function's directory is, by its name; files of other
/// names are not this core's and are never touched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Entry,
    Lock,
    Temp,
    Generations,
    Claims,
    Segment,
}

/// An entry file whose use [`FileCore::mark_used`] records: open (no path
/// to look up), or by its name.
enum Used<'a> {
    Open(&'a File),
    Named(&'a str),
}

impl FileCore {
    /// A private core (see [`Sharing::Private`]) keeping its files in the
    /// directory `dir`, created on the first store. The directory's parent is
    /// the cache root, which must be trusted too.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCore {
            path: dir.into(),
            version: None,
            identity: None,
            sharing: Sharing::Private,
            dir: ArcSwapOption::empty(),
            opening: Mutex::new(()),
            recent: recent::Recent::default(),
            segments: false,
        }
    }

    /// This core packing small entries (values of up to 4 KiB less 50 bytes)
    /// into append-only segments, one per writing process, instead of a
    /// file each, where it can: for one version of a function's code (see
    /// [`version`](Self::version)) in a directory with generation counters
    /// (private, on a local filesystem, on Linux). Elsewhere it keeps a
    /// file per entry. A store then appends one record to a file already
    /// open, and a million entries of 8-byte values take 58 MB, not 4 GB;
    /// a removal (an eviction, a cleanup of stale entries) appends a mark,
    /// and compaction, from [`Core::reclaim`] and after evictions, gives
    /// back the bytes of removed and replaced entries.
    ///
    /// Cached functions pack by default ([`GlobalParams::segments`](crate::GlobalParams::segments));
    /// a core made by hand keeps a file per entry unless told to pack.
    ///
    /// Packing is part of the version: its entries go in a directory of
    /// their own, which every process using it packs, so that a miss there
    /// looks for no file. Processes of one build packing and not packing
    /// thus do not share entries, as two builds do not.
    ///
    /// ```
    /// use cachier_core::{Core, Entry, FileCore, Key};
    /// let dir = tempfile::tempdir().unwrap();
    /// let core = FileCore::new(dir.path().join("demo.f")).version("demo::f v1").segments(true);
    /// assert_eq!(core.dpath(), Some(dir.path().join("demo.f").join("code-2068a488c73098d7")));
    /// let key = Key::new("demo::f", &1u64).unwrap();
    /// core.set(&key, &Entry::new(std::time::SystemTime::now(), vec![3])).unwrap();
    /// assert_eq!(&*core.get(&key).unwrap().unwrap().value, &[3]);
    /// ```
    #[must_use]
    pub fn segments(mut self, packed: bool) -> Self {
        self.segments = packed;
        self.locate();
        self
    }

    /// This core shared as `sharing` says.
    ///
    /// ```
    /// use cachier_core::{FileCore, Sharing};
    /// let core = FileCore::new("/srv/team-cache/app.report").sharing(Sharing::Group);
    /// ```
    #[must_use]
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// This core for one version of the function's code, `identity` (its
    /// name, signature and code digest): its entries go in a directory of
    /// their own inside the function's, so that two builds of a program
    /// sharing a cache directory each see only their own entries. Versions
    /// that no process holds are removed by [`Core::clear`], and by
    /// [`Core::delete_stale`] and [`Core::reclaim`] once no process opened or
    /// stored into them for a day.
    ///
    /// ```
    /// use cachier_core::{Core, FileCore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let core = FileCore::new(dir.path().join("app.f")).version("app::f fn(u8) -> u8 code:body 1f3e");
    /// assert_eq!(core.dpath(), Some(dir.path().join("app.f").join("code-c6689fcfd92206a0")));
    /// ```
    #[must_use]
    pub fn version(mut self, identity: &str) -> Self {
        self.identity = Some(identity.to_owned());
        self.locate();
        self
    }

    /// Points `path` at the version's directory, if there is a version: its
    /// name is `code-` and the first 8 bytes of the SHA-1 of its identity in
    /// hex, followed by a 0 byte and `segments` if it packs entries.
    fn locate(&mut self) {
        let Some(identity) = &self.identity else {
            return;
        };
        let mut digest = Sha1::new();
        digest.update(identity.as_bytes());
        if self.segments {
            digest.update(b"\0segments");
        }
        let mut name = String::from(VERSION_PREFIX);
        for byte in &digest.finalize()[..8] {
            let _ = write!(name, "{byte:02x}");
        }
        if self.version.is_some() {
            self.path.pop();
        }
        self.path.push(&name);
        self.version = Some(name);
    }

    /// The directory name of a function's entries inside a cache directory:
    /// its path with `::` as `.`, letters, digits, `_` and `-` as they are, and
    /// any other character as `%XX` per UTF-8 byte. Distinct paths never share
    /// a name (very long ones end in a SHA-1 of the whole path).
    ///
    /// ```
    /// use cachier_core::FileCore;
    /// assert_eq!(FileCore::function_dir_name("app::jobs::fetch"), "app.jobs.fetch");
    /// assert_eq!(FileCore::function_dir_name("app::café"), "app.caf%C3%A9");
    /// assert_ne!(FileCore::function_dir_name("app::café"), FileCore::function_dir_name("app::cafè"));
    /// ```
    #[must_use]
    pub fn function_dir_name(function: &str) -> String {
        let mut name = String::with_capacity(function.len());
        let mut rest = function;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("::") {
                name.push('.');
                rest = after;
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                name.push(c);
            } else {
                for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                    let _ = write!(name, "%{byte:02X}");
                }
            }
            rest = &rest[c.len_utf8()..];
        }
        // "", "." and ".." are not names of directories of their own.
        if name.bytes().all(|b| b == b'.') {
            name.insert(0, '%');
        }
        if name.len() > MAX_DIR_NAME {
            let mut cut = MAX_DIR_NAME - 41;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
            name.push('~');
            for byte in Sha1::digest(function.as_bytes()) {
                let _ = write!(name, "{byte:02x}");
            }
        }
        name
    }

    /// The open directory, if it exists (created first if `create`); reopened
    /// when the one held was removed since.
    fn open_dir(&self, create: bool) -> Result<Option<Arc<Dir>>> {
        let held = || self.dir.load_full().filter(|dir| !dir.is_removed());
        if let Some(dir) = held() {
            return Ok(Some(dir));
        }
        let _opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = held() {
            return Ok(Some(dir));
        }
        let dir = match (&self.version, self.path.parent()) {
            (Some(version), Some(function)) => match Dir::open(function, self.sharing, create)? {
                Some(function) => self.open_version(&function, version, create)?,
                None => None,
            },
            _ => Dir::open(&self.path, self.sharing, create)?.map(|dir| dir.with_generations(self.sharing)),
        };
        // A directory opened anew (it was removed) holds none of the entries kept.
        self.recent.forget_all();
        let dir = dir.map(Arc::new);
        self.dir.store(dir.clone());
        Ok(dir)
    }

    /// Opens (or creates) the version's directory in `function`, holds it and
    /// maps its counters. `None` also if a clear renamed it aside meanwhile
    /// (see [`retire`](Self::retire)): counters mapped after the clear's
    /// deletion began would be new ones, never marked retired.
    fn open_version(&self, function: &Dir, version: &str, create: bool) -> Result<Option<Dir>> {
        let Some(dir) = function.child(version, &self.path, self.sharing, create)? else {
            return Ok(None);
        };
        let io = |e| Error::io(&self.path, e);
        dir.hold().map_err(io)?;
        // The version's last use, for `reclaim_versions`; a directory this
        // process may not touch keeps its time.
        let _ = function.touch(version);
        let mut dir = dir.with_generations(self.sharing);
        if self.segments {
            dir = dir.with_segments();
        }
        let named = function.names(version, dir.identity().map_err(io)?).map_err(io)?;
        Ok(named.then_some(dir))
    }

    /// The directory of the function and its path, for a versioned core whose
    /// function directory exists.
    fn function_dir(&self) -> Result<Option<(Dir, &Path)>> {
        let (Some(_), Some(path)) = (&self.version, self.path.parent()) else {
            return Ok(None);
        };
        Ok(Dir::open(path, self.sharing, false)?.map(|dir| (dir, path)))
    }

    /// The names of the directories of the function's other versions.
    fn other_versions(&self, function: &Dir) -> Result<Vec<String>> {
        let names = function.list().map_err(|e| Error::io(&self.path, e))?;
        let own = self.version.as_deref();
        Ok(names
            .into_iter()
            .filter(|name| Some(name.as_str()) != own && is_version(name))
            .collect())
    }

    /// Removes the directories that clears retired (see `FileCore::retire`)
    /// and whose files are still there: the clearing process exited before
    /// its thread deleted them, or is deleting them still (both delete, no
    /// harm done). Returns how many entries went; a directory not trusted is
    /// skipped, one holding files of other names than this core's is kept.
    fn reclaim_retired(&self) -> Result<u64> {
        let Some((function, path)) = self.function_dir()? else {
            return Ok(0);
        };
        let mut removed = 0;
        let names = function.list().map_err(|e| Error::io(path, e))?;
        for name in names.into_iter().filter(|name| is_retired(name)) {
            let path = path.join(&name);
            if let Ok(Some(dir)) = function.child(name.as_str(), &path, self.sharing, false) {
                let dir = dir.with_generations(self.sharing);
                removed += remove_version(&function, &name, &dir, &path)?;
            }
        }
        Ok(removed)
    }

    /// Removes the directories of the function's other versions that no
    /// process holds and none used within `grace` (opened or stored into),
    /// with their files; returns how many entries went. A version's
    /// directory is skipped if it is not trusted or if it holds files of
    /// other names than this core's.
    fn reclaim_versions(&self, grace: Duration) -> Result<u64> {
        let Some((function, path)) = self.function_dir()? else {
            return Ok(0);
        };
        let mut removed = 0;
        for name in self.other_versions(&function)? {
            let used_within_grace = function
                .stat(&name)
                .ok()
                .flatten()
                .is_some_and(|stat| modified(&stat).elapsed().map_or(true, |age| age < grace));
            if used_within_grace {
                continue;
            }
            let path = path.join(&name);
            let Ok(Some(other)) = function.child(name.as_str(), &path, self.sharing, false) else {
                continue;
            };
            if other.unheld() {
                removed += remove_version(&function, &name, &other, &path)?;
            }
        }
        Ok(removed)
    }

    /// The open directory, created if missing. Clears by other processes
    /// may rename it aside between its creation and its opening: it is then
    /// created again, up to [`ATTEMPTS`] times in all.
    fn created_dir(&self) -> Result<Arc<Dir>> {
        for _ in 1..ATTEMPTS {
            if let Some(dir) = self.open_dir(true)? {
                return Ok(dir);
            }
        }
        self.open_dir(true)?.ok_or_else(|| {
            let gone = io::Error::new(io::ErrorKind::NotFound, "removed while being created");
            Error::io(&self.path, gone)
        })
    }

    /// `op` in the directory, created if missing; done again in a new
    /// directory (up to [`ATTEMPTS`] times in all) while it fails because a
    /// clear retired the directory under it, so that a store or claim racing
    /// clears lands where readers look.
    fn with_created_dir<T>(&self, op: impl Fn(&Arc<Dir>) -> Result<T>) -> Result<T> {
        let mut attempts = 1;
        loop {
            let dir = self.created_dir()?;
            match op(&dir) {
                Err(_) if dir.is_retired() && attempts < ATTEMPTS => attempts += 1,
                done => return done,
            }
        }
    }

    /// Clears the version's directory at once, whatever it holds: renames it
    /// aside (`retired-<version>-<pid>-<nanos>`), marks it retired in its
    /// generation counters, so that every process holding it opens the path
    /// anew at its next call, and deletes its files on a thread of its own
    /// (or, if this process exits first, at the next [`reclaim`](Core::reclaim)
    /// of any process). `false` where it cannot (no counters: other
    /// processes would not see the clear; no version): the caller then
    /// removes the entries one by one.
    fn retire(&self) -> Result<bool> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(true);
        };
        let (Some(version), Some(_)) = (&self.version, dir.generations()) else {
            return Ok(false);
        };
        let Some((function, path)) = self.function_dir()? else {
            return Ok(true);
        };
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let retired = format!(
            "{RETIRED_PREFIX}{version}-{}-{}",
            std::process::id(),
            since_epoch.as_nanos()
        );
        match function.rename(version, &retired) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        {
            let _opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
            self.dir.store(None);
        }
        // What the path named when renamed: this process's directory, or
        // one made since by another process. (`None`: another process's
        // reclaim removed it already, marking it retired first.)
        let retired_path = path.join(&retired);
        let Some(renamed) = function.child(retired.as_str(), &retired_path, self.sharing, false)? else {
            return Ok(true);
        };
        let renamed = renamed.with_generations(self.sharing);
        let Some(generations) = renamed.generations() else {
            // Its holders have no counters either: they see its files go.
            remove_version(&function, &retired, &renamed, &retired_path)?;
            return Ok(true);
        };
        generations.retire();
        let delete = move || {
            if let Err(error) = remove_version(&function, &retired, &renamed, &retired_path) {
                tracing::warn!(%error, "cachier: cache failure while deleting a cleared directory");
            }
        };
        let thread = std::thread::Builder::new().name("cachier-clear".into());
        if let Err(e) = thread.spawn(delete) {
            tracing::warn!(error = %e, "cachier: no thread to delete a cleared directory: it stays until the next reclaim");
        }
        Ok(true)
    }

    /// Lends `f` the directory as held, unless retired by a clear, without
    /// checking it still exists (for the hit path). Takes no lock, and
    /// writes nothing other threads read.
    fn with_held_dir<R>(&self, f: impl FnOnce(Option<&Dir>) -> R) -> R {
        let held = self.dir.load();
        f(held.as_deref().filter(|dir| !dir.is_retired()))
    }

    fn error(&self, name: &str, error: io::Error) -> Error {
        let path = self.path.join(name);
        match error.kind() {
            io::ErrorKind::InvalidData => Error::Corrupt {
                what: path.display().to_string(),
                reason: error.to_string(),
            },
            _ => Error::io(path, error),
        }
    }

    /// The entry of `key` once the remembered one could not be served as it
    /// is: served if its name still names its file (one `stat`), otherwise
    /// read from the file. `held` and `checked` as the call's first look found
    /// them.
    fn look_up(
        &self,
        held: Option<&Dir>,
        checked: Option<(Stamp, SystemTime)>,
        key: &Key,
    ) -> Result<Option<Entry>> {
        if let Some(dir) = held
            && self.recent.holds(key)
        {
            let name = name_of(key, ENTRY_EXT);
            match dir.stat(&name).map_err(|e| self.error(&name, e))? {
                Some(stat) => {
                    if let Some(entry) = self.recent.get(key, &stat, checked) {
                        if let Some(after) = Self::mark_used(dir, Used::Named(&name), &stat) {
                            self.recent.touched(key, &stat, &after);
                        }
                        return Ok(Some(entry));
                    }
                }
                None => self.recent.forget(key),
            }
        }
        // The first look's directory and stamp hold unless it was removed.
        if let Some(dir) = held.filter(|dir| !dir.is_removed()) {
            return self.read_file(dir, key, checked);
        }
        let Some(dir) = self.open_dir(false)? else {
            return Ok(None);
        };
        self.read_file(&dir, key, Self::checked(&dir, key))
    }

    /// Reads and checks the entry of `key`: from a segment if one holds it
    /// (none if no segment has a record of it), else from its entry file,
    /// allocating no more than [`FIRST_READ`] bytes until its header and its
    /// size agree. `checked`: the key's stamp in `dir` and the time, taken
    /// before this read.
    fn read_file(&self, dir: &Dir, key: &Key, checked: Option<(Stamp, SystemTime)>) -> Result<Option<Entry>> {
        if let (Some(segments), Some((stamp, checked_at))) = (dir.segments(), checked) {
            match segments
                .get(dir, key, (stamp, checked_at), USE_RESOLUTION)
                .map_err(|e| self.error(&name_of(key, ENTRY_EXT), e))?
            {
                Lookup::Entry(entry) => {
                    self.recent.remember(*key, None, checked, &entry);
                    return Ok(Some(entry));
                }
                Lookup::Absent => {
                    self.recent.remember_absent(*key, (stamp, checked_at));
                    return Ok(None);
                }
                Lookup::File => {}
            }
        }
        let name = &name_of(key, ENTRY_EXT);
        let corrupt = |reason: String| self.error(name, io::Error::new(io::ErrorKind::InvalidData, reason));
        let Some((mut file, stat)) = dir.open_regular(name).map_err(|e| self.error(name, e))? else {
            if let Some(checked) = checked {
                self.recent.remember_absent(*key, checked);
            }
            return Ok(None);
        };
        let size = usize::try_from(stat.st_size).unwrap_or(usize::MAX);
        if size < format::HEADER_LEN {
            return Err(corrupt(format!("truncated: {size} bytes")));
        }
        // One read for a small entry; a larger one is read once its header
        // vouches for its size, so that a file grown by hand is not read in.
        let mut bytes = vec![0; size.min(FIRST_READ)];
        file.read_exact(&mut bytes).map_err(|e| self.error(name, e))?;
        let len = format::file_len(format::declared_len(key, &bytes[..format::HEADER_LEN]).map_err(corrupt)?);
        if size != len {
            return Err(corrupt(format!("size {size} bytes, header says {len}")));
        }
        let first = bytes.len();
        bytes.resize(len, 0);
        file.read_exact(&mut bytes[first..])
            .map_err(|e| self.error(name, e))?;
        let entry = format::decode(key, &bytes).map_err(corrupt)?;
        // Kept with the identity the file has once marked used, if it is.
        let stat = Self::mark_used(dir, Used::Open(&file), &stat).unwrap_or(stat);
        self.recent.remember(*key, Some(&stat), checked, &entry);
        Ok(Some(entry))
    }

    /// The stamp of `key` and the time, taken before its file is checked,
    /// where the directory has generation counters.
    fn checked(dir: &Dir, key: &Key) -> Option<(Stamp, SystemTime)> {
        dir.generations()
            .map(|generations| (generations.stamp(key), clock::coarse_now()))
    }

    /// Records a read of the entry `used` (whose file `stat` describes) for
    /// eviction: sets the file's modification time to now, unless the entry
    /// was used within [`USE_RESOLUTION`]. Returns the file's status after,
    /// if it was touched. A file this process may not touch (another
    /// user's, in a shared cache) keeps its time.
    fn mark_used(dir: &Dir, used: Used<'_>, stat: &Stat) -> Option<Stat> {
        let age = SystemTime::now().duration_since(modified(stat));
        if age.is_ok_and(|age| age < USE_RESOLUTION) {
            return None;
        }
        match used {
            Used::Open(file) => Dir::touch_open(file).ok(),
            Used::Named(name) => dir.touch(name).ok().and_then(|()| dir.stat(name).ok().flatten()),
        }
    }

    /// Writes `bytes` as the file `name`, replacing any: readers, and a
    /// process killed mid-write, see the old file or the new one, never a
    /// torn one. On Linux the file is written with no name and linked in
    /// place, so that a killed writer leaves nothing behind; to replace a
    /// file, and elsewhere, it is written as a temporary file renamed over
    /// `name`.
    fn write_atomically(&self, dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(mut file) = dir.create_unnamed(self.sharing)? {
            file.write_all(bytes)?;
            if dir.link(&file, name)? {
                return Ok(());
            }
            let temp = temp_name(name);
            return rename_over(dir, &temp, name, &file, || match dir.link(&file, &temp)? {
                true => Ok(()),
                false => Err(io::ErrorKind::AlreadyExists.into()),
            });
        }
        let temp = temp_name(name);
        let file = dir.create_new(&temp, self.sharing)?;
        rename_over(dir, &temp, name, &file, || (&file).write_all(bytes))
    }

    /// Stores `bytes`, the entry of `key` encoded (see [`mod@format`]):
    /// appended to a segment if the directory packs entries this small and
    /// [`Segments::place`](segments::Segments::place) says so (removing an
    /// older entry file first, if there may be one), else written as the
    /// file `name` after a removal mark hides older records: a reader finds
    /// the file as soon as it is linked, even if this process dies then.
    fn store(&self, dir: &Dir, key: &Key, name: &str, bytes: &[u8]) -> io::Result<()> {
        match dir.segments() {
            Some(segments) if bytes.len() <= format::file_len(segments::MAX_VALUE) => {
                match segments.place(dir, key) {
                    Place::Segment => segments.append(dir, bytes),
                    Place::SegmentOverFile => {
                        dir.remove(name)?;
                        segments.append(dir, bytes)
                    }
                    Place::File => self.write_atomically(dir, name, bytes),
                }
            }
            Some(segments) => {
                segments.append(dir, &format::encode_mark(Mark::Removed, key, SystemTime::now()))?;
                self.write_atomically(dir, name, bytes)
            }
            None => self.write_atomically(dir, name, bytes),
        }
    }

    /// Compacts the segments, if the directory has any (see
    /// [`Segments::compact`](segments::Segments::compact)).
    fn compact(&self) -> Result<()> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(());
        };
        if let Some(segments) = dir.segments() {
            segments
                .compact(&dir, Compaction::Due)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Marks removed the entries in segments that `doomed` selects; returns
    /// how many went.
    fn remove_packed(&self, doomed: impl Fn(&segments::Packed) -> bool) -> Result<u64> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(0);
        };
        let Some(segments) = dir.segments() else {
            return Ok(0);
        };
        let entries = segments.entries(&dir).into_iter();
        let keys: Vec<Key> = entries
            .filter(|packed| doomed(packed))
            .map(|packed| packed.key)
            .collect();
        segments
            .remove(&dir, &keys)
            .map_err(|e| Error::io(&self.path, e))?;
        dir.removed(keys.len() as u64);
        Ok(keys.len() as u64)
    }

    /// Removes the files of `kinds` that `doomed` selects; returns how many went.
    fn remove_where(&self, kinds: &[Kind], doomed: impl Fn(&Dir, &str, Kind) -> bool) -> Result<u64> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for name in dir.list().map_err(|e| Error::io(&self.path, e))? {
            let Some(kind) = kind_of(&name).filter(|kind| kinds.contains(kind)) else {
                continue;
            };
            if doomed(&dir, &name, kind) && dir.remove(&name).map_err(|e| self.error(&name, e))? {
                removed += 1;
            }
        }
        dir.removed(removed);
        Ok(removed)
    }

    /// Removes the lock and temporary files of this version that writers
    /// which died left behind; returns how many went.
    fn reclaim_files(&self) -> Result<u64> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(0);
        };
        let mut reclaimed = 0;
        for name in dir.list().map_err(|e| Error::io(&self.path, e))? {
            match kind_of(&name) {
                // A released lock file is gone already; a temporary one is removed here.
                Some(Kind::Lock) if self.abandoned(&dir, &name, Kind::Lock) => reclaimed += 1,
                Some(Kind::Temp) if self.abandoned(&dir, &name, Kind::Temp) => {
                    reclaimed += u64::from(dir.remove(&name).map_err(|e| self.error(&name, e))?);
                }
                _ => {}
            }
        }
        Ok(reclaimed)
    }

    /// Whether `name` was left by a writer that died: untouched for the grace
    /// period and held by nobody. A lock file is released on the way.
    fn abandoned(&self, dir: &Arc<Dir>, name: &str, kind: Kind) -> bool {
        let old = dir
            .stat(name)
            .ok()
            .flatten()
            .is_some_and(|stat| modified(&stat).elapsed().is_ok_and(|age| age >= GRACE));
        old && match kind {
            // Taking and dropping the claim unlinks the file.
            Kind::Lock => matches!(lock::try_lock(dir, name, self.sharing), Ok(Some(_))),
            Kind::Temp => matches!(dir.open_regular(name), Ok(Some((file, _))) if file.try_lock().is_ok()),
            Kind::Entry | Kind::Generations | Kind::Claims | Kind::Segment => false,
        }
    }
}

/// Removes the version directory `dir`, named `name` in `function` (at
/// `path`), with the files of this core's kinds in it; returns how many
/// entry files and segments went. A directory left holding other files
/// stays. It is marked retired first, where it has counters: a process that
/// still holds it (a retired one, cleared as another process removes it)
/// opens the path anew.
fn remove_version(function: &Dir, name: &str, dir: &Dir, path: &Path) -> Result<u64> {
    if let Some(generations) = dir.generations() {
        generations.retire();
    }
    let mut removed = 0;
    for file in dir.list().map_err(|e| Error::io(path, e))? {
        if let Some(kind) = kind_of(&file)
            && dir.remove(&file).map_err(|e| Error::io(path.join(&file), e))?
        {
            removed += u64::from(matches!(kind, Kind::Entry | Kind::Segment));
        }
    }
    function.remove_dir(name).map_err(|e| Error::io(path, e))?;
    Ok(removed)
}

/// Whether `name`, in a function's directory, is a version's directory
/// that a clear retired (see `FileCore::retire`), to be deleted.
fn is_retired(name: &str) -> bool {
    name.starts_with(RETIRED_PREFIX)
}

/// Whether `name` is that of a version's directory: `code-<16 hex>`.
fn is_version(name: &str) -> bool {
    name.strip_prefix(VERSION_PREFIX).is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// The kind of file `name` is, if it is one of this core's names:
/// `<40 hex>.cachier`, `<40 hex>.lock`, `<40 hex>.<digits>-<digits>.tmp`,
/// `generations`, `claims` or `<digits>-<digits>.segment`.
fn kind_of(name: &str) -> Option<Kind> {
    match name {
        generations::FILE_NAME => return Some(Kind::Generations),
        claims::FILE_NAME => return Some(Kind::Claims),
        _ if segments::is_segment(name) => return Some(Kind::Segment),
        _ => {}
    }
    let (key, rest) = name.split_at_checked(40)?;
    let rest = rest.strip_prefix('.')?;
    Key::from_hex(key)?;
    match rest {
        ENTRY_EXT => Some(Kind::Entry),
        LOCK_EXT => Some(Kind::Lock),
        _ => {
            let (writer, ext) = rest.rsplit_once('.')?;
            (ext == TEMP_EXT && names_writer(writer)).then_some(Kind::Temp)
        }
    }
}

/// Whether `part` of a name is `<pid>-<n>`, both in digits: how temporary
/// files and segments name the process that writes them.
fn names_writer(part: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    part.split_once('-')
        .is_some_and(|(pid, n)| digits(pid) && digits(n))
}

/// A name for a temporary file of the entry `name`, unique to this process
/// and call: `<key>.<pid>-<n>.tmp`.
fn temp_name(name: &str) -> String {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    format!("{}.{}-{n}.{TEMP_EXT}", &name[..40], std::process::id())
}

/// Renames the temporary file `temp`, open as `file`, over `name` once
/// `fill` has written (or named) it; holds `file` locked meanwhile, so that
/// a reclaim never takes it, and removes `temp` if anything fails.
fn rename_over(
    dir: &Dir,
    temp: &str,
    name: &str,
    file: &std::fs::File,
    fill: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let done = file
        .try_lock()
        .map_err(io::Error::from)
        .and_then(|()| fill())
        .and_then(|()| dir.rename(temp, name));
    if done.is_err() {
        let _ = dir.remove(temp);
    }
    done
}

fn name_of(key: &Key, ext: &str) -> String {
    let mut name = String::with_capacity(41 + ext.len());
    name.push_str(key.hex().as_str());
    name.push('.');
    name.push_str(ext);
    name
}

// The widths of `stat`'s fields differ between platforms.
#[allow(clippy::unnecessary_cast)]
fn modified(stat: &Stat) -> SystemTime {
    let secs = u64::try_from(stat.st_mtime as i64).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, stat.st_mtime_nsec as u32)
}

impl Core for FileCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let mut found = None;
        self.read(key, &mut |entry| found = Some(entry.clone()))?;
        Ok(found)
    }

    /// Lends a remembered entry where it is, with no lock and no copy,
    /// while no process stored its key or removed files since it was
    /// checked (and a key seen without a file stays a miss the same way).
    fn read(&self, key: &Key, read: &mut dyn FnMut(&Entry)) -> Result<()> {
        self.with_held_dir(|held| {
            let checked = held.and_then(|dir| Self::checked(dir, key));
            if let Some((stamp, now)) = checked
                && let Some(()) = self
                    .recent
                    .current(key, stamp, now, |known| known.into_iter().for_each(&mut *read))
            {
                return Ok(());
            }
            self.look_up(held, checked, key)?.iter().for_each(read);
            Ok(())
        })
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        self.recent.forget(key);
        let name = name_of(key, ENTRY_EXT);
        let bytes = format::encode(key, entry);
        self.with_created_dir(|dir| {
            self.store(dir, key, &name, &bytes)
                .map_err(|e| self.error(&name, e))?;
            if let Some(generations) = dir.generations() {
                generations.stored(key);
            }
            Ok(())
        })
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        self.with_created_dir(|dir| {
            claims::try_claim(dir, key, self.sharing).map_err(|e| self.error(claims::FILE_NAME, e))
        })
    }

    /// Also removes the other versions no process holds, however recently
    /// used. Where it can, retires the version's directory (see
    /// `FileCore::retire`): its files are then deleted after the clear
    /// returns, and what retired directories hold is left to
    /// [`reclaim`](Core::reclaim).
    fn clear(&self) -> Result<()> {
        self.recent.forget_all();
        if !self.retire()? {
            self.remove_where(&[Kind::Entry], |_, _, _| true)?;
        }
        self.reclaim_versions(Duration::ZERO)?;
        self.reclaim_files().map(drop)
    }

    fn has_other_versions(&self) -> Result<bool> {
        match self.function_dir()? {
            Some((function, _)) => Ok(!self.other_versions(&function)?.is_empty()),
            None => Ok(false),
        }
    }

    fn clear_claims(&self) -> Result<()> {
        // Announced before the claims file goes: a claim through a handle
        // that saw the file before then looks at its name again (see `claims`).
        if let Some(dir) = self.open_dir(false)? {
            dir.removed(1);
        }
        self.remove_where(&[Kind::Claims, Kind::Lock], |_, _, _| true)?;
        #[cfg(target_os = "linux")]
        self.with_held_dir(|held| held.map(|dir| dir.claims().forget_all()));
        Ok(())
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        self.recent.forget_all();
        let computed_before_cutoff = |dir: &Dir, name: &str, _| {
            let mut header = [0; format::HEADER_LEN];
            matches!(dir.open_regular(name), Ok(Some((file, _))) if (&file).read_exact(&mut header).is_ok())
                && format::computed_at(&header).is_some_and(|computed_at| computed_at < cutoff)
        };
        let deleted = self.remove_where(&[Kind::Entry], computed_before_cutoff)?
            + self.remove_packed(|packed| packed.computed_at < cutoff)?;
        self.reclaim()?;
        Ok(deleted)
    }

    /// Also compacts the segments, if any (see [`FileCore::segments`]).
    fn reclaim(&self) -> Result<u64> {
        self.compact()?;
        Ok(self.reclaim_retired()? + self.reclaim_versions(VERSION_GRACE)? + self.reclaim_files()?)
    }

    /// Lists the entries of this version with their modification times
    /// (and those in segments with their last use): the cost of an eviction
    /// round grows with the number of entries. An entry stored by another
    /// process between that listing and its removal can be evicted in its
    /// place (it is then computed again).
    fn evict(&self, budget: Budget) -> Result<Option<u64>> {
        /// An entry to evict: a file, or a record in a segment.
        enum Victim {
            File(String),
            Packed(Key),
        }
        let Some(dir) = self.open_dir(false)? else {
            return Ok(Some(0));
        };
        let mut entries = Vec::new();
        for name in dir.list().map_err(|e| Error::io(&self.path, e))? {
            if kind_of(&name) == Some(Kind::Entry)
                && let Some(stat) = dir.stat(&name).map_err(|e| self.error(&name, e))?
            {
                let size = u64::try_from(stat.st_size).unwrap_or(0);
                entries.push(((modified(&stat), name.clone()), size, Victim::File(name)));
            }
        }
        if let Some(segments) = dir.segments() {
            for packed in segments.entries(&dir) {
                let order = (packed.used, packed.key.hex().as_str().to_owned());
                entries.push((order, packed.len, Victim::Packed(packed.key)));
            }
        }
        let mut evicted = 0;
        let mut packed = Vec::new();
        for victim in budget.victims(entries) {
            match victim {
                Victim::File(name) => {
                    evicted += u64::from(dir.remove(&name).map_err(|e| self.error(&name, e))?)
                }
                Victim::Packed(key) => packed.push(key),
            }
        }
        if let Some(segments) = dir.segments() {
            segments
                .remove(&dir, &packed)
                .map_err(|e| Error::io(&self.path, e))?;
            evicted += packed.len() as u64;
        }
        dir.removed(evicted);
        self.compact()?;
        Ok(Some(evicted))
    }

    fn dpath(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_core_writes_are_recognised() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(kind_of(&format!("{hex}.cachier")), Some(Kind::Entry));
        assert_eq!(kind_of(&format!("{hex}.lock")), Some(Kind::Lock));
        assert_eq!(kind_of(&format!("{hex}.123-4.tmp")), Some(Kind::Temp));
        assert_eq!(kind_of("generations"), Some(Kind::Generations));
        assert_eq!(kind_of("claims"), Some(Kind::Claims));
        for foreign in [
            format!("{hex}.cachier.bak"),
            format!("{hex}.tmp"),
            format!("{hex}.12-.tmp"),
            format!("{}.cachier", hex.to_uppercase()),
            format!("{}.cachier", &hex[1..]),
            "notes.txt".into(),
            "generations.bak".into(),
            "Claims".into(),
            "x".into(),
        ] {
            assert_eq!(kind_of(&foreign), None, "{foreign}");
        }
    }

    /// Past the keys a process indexes (64 in this crate's tests), entries
    /// get files of their own, and every process still finds them, those
    /// in segments past the bytes it copies (4 KiB here) read from the file.
    #[test]
    fn past_the_key_bound_entries_get_files_and_are_still_found() {
        let root = tempfile::tempdir().unwrap();
        let core = || FileCore::new(root.path().join("f")).version("v").segments(true);
        let writer = core();
        let key = |n: u64| Key::new("bound", &n).unwrap();
        for n in 0..100 {
            writer
                .set(&key(n), &Entry::new(SystemTime::now(), vec![n as u8]))
                .unwrap();
        }
        let files = std::fs::read_dir(writer.dpath().unwrap()).unwrap();
        let files = files.filter(|file| {
            kind_of(file.as_ref().unwrap().file_name().to_str().unwrap()) == Some(Kind::Entry)
        });
        assert_eq!(files.count(), 100 - segments::MAX_KEYS);
        for reader in [writer, core()] {
            for n in 0..100 {
                assert_eq!(
                    reader.get(&key(n)).unwrap().map(|entry| entry.value.to_vec()),
                    Some(vec![n as u8])
                );
            }
        }
    }

    #[test]
    fn directory_names_are_injective() {
        let names = [
            "", ".", "::", "::::", "%", "a", "a.b", "a::b", "a:b", "a%2Eb", "café", "cafè", "caf_", "a b",
            "a~b",
        ];
        let dirs: std::collections::HashSet<String> =
            names.iter().map(|n| FileCore::function_dir_name(n)).collect();
        assert_eq!(dirs.len(), names.len(), "{dirs:?}");
        assert!(dirs.iter().all(|d| !d.is_empty() && d != "." && d != ".."));
        let long = |c: char| format!("m::{}", c.to_string().repeat(300));
        let (a, b) = (
            FileCore::function_dir_name(&long('a')),
            FileCore::function_dir_name(&long('b')),
        );
        assert!(a.len() <= MAX_DIR_NAME && a != b, "{a} {b}");
        let (x, y) = (format!("{}x", "é".repeat(200)), format!("{}y", "é".repeat(200)));
        assert_ne!(FileCore::function_dir_name(&x), FileCore::function_dir_name(&y));
    }
}
