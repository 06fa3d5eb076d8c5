//! The stores: the [`Core`] trait every backend implements, the [`Claim`] a
//! computing caller holds, and the built-in backends (memory, file, MongoDB,
//! Redis, SQL).

#[cfg(any(feature = "mongo", feature = "redis", feature = "sql"))]
pub mod catalog;
pub mod file;
pub mod memory;
#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "mongo", feature = "redis", feature = "sql"))]
mod remote;
#[cfg(feature = "sql")]
pub mod sql;

use std::path::PathBuf;
use std::time::SystemTime;

use self::file::{FileCore, Sharing};
use self::memory::MemoryCore;
use crate::budget::Budget;
use crate::config::{self, Backend};
use crate::entry::Entry;
use crate::error::Result;
use crate::key::Key;

/// A storage backend for the entries of one cached function.
///
/// A core only stores and claims; all policy (staleness, waiting, `next_time`,
/// statistics, what is cacheable) lives in the engine, so every core behaves the
/// same. One core instance serves one function, so `clear` and `delete_stale`
/// concern that function's entries only.
///
/// Implement it to plug in a store of your own, and check it with the behaviour
/// suite in `cachier_core::contract` (feature `contract`).
///
/// ```
/// use cachier_core::{Core, Entry, Key, MemoryCore};
/// let core = MemoryCore::new();
/// let key = Key::new("doc::f", &1u8).unwrap();
/// core.set(&key, &Entry::new(std::time::SystemTime::now(), vec![7])).unwrap();
/// assert_eq!(&*core.get(&key).unwrap().unwrap().value, &[7]);
/// ```
pub trait Core: Send + Sync + 'static {
    /// The entry stored under `key`, if any.
    ///
    /// # Errors
    /// A failure of the store, or [`Error::Corrupt`](crate::Error::Corrupt) for an entry
    /// that fails its integrity checks; the engine treats both as a miss.
    fn get(&self, key: &Key) -> Result<Option<Entry>>;

    /// Lends the entry stored under `key` to `read`, which is not called
    /// when there is none: how the engine looks a call up. The default reads
    /// the entry with [`get`](Self::get); a core that keeps its entries in
    /// memory lends them where they are, so that threads reading one entry
    /// write no memory they share (no reference count, no lock word). The
    /// engine's `read` decodes the value and returns; an implementation may
    /// call it under a lock of its own.
    ///
    /// ```
    /// use cachier_core::{Core, Entry, Key, MemoryCore};
    /// let core = MemoryCore::new();
    /// let key = Key::new("doc::f", &1u8).unwrap();
    /// core.set(&key, &Entry::new(std::time::SystemTime::now(), vec![7])).unwrap();
    /// let mut first = None;
    /// core.read(&key, &mut |entry| first = Some(entry.value[0])).unwrap();
    /// assert_eq!(first, Some(7));
    /// ```
    ///
    /// # Errors
    /// As [`get`](Self::get).
    fn read(&self, key: &Key, read: &mut dyn FnMut(&Entry)) -> Result<()> {
        if let Some(entry) = self.get(key)? {
            read(&entry);
        }
        Ok(())
    }

    /// Stores `entry` under `key`, replacing any previous one. Readers must see the
    /// old entry or the new one, never a mix.
    ///
    /// # Errors
    /// A failure of the store.
    fn set(&self, key: &Key, entry: &Entry) -> Result<()>;

    /// Tries to become the one caller computing `key`: `Some(claim)` if this caller
    /// now holds its claim (released when the claim is dropped), `None` if
    /// another caller holds it.
    ///
    /// A claim whose holder died must not block others for long: the file core
    /// uses OS locks that die with their process, the MongoDB core leases.
    ///
    /// # Errors
    /// A failure of the store.
    fn try_claim(&self, key: &Key) -> Result<Option<Claim>>;

    /// Removes every entry.
    ///
    /// # Errors
    /// A failure of the store.
    fn clear(&self) -> Result<()>;

    /// Drops every claim, including ones held by live callers.
    ///
    /// # Errors
    /// A failure of the store.
    fn clear_claims(&self) -> Result<()>;

    /// Deletes the entries computed before `cutoff`; returns how many.
    ///
    /// # Errors
    /// A failure of the store.
    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64>;

    /// Removes what writers that died left behind (temporary files, released
    /// claims' files), never anything a live caller still holds; returns how
    /// many. The engine calls it in the background after a store, at most once
    /// an hour per function and process.
    ///
    /// # Errors
    /// A failure of the store.
    fn reclaim(&self) -> Result<u64> {
        Ok(0)
    }

    /// Evicts the least recently used entries until the rest fit in
    /// `budget` (in the order of [`Budget::victims`]); returns how many
    /// went, or `None` for a core that keeps no record of use, whose budget
    /// the engine then leaves unenforced (and says so once).
    ///
    /// The memory core counts an entry used at every store and read; the
    /// file core at every store, and at a read if the entry was not used in
    /// the last minute (the file's modification time is the record).
    ///
    /// # Errors
    /// A failure of the store.
    fn evict(&self, budget: Budget) -> Result<Option<u64>> {
        let _ = budget;
        Ok(None)
    }

    /// The directory holding the entries, for cores that keep them in one.
    fn dpath(&self) -> Option<PathBuf> {
        None
    }

    /// Whether the store holds entries of other versions of the function's
    /// code, which this core never reads (told once to a verbose caller).
    ///
    /// # Errors
    /// A failure of the store.
    fn has_other_versions(&self) -> Result<bool> {
        Ok(false)
    }

    /// Whether no other process ever sees the store (the memory core): the
    /// engine then gives the function keys that mean nothing outside this
    /// process (see [`KeySpace::local`](crate::KeySpace::local)), and claims
    /// no key, since its single-flight among the callers of this process
    /// already makes one of them compute.
    fn process_local(&self) -> bool {
        false
    }

    /// Whether an operation may wait on the network, so that async callers run
    /// it off their executor's threads. Local stores (memory, files) answer in
    /// microseconds and run inline.
    fn waits_on_network(&self) -> bool {
        false
    }
}

