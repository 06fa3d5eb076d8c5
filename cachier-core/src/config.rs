//! Process-wide defaults, and the switch that turns all caching off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::Duration;

/// Where a function's entries live when its attribute names no backend.
///
/// ```
/// assert_eq!(cachier_core::Backend::default(), cachier_core::Backend::File);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// One file per entry under the cache directory (see [`FileCore`](crate::FileCore)).
    #[default]
    File,
    /// In this process's memory (see [`MemoryCore`](crate::MemoryCore)).
    Memory,
    /// In a MongoDB collection shared by every machine (see
    /// [`MongoCore`](crate::MongoCore); feature `mongo`).
    #[cfg(feature = "mongo")]
    Mongo,
    /// In a Redis server shared by every machine (see
    /// [`RedisCore`](crate::RedisCore); feature `redis`).
    #[cfg(feature = "redis")]
    Redis,
    /// In a PostgreSQL database or an SQLite file (see
    /// [`SqlCore`](crate::SqlCore); feature `sql`).
    #[cfg(feature = "sql")]
    Sql,
}

/// Defaults for every cached function that does not set the option itself.
///
/// `backend` and `cache_dir` are read when a function's cache is first used;
/// the others at every call.
///
/// ```
/// use std::time::Duration;
/// let params = cachier_core::global_params().stale_after(Some(Duration::from_secs(3600)));
/// cachier_core::set_global_params(params);
/// assert_eq!(cachier_core::global_params().stale_after, Some(Duration::from_secs(3600)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalParams {
    /// The backend of functions that name none. Default: [`Backend::File`].
    pub backend: Backend,
    /// The file core's directory. Default: `$CACHIER_DIR`, else `~/.cachier`.
    pub cache_dir: PathBuf,
    /// Who the file core's directories are shared with. Default: `$CACHIER_SHARING`
    /// (`group` for [`Sharing::Group`](crate::Sharing::Group)), else [`Sharing::Private`](crate::Sharing::Private).
    pub sharing: crate::Sharing,
    /// Entries older than this are stale. Default: never.
    pub stale_after: Option<Duration>,
    /// How long a caller waits for another caller computing the same key before
    /// computing itself. Default: as long as that caller is alive.
    pub wait_for_calc_timeout: Option<Duration>,
    /// Whether `None` results of `Option` functions are cached. Default: no.
    pub allow_none: bool,
    /// Results whose encoding is larger than this many bytes are not stored. Default: no limit.
    pub entry_size_limit: Option<usize>,
    /// How often functions with `cleanup_stale` delete their stale entries. Default: one day.
    pub cleanup_interval: Duration,
    /// Most entries each function's store keeps (see [`Budget`](crate::Budget)). Default: no limit.
    pub max_entries: Option<u64>,
    /// Most bytes each function's store keeps (see [`Budget`](crate::Budget)). Default: no limit.
    pub max_bytes: Option<u64>,
    /// Whether the file core packs small entries into segments instead of a
    /// file each (see [`FileCore::segments`](crate::FileCore::segments)), for
    /// the functions whose cores are made after it is set. Default: yes.
    pub segments: bool,
    /// The MongoDB core's server, claims and outage handling.
    #[cfg(feature = "mongo")]
    pub mongo: crate::MongoParams,
    /// The Redis core's server, key prefix, claims and outage handling.
    #[cfg(feature = "redis")]
    pub redis: crate::RedisParams,
    /// The SQL core's database, table, claims and outage handling.
    #[cfg(feature = "sql")]
    pub sql: crate::SqlParams,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $field(mut self, value: impl Into<$ty>) -> Self {
            self.$field = value.into();
            self
        }
    )*};
}

impl GlobalParams {
    setters!(
        /// Sets [`GlobalParams::backend`].
        backend: Backend,
        /// Sets [`GlobalParams::cache_dir`].
        cache_dir: PathBuf,
        /// Sets [`GlobalParams::sharing`].
        sharing: crate::Sharing,
        /// Sets [`GlobalParams::stale_after`].
        stale_after: Option<Duration>,
        /// Sets [`GlobalParams::wait_for_calc_timeout`].
        wait_for_calc_timeout: Option<Duration>,
        /// Sets [`GlobalParams::allow_none`].
        allow_none: bool,
        /// Sets [`GlobalParams::entry_size_limit`].
        entry_size_limit: Option<usize>,
        /// Sets [`GlobalParams::cleanup_interval`].
        cleanup_interval: Duration,
        /// Sets [`GlobalParams::max_entries`].
        max_entries: Option<u64>,
        /// Sets [`GlobalParams::max_bytes`].
        max_bytes: Option<u64>,
        /// Sets [`GlobalParams::segments`].
        segments: bool,
    );

