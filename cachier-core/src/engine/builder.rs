//! Building a [`FunctionCache`]: a function's identity, its core and its own options.

use std::path::PathBuf;
use std::time::Duration;

use super::FunctionCache;
use super::call::FunctionOptions;
use crate::config::{self, Backend};
use crate::cores::file::Sharing;
use crate::cores::{self, Core, FileLayout};
use crate::key::KeySpace;

/// Builds a [`FunctionCache`].
///
/// ```
/// use std::time::Duration;
/// use cachier_core::FunctionCache;
/// let dir = tempfile::tempdir().unwrap();
/// let cache = FunctionCache::builder("reports::fetch")
///     .cache_dir(dir.path())
///     .stale_after(Duration::from_secs(3 * 86_400))
///     .next_time(true)
///     .build();
/// // A directory per function, and in it one per version of its code.
/// assert_eq!(cache.dpath().unwrap().parent(), Some(&*dir.path().join("reports.fetch")));
/// ```
#[must_use]
pub struct FunctionCacheBuilder {
    function: String,
    signature: String,
    code_version: String,
    backend: Option<Backend>,
    file: FileLayout,
    core: Option<Box<dyn Core>>,
    options: FunctionOptions,
}

impl FunctionCacheBuilder {
    pub(super) fn new(function: String) -> Self {
        FunctionCacheBuilder {
            function,
            signature: String::new(),
            code_version: String::new(),
            backend: None,
            file: FileLayout::default(),
            core: None,
            options: FunctionOptions::default(),
        }
    }

    /// Versions the keys with the function's signature, so that entries stored
    /// under another signature (another return type, say) are never read back.
    pub fn signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = signature.into();
        self
    }

    /// Versions the keys with the function's code, so that entries computed by
    /// other code are never read back. `#[cachier]` passes a digest of the
    /// body's tokens.
    pub fn code_version(mut self, version: impl Into<String>) -> Self {
        self.code_version = version.into();
        self
    }

    /// Stores entries in `backend` instead of the global default.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The file core's directory (the function's own directory is made inside it).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.file.cache_dir = Some(dir.into());
        self
    }

    /// Who the file core's directories are shared with, instead of the global default.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.file.sharing = Some(sharing);
        self
    }

    /// Whether the file core packs small entries into segments, instead of
    /// the global default ([`GlobalParams::segments`](crate::GlobalParams::segments);
    /// see [`FileCore::segments`](crate::FileCore::segments)).
    ///
    /// ```
    /// use cachier_core::{Backend, FunctionCache};
    /// let dir = tempfile::tempdir().unwrap();
    /// let build = |packed| FunctionCache::builder("doc::packed").cache_dir(dir.path()).segments(packed).build();
    /// let (packed, plain) = (build(true), build(false));
    /// assert_eq!(packed.backend(), Some(Backend::File));
    /// // Packing is part of the version: its own directory.
    /// assert_ne!(packed.dpath(), plain.dpath());
    /// ```
    pub fn segments(mut self, packed: bool) -> Self {
        self.file.segments = Some(packed);
        self
    }

    /// Stores entries in the MongoDB collection `getter` returns (called on first use).
    #[cfg(feature = "mongo")]
    pub fn mongetter(mut self, getter: fn() -> mongodb::sync::Collection<mongodb::bson::Document>) -> Self {
        let params = config::read(|g| g.mongo.clone());
        self.core = Some(Box::new(crate::cores::mongo::MongoCore::with_getter(
            self.function.clone(),
            getter,
            &params,
        )));
        self
    }

    /// Stores entries in the Redis server of the client `getter` returns
    /// (called on first use).
    #[cfg(feature = "redis")]
    pub fn redis_client(mut self, getter: fn() -> redis::Client) -> Self {
        let params = config::read(|g| g.redis.clone());
        self.core = Some(Box::new(crate::cores::redis::RedisCore::with_client(
            &self.function,
            getter,
            &params,
        )));
        self
    }

    /// Stores entries in a core of your own instead of a built-in backend.
    pub fn core(mut self, core: impl Core) -> Self {
        self.core = Some(Box::new(core));
        self
    }

    /// Entries older than this are stale.
    pub fn stale_after(mut self, age: Duration) -> Self {
        self.options.stale_after = Some(age);
        self
    }

    /// Serve stale entries at once and recompute them in the background.
    pub fn next_time(mut self, yes: bool) -> Self {
        self.options.next_time = yes;
        self
    }

    /// How long a caller waits for another caller computing the same key before
    /// computing itself.
    pub fn wait_for_calc_timeout(mut self, timeout: Duration) -> Self {
        self.options.wait_for_calc_timeout = Some(timeout);
        self
    }

    /// Whether `None` results are cached.
    pub fn allow_none(mut self, yes: bool) -> Self {
        self.options.allow_none = Some(yes);
        self
    }

    /// Results whose encoding is larger than `bytes` are returned but not stored.
    pub fn entry_size_limit(mut self, bytes: usize) -> Self {
        self.options.entry_size_limit = Some(bytes);
        self
    }

    /// Keeps at most `entries` entries, evicting the least recently used
    /// (see [`Budget`](crate::Budget)).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.options.max_entries = Some(entries);
        self
    }

    /// Keeps at most `bytes` bytes of entries, evicting the least recently
    /// used (see [`Budget`](crate::Budget)); a result larger than that is
    /// returned but not stored.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.options.max_bytes = Some(bytes);
        self
    }

    /// Periodically delete stale entries (needs `stale_after`, here or global).
    pub fn cleanup_stale(mut self, yes: bool) -> Self {
        self.options.cleanup_stale = yes;
        self
    }

    /// How often `cleanup_stale` runs.
    pub fn cleanup_interval(mut self, interval: Duration) -> Self {
        self.options.cleanup_interval = Some(interval);
        self
    }

    /// Builds the cache. Does no I/O: the file core creates its directory on
    /// its first store.
    #[must_use]
    pub fn build(self) -> FunctionCache {
        let mut identity = self.function.clone();
        if !self.signature.is_empty() {
            identity = format!("{identity} {}", self.signature);
        }
        if !self.code_version.is_empty() {
            identity = format!("{identity} code:{}", self.code_version);
        }
        let core = match self.core {
            Some(core) => (core, None),
            None => {
                let backend = self
                    .backend
                    .unwrap_or_else(|| config::read(|global| global.backend));
                let core = cores::for_backend(backend, &self.function, &identity, self.file);
                (core, Some(backend))
            }
        };
        // Entries that die with the process need keys stable within it only.
        let key_space = if core.0.process_local() {
            KeySpace::local()
        } else {
            KeySpace::new(&identity)
        };
        FunctionCache::new(self.function, key_space, core, self.options)
    }
}
