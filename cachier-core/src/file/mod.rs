//! The default core: one file per entry under a directory per function.
//!
//! `<cache_dir>/<function>/<key>.cachier` holds an entry (see [`format`]);
//! `<key>.lock` is a 'being calculated' marker (see [`lock`]). A hit reads one
//! file and a store writes one, whatever the number of entries. Stores write a
//! temporary file and rename it into place, so a reader or a process killed
//! mid-write sees the old entry or the new one, never a torn one.
//!
//! Entries read recently stay in memory with the identity of their file (see
//! [`recent`]); a hit on one costs a single `stat` of its path, which still
//! sees every store (a new file) and clear (no file) of any process.

pub mod format;
mod lock;
mod recent;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::core::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::Key;

const ENTRY_EXT: &str = "cachier";
const LOCK_EXT: &str = "lock";
const TEMP_EXT: &str = "tmp";
/// Temporary files older than this were left by a killed writer; `clear` removes them.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Stores each entry of one function in its own file.
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
    dir: PathBuf,
    recent: recent::Recent,
}

impl FileCore {
    /// A core keeping its files in `dir`, created on the first store.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCore {
            dir: dir.into(),
            recent: recent::Recent::default(),
        }
    }

    /// The directory name of a function's entries inside a cache directory:
    /// its path with `::` as `.` and anything unusual as `_`.
    ///
    /// ```
    /// assert_eq!(cachier_core::FileCore::function_dir_name("app::jobs::fetch"), "app.jobs.fetch");
    /// ```
    #[must_use]
    pub fn function_dir_name(function: &str) -> String {
        function
            .replace("::", ".")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    fn path(&self, key: &Key, ext: &str) -> PathBuf {
        let mut name = String::with_capacity(41 + ext.len());
        name.push_str(key.hex().as_str());
        name.push('.');
        name.push_str(ext);
        self.dir.join(name)
    }

    /// Runs `op`, creating the directory first if `op` reports it missing.
    fn with_dir<T>(&self, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir)?;
                op()
            }
            other => other,
        }
    }

    /// The files of the directory whose names end in `.{ext}`; none if it does not exist.
    fn files(&self, ext: &str) -> Result<Vec<PathBuf>> {
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut paths = Vec::new();
        for item in listing {
            let path = item.map_err(|e| Error::io(&self.dir, e))?.path();
            if path.extension().is_some_and(|found| found == ext) {
                paths.push(path);
            }
        }
        Ok(paths)
    }

    /// Removes each file of `paths` that `doomed` selects; returns how many went.
    fn remove_where(&self, paths: Vec<PathBuf>, doomed: impl Fn(&Path) -> bool) -> Result<u64> {
        let mut removed = 0;
        for path in paths.into_iter().filter(|p| doomed(p)) {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                // Another process removed or replaced it first: nothing lost.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(removed)
    }

    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let temp = target.with_extension(format!(
            "{}-{}.{TEMP_EXT}",
            std::process::id(),
            NONCE.fetch_add(1, Ordering::Relaxed)
        ));
        let written = self
            .with_dir(|| fs::File::create_new(&temp))
            .and_then(|mut file| file.write_all(bytes))
            .and_then(|()| fs::rename(&temp, target));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

/// Reads a file, with the metadata of the very file read (not of whatever the
/// path names a moment later).
fn read_with_metadata(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    let mut file = fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok((bytes, meta))
}

impl Core for FileCore {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let path = self.path(key, ENTRY_EXT);
        let missing = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        // A remembered entry is served if the path still names its file; anything
        // else is read (and its identity taken from the opened file, not a stat).
        if self.recent.holds(key) {
            match fs::metadata(&path) {
                Ok(meta) => {
                    if let Some(entry) = self.recent.get(key, &meta) {
                        return Ok(Some(entry));
                    }
                }
                Err(e) if missing(&e) => {
                    self.recent.forget(key);
                    return Ok(None);
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        let (bytes, meta) = match read_with_metadata(&path) {
            Ok(read) => read,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let entry = format::decode(key, &bytes).map_err(|reason| Error::Corrupt {
            what: path.display().to_string(),
            reason,
        })?;
        self.recent.remember(*key, &meta, &entry);
        Ok(Some(entry))
    }

    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        self.recent.forget(key);
        let path = self.path(key, ENTRY_EXT);
        self.write_atomically(&path, &format::encode(key, entry))
            .map_err(|e| Error::io(path, e))
    }

    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        let path = self.path(key, LOCK_EXT);
        self.with_dir(|| lock::try_lock(&path))
            .map_err(|e| Error::io(path, e))
    }

    fn clear(&self) -> Result<()> {
        self.recent.forget_all();
        self.remove_where(self.files(ENTRY_EXT)?, |_| true)?;
        let now = SystemTime::now();
        let orphaned = |path: &Path| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| now.duration_since(modified).unwrap_or_default() > ORPHAN_AGE)
        };
        self.remove_where(self.files(TEMP_EXT)?, orphaned)?;
        Ok(())
    }

    fn clear_markers(&self) -> Result<()> {
        self.remove_where(self.files(LOCK_EXT)?, |_| true).map(drop)
    }

    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        self.recent.forget_all();
        let computed_before_cutoff = |path: &Path| {
            let mut header = [0; format::HEADER_LEN];
            fs::File::open(path)
                .and_then(|mut file| io::Read::read_exact(&mut file, &mut header))
                .ok()
                .and_then(|()| format::computed_at(&header))
                .is_some_and(|computed_at| computed_at < cutoff)
        };
        self.remove_where(self.files(ENTRY_EXT)?, computed_before_cutoff)
    }

    fn dpath(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
}