/// Proof that this caller holds the claim on one key: it alone computes it.
/// Dropping it releases the claim.
///
/// ```
/// use cachier_core::Claim;
/// let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let flag = released.clone();
/// drop(Claim::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)));
/// assert!(released.load(std::sync::atomic::Ordering::SeqCst));
/// ```
#[must_use = "the claim is released as soon as it is dropped"]
pub struct Claim {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Claim {
    /// A claim that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Claim {
            release: Some(Box::new(release)),
        }
    }

    /// The claim on a key of a [process-local](Core::process_local) store:
    /// the caller's flight among this process's callers is all of it, and
    /// dropping it releases nothing.
    pub(crate) fn in_process() -> Self {
        Claim { release: None }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claim")
    }
}

/// A boxed core is a core, so factories can hand out `Box<dyn Core>`.
impl<C: Core + ?Sized> Core for Box<C> {
    fn get(&self, key: &Key) -> Result<Option<Entry>> {
        (**self).get(key)
    }
    fn read(&self, key: &Key, read: &mut dyn FnMut(&Entry)) -> Result<()> {
        (**self).read(key, read)
    }
    fn set(&self, key: &Key, entry: &Entry) -> Result<()> {
        (**self).set(key, entry)
    }
    fn try_claim(&self, key: &Key) -> Result<Option<Claim>> {
        (**self).try_claim(key)
    }
    fn clear(&self) -> Result<()> {
        (**self).clear()
    }
    fn clear_claims(&self) -> Result<()> {
        (**self).clear_claims()
    }
    fn delete_stale(&self, cutoff: SystemTime) -> Result<u64> {
        (**self).delete_stale(cutoff)
    }
    fn reclaim(&self) -> Result<u64> {
        (**self).reclaim()
    }
    fn evict(&self, budget: Budget) -> Result<Option<u64>> {
        (**self).evict(budget)
    }
    fn dpath(&self) -> Option<PathBuf> {
        (**self).dpath()
    }
    fn has_other_versions(&self) -> Result<bool> {
        (**self).has_other_versions()
    }
    fn process_local(&self) -> bool {
        (**self).process_local()
    }
    fn waits_on_network(&self) -> bool {
        (**self).waits_on_network()
    }
}

/// What a function chose of the file core's directory and layout; each
/// choice left `None` is the global params'.
#[derive(Default)]
pub(crate) struct FileLayout {
    /// The cache root its directory is made in.
    pub cache_dir: Option<PathBuf>,
    /// Who its directories are shared with.
    pub sharing: Option<Sharing>,
    /// Whether small entries are packed in segments.
    pub segments: Option<bool>,
}

/// The built-in core of `backend` for the function identified by `function`:
/// the file core laid out as `file` says, the memory core, or the MongoDB,
/// Redis or SQL core on the global params' server.
pub(crate) fn for_backend(
    backend: Backend,
    function: &str,
    identity: &str,
    file: FileLayout,
) -> Box<dyn Core> {
    match backend {
        Backend::File => {
            let (root, shared, segments) =
                config::read(|global| (global.cache_dir.clone(), global.sharing, global.segments));
            let dir = file
                .cache_dir
                .unwrap_or(root)
                .join(FileCore::function_dir_name(function));
            Box::new(
                FileCore::new(dir)
                    .version(identity)
                    .sharing(file.sharing.unwrap_or(shared))
                    .segments(file.segments.unwrap_or(segments)),
            )
        }
        Backend::Memory => Box::new(MemoryCore::new()),
        #[cfg(feature = "mongo")]
        Backend::Mongo => Box::new(config::read(|global| {
            mongo::MongoCore::with_params(function, &global.mongo)
        })),
        #[cfg(feature = "redis")]
        Backend::Redis => Box::new(config::read(|global| {
            redis::RedisCore::with_params(function, &global.redis)
        })),
        #[cfg(feature = "sql")]
        Backend::Sql => Box::new(config::read(|global| {
            sql::SqlCore::with_params(function, &global.sql)
        })),
    }
}