    /// Sets [`GlobalParams::mongo`].
    #[cfg(feature = "mongo")]
    #[must_use]
    pub fn mongo(mut self, mongo: crate::MongoParams) -> Self {
        self.mongo = mongo;
        self
    }

    /// Sets [`GlobalParams::redis`].
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(mut self, redis: crate::RedisParams) -> Self {
        self.redis = redis;
        self
    }

    /// Sets [`GlobalParams::sql`].
    #[cfg(feature = "sql")]
    #[must_use]
    pub fn sql(mut self, sql: crate::SqlParams) -> Self {
        self.sql = sql;
        self
    }
}

impl Default for GlobalParams {
    /// The built-in defaults, with `CACHIER_DIR` applied.
    fn default() -> Self {
        GlobalParams {
            backend: Backend::File,
            cache_dir: default_cache_dir(),
            sharing: crate::Sharing::from_env(),
            stale_after: None,
            wait_for_calc_timeout: None,
            allow_none: false,
            entry_size_limit: None,
            cleanup_interval: Duration::from_secs(24 * 3600),
            max_entries: None,
            max_bytes: None,
            segments: true,
            #[cfg(feature = "mongo")]
            mongo: crate::MongoParams::default(),
            #[cfg(feature = "redis")]
            redis: crate::RedisParams::default(),
            #[cfg(feature = "sql")]
            sql: crate::SqlParams::default(),
        }
    }
}

fn default_cache_dir() -> PathBuf {
    match std::env::var_os("CACHIER_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::home_dir().unwrap_or_default().join(".cachier"),
    }
}

static PARAMS: LazyLock<RwLock<Arc<GlobalParams>>> = LazyLock::new(|| RwLock::new(Arc::default()));
/// Bumped by every [`set_global_params`], so that threads know their snapshot is old.
static GENERATION: AtomicU64 = AtomicU64::new(1);

static ENABLED: LazyLock<AtomicBool> =
    LazyLock::new(|| AtomicBool::new(std::env::var_os("CACHIER_DISABLE").is_none_or(|v| v != "1")));

/// Replaces the process-wide defaults.
pub fn set_global_params(params: GlobalParams) {
    let mut current = PARAMS.write().unwrap_or_else(PoisonError::into_inner);
    *current = Arc::new(params);
    GENERATION.fetch_add(1, Ordering::Release);
}

/// The process-wide defaults in force.
#[must_use]
pub fn global_params() -> GlobalParams {
    GlobalParams::clone(&PARAMS.read().unwrap_or_else(PoisonError::into_inner))
}

/// How many times [`set_global_params`] was called, plus one: what was
/// derived from the defaults at one generation holds until the next.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Reads one thing from the defaults. Calls resolving their settings do
/// (see `Settings::resolve`), so each thread keeps a snapshot and takes
/// the lock only after a change.
pub(crate) fn read<T>(f: impl FnOnce(&GlobalParams) -> T) -> T {
    thread_local! {
        static SNAPSHOT: std::cell::RefCell<Option<(u64, Arc<GlobalParams>)>> = const { std::cell::RefCell::new(None) };
    }
    SNAPSHOT.with(|snapshot| {
        let mut snapshot = snapshot.borrow_mut();
        let generation = GENERATION.load(Ordering::Acquire);
        let (seen, params) = match snapshot.take() {
            Some((seen, params)) if seen == generation => (seen, params),
            _ => (
                generation,
                Arc::clone(&PARAMS.read().unwrap_or_else(PoisonError::into_inner)),
            ),
        };
        let answer = f(&params);
        *snapshot = Some((seen, params));
        answer
    })
}

/// Turns caching back on after [`disable_caching`] or `CACHIER_DISABLE=1`.
pub fn enable_caching() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Makes every cached function run its body with no cache access at all.
///
/// ```
/// cachier_core::disable_caching();
/// assert!(!cachier_core::caching_enabled());
/// cachier_core::enable_caching();
/// ```
pub fn disable_caching() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Whether caching is on (it is unless turned off by [`disable_caching`] or
/// `CACHIER_DISABLE=1`).
#[must_use]
pub fn caching_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
