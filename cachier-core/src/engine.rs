//! The call engine: everything a cached call decides, for every core alike.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::codec::{self, MAX_VALUE_LEN};
use crate::config::{self, Backend};
use crate::core::Core;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::file::{FileCore, Sharing};
use crate::flight::{Flights, Join, Landed, Pilot};
use crate::key::{Key, KeySpace};
use crate::memory::MemoryCore;
use crate::options::CallOptions;
use crate::outcome::Outcome;
use crate::stats::{CacheInfo, Stats};

/// A call with owned copies of its arguments, runnable on another thread.
pub type Job<O> = Box<dyn FnOnce() -> O + Send>;

/// Longest pause between two looks at a key another process is computing.
const MAX_POLL: Duration = Duration::from_millis(100);
/// How often a process asks a function's core to reclaim what dead writers left.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(3600);

/// The cache of one function: its core, its options and its statistics.
///
/// `#[cachier]` builds one per annotated function; it is also usable directly:
///
/// ```
/// use cachier_core::{Backend, CallOptions, FunctionCache, Plain};
/// let cache = FunctionCache::builder("doc::square").backend(Backend::Memory).build();
/// let square = |x: u64| cache.call(&CallOptions::DEFAULT, cache.key(&x), || Plain(x * x)).0;
/// assert_eq!(square(7), 49);
/// assert_eq!(square(7), 49);
/// assert_eq!(cache.info().hits, 1);
/// ```
#[derive(Clone)]
pub struct FunctionCache {
    inner: Arc<Inner>,
}

struct Inner {
    function: String,
    /// What keys are hashed under: the function and its signature.
    key_space: KeySpace,
    core: Box<dyn Core>,
    options: FunctionOptions,
    stats: Stats,
    flights: Flights,
    background: Arc<Background>,
    last_cleanup: Mutex<Option<Instant>>,
    last_reclaim: Mutex<Option<Instant>>,
}

/// A function's own options; unset ones fall back to the global params.
#[derive(Clone, Default)]
struct FunctionOptions {
    stale_after: Option<Duration>,
    next_time: bool,
    wait_for_calc_timeout: Option<Duration>,
    allow_none: Option<bool>,
    entry_size_limit: Option<usize>,
    cleanup_stale: bool,
    cleanup_interval: Option<Duration>,
}

/// The options in force for one call.
#[derive(Clone, Copy)]
struct Settings {
    stale_after: Option<Duration>,
    wait_for_calc_timeout: Option<Duration>,
    allow_none: bool,
    entry_size_limit: Option<usize>,
    cleanup_interval: Duration,
    /// Entries this old or older are stale: the smaller of `stale_after` and the call's `max_age`.
    stale_limit: Option<Duration>,
    verbose: bool,
}

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
/// assert_eq!(cache.dpath(), Some(dir.path().join("reports.fetch")));
/// ```
#[must_use]
pub struct FunctionCacheBuilder {
    function: String,
    signature: String,
    code_version: String,
    backend: Option<Backend>,
    cache_dir: Option<PathBuf>,
    sharing: Option<Sharing>,
    core: Option<Box<dyn Core>>,
    options: FunctionOptions,
}

impl FunctionCache {
    /// Starts building the cache of the function identified by `function`, which
    /// should be unique and stable, such as `concat!(module_path!(), "::name")`.
    pub fn builder(function: impl Into<String>) -> FunctionCacheBuilder {
        FunctionCacheBuilder {
            function: function.into(),
            signature: String::new(),
            code_version: String::new(),
            backend: None,
            cache_dir: None,
            sharing: None,
            core: None,
            options: FunctionOptions::default(),
        }
    }

    /// The key of `args` for this function.
    ///
    /// # Errors
    /// [`Error::Key`] when an argument's `Serialize` impl fails.
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<Key> {
        self.inner.key_space.key(args)
    }

    /// Answers one call: from the cache when it holds a usable value for `key`,
    /// otherwise by running `compute` (once, however many threads or processes ask
    /// at the same time) and storing what it returns.
    ///
    /// Cache failures never reach the caller: a `key` that could not be built,
    /// or a core that fails, only means `compute` runs.
    pub fn call<O: Outcome + 'static>(
        &self,
        opts: &CallOptions,
        key: Result<Key>,
        compute: impl FnOnce() -> O,
    ) -> O {
        self.run(opts, key, Foreground(compute))
    }

    /// [`call`](Self::call) for `next_time` functions: `job` makes an owned copy
    /// of the call, so that a stale entry can be returned at once while the copy
    /// recomputes it in the background.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachier_core::{Backend, CallOptions, FunctionCache, Job, Plain};
    /// let cache = FunctionCache::builder("doc::len")
    ///     .backend(Backend::Memory)
    ///     .stale_after(Duration::ZERO)
    ///     .next_time(true)
    ///     .build();
    /// let len = |s: &str| -> usize {
    ///     let key = cache.key(s);
    ///     cache.call_refreshable(&CallOptions::DEFAULT, key, || -> Job<Plain<usize>> {
    ///         let s = s.to_owned();
    ///         Box::new(move || Plain(s.len()))
    ///     }).0
    /// };
    /// assert_eq!(len("abc"), 3); // computed
    /// assert_eq!(len("abc"), 3); // stale at once: served, refreshed in the background
    /// cache.wait_for_background();
    /// assert_eq!(cache.info().recalculations, 2);
    /// ```
    pub fn call_refreshable<O: Outcome + 'static>(
        &self,
        opts: &CallOptions,
        key: Result<Key>,
        job: impl FnOnce() -> Job<O>,
    ) -> O {
        self.run(opts, key, Refreshable(job))
    }

    fn run<O: Outcome + 'static>(&self, opts: &CallOptions, key: Result<Key>, body: impl Body<O>) -> O {
        let this = &self.inner;
        if !config::caching_enabled() || opts.ignore_cache {
            this.report(opts.verbose, "cache ignored: running the body", None);
            return body.run();
        }
        let settings = this.settings(opts);
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                this.cache_error("building the key", &e);
                return body.run();
            }
        };
        this.maybe_cleanup(&settings);
        if opts.overwrite_cache {
            this.report(settings.verbose, "overwriting", Some(&key));
            return this.compute_and_store(&key, || body.run(), &settings).0;
        }
        match this.lookup::<O>(&key, &settings) {
            Lookup::Fresh(value, _) => {
                Stats::bump(&this.stats.hits);
                this.report(settings.verbose, "hit", Some(&key));
                return O::from_stored(value);
            }
            Lookup::Stale(value) if this.options.next_time => match body.into_job() {
                Ok(job) => {
                    Stats::bump(&this.stats.stale_hits);
                    this.report(
                        settings.verbose,
                        "stale: returned, refreshing in the background",
                        Some(&key),
                    );
                    self.spawn_refresh(key, job, settings);
                    return O::from_stored(value);
                }
                Err(body) => return self.recompute_stale(&key, body, &settings),
            },
            Lookup::Stale(_) => return self.recompute_stale(&key, body, &settings),
            Lookup::Missing => {
                Stats::bump(&this.stats.misses);
                this.report(settings.verbose, "miss", Some(&key));
            }
        }
        this.compute_once(&key, || body.run(), &settings)
    }

    fn recompute_stale<O: Outcome>(&self, key: &Key, body: impl Body<O>, settings: &Settings) -> O {
        Stats::bump(&self.inner.stats.stale_hits);
        self.inner
            .report(settings.verbose, "stale: recomputing", Some(key));
        self.inner.compute_once(key, || body.run(), settings)
    }

    /// Stores `value` as the result for `key` without running the function.
    ///
    /// # Errors
    /// [`Error::NotCacheable`] for a value this function does not cache (an `Err`,
    /// or `None` without `allow_none`); otherwise a failure of the encoding or
    /// the store.
    pub fn precache<O: Outcome>(&self, key: Key, value: O) -> Result<()> {
        let this = &self.inner;
        let stored = value
            .stored(this.settings(&CallOptions::DEFAULT).allow_none)
            .ok_or(Error::NotCacheable)?;
        this.core
            .set(&key, &Entry::new(SystemTime::now(), codec::encode(stored)?))
    }

    /// Removes every entry of this function.
    ///
    /// # Errors
    /// A failure of the store.
    pub fn clear(&self) -> Result<()> {
        self.inner.core.clear()
    }

    /// Drops every 'being calculated' marker of this function, so that callers
    /// waiting on them compute for themselves.
    ///
    /// # Errors
    /// A failure of the store.
    pub fn clear_being_calculated(&self) -> Result<()> {
        self.inner.core.clear_markers()
    }

    /// The directory of the file core; `None` for other cores.
    #[must_use]
    pub fn dpath(&self) -> Option<PathBuf> {
        self.inner.core.dpath()
    }

    /// This function's counters since the process started.
    #[must_use]
    pub fn info(&self) -> CacheInfo {
        self.inner.stats.snapshot()
    }

    /// Blocks until the background work this process started for this function
    /// (`next_time` refreshes, stale-entry cleanups) has finished. Call it before
    /// exiting to keep the results of refreshes still under way.
    pub fn wait_for_background(&self) {
        self.inner.background.wait_idle();
    }

    /// The core behind this cache.
    #[must_use]
    pub fn core(&self) -> &dyn Core {
        &*self.inner.core
    }

    fn spawn_refresh<O: Outcome + 'static>(&self, key: Key, job: Job<O>, settings: Settings) {
        let Join::Pilot(pilot) = self.inner.flights.join(key) else {
            return; // another thread of this process computes it already
        };
        let this = Arc::clone(&self.inner);
        self.inner.background.spawn(&self.inner.function, move || {
            pilot.board();
            this.refresh(&key, job, &settings, pilot)
        });
    }
}

/// A function body as the engine runs it: now, or (for `next_time`) as an owned
/// job on another thread.
trait Body<O>: Sized {
    fn run(self) -> O;
    /// The body as a job for a background thread, or itself if it cannot be one.
    fn into_job(self) -> Result<Job<O>, Self>;
}

struct Foreground<F>(F);

impl<O, F: FnOnce() -> O> Body<O> for Foreground<F> {
    fn run(self) -> O {
        (self.0)()
    }
    fn into_job(self) -> Result<Job<O>, Self> {
        Err(self)
    }
}

struct Refreshable<F>(F);

impl<O, F: FnOnce() -> Job<O>> Body<O> for Refreshable<F> {
    fn run(self) -> O {
        (self.0)()()
    }
    fn into_job(self) -> Result<Job<O>, Self> {
        Ok((self.0)())
    }
}

enum Lookup<T> {
    /// A usable value, with its entry's encoded bytes.
    Fresh(T, Arc<[u8]>),
    Stale(T),
    Missing,
}

impl Inner {
    fn settings(&self, opts: &CallOptions) -> Settings {
        let own = &self.options;
        config::read(|global| {
            let stale_after = own.stale_after.or(global.stale_after);
            Settings {
                stale_after,
                wait_for_calc_timeout: own.wait_for_calc_timeout.or(global.wait_for_calc_timeout),
                allow_none: own.allow_none.unwrap_or(global.allow_none),
                entry_size_limit: own.entry_size_limit.or(global.entry_size_limit),
                cleanup_interval: own.cleanup_interval.unwrap_or(global.cleanup_interval),
                stale_limit: [stale_after, opts.max_age].into_iter().flatten().min(),
                verbose: opts.verbose,
            }
        })
    }

    /// Looks `key` up, reporting an unreadable entry (it then counts as missing).
    fn lookup<O: Outcome>(&self, key: &Key, settings: &Settings) -> Lookup<O::Stored> {
        self.read::<O>(key, settings).unwrap_or_else(|(doing, e)| {
            self.cache_error(doing, &e);
            Lookup::Missing
        })
    }

    /// Looks `key` up again within one call: an unreadable entry was reported by
    /// the call's first lookup already.
    fn peek<O: Outcome>(&self, key: &Key, settings: &Settings) -> Lookup<O::Stored> {
        self.read::<O>(key, settings).unwrap_or(Lookup::Missing)
    }

    fn read<O: Outcome>(
        &self,
        key: &Key,
        settings: &Settings,
    ) -> Result<Lookup<O::Stored>, (&'static str, Error)> {
        let entry = match self.core.get(key) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(Lookup::Missing),
            Err(e) => return Err(("reading an entry (treated as a miss)", e)),
        };
        let value = codec::decode::<O::Stored>(&entry.value)
            .map_err(|e| ("decoding an entry (treated as a miss)", e))?;
        Ok(match settings.stale_limit {
            Some(limit) if entry.age(SystemTime::now()) >= limit => Lookup::Stale(value),
            _ => Lookup::Fresh(value, entry.value),
        })
    }

    /// Computes `key` unless another thread or process already does, in which
    /// case waits for its value (within `wait_for_calc_timeout`).
    ///
    /// A computation that ends with nothing to share (an `Err`, `None` without
    /// `allow_none`, a panic) does not release the waiting callers all at once:
    /// they take turns, one computation at a time. A call made from within the
    /// computation of the same key (re-entrant) runs the body like an uncached
    /// call instead of waiting for itself.
    fn compute_once<O: Outcome>(
        self: &Arc<Self>,
        key: &Key,
        compute: impl FnOnce() -> O,
        settings: &Settings,
    ) -> O {
        let deadline = settings
            .wait_for_calc_timeout
            .map(|timeout| Instant::now() + timeout);
        loop {
            let flight = match self.flights.join(*key) {
                Join::Pilot(pilot) => return self.pilot(key, pilot, compute, settings, deadline),
                Join::Passenger(flight) => flight,
                Join::Reentrant => {
                    self.report(
                        settings.verbose,
                        "re-entrant call computing its own key: running the body",
                        Some(key),
                    );
                    return self.compute_and_store(key, compute, settings).0;
                }
            };
            self.report(
                settings.verbose,
                "waiting for another thread computing it",
                Some(key),
            );
            match flight.wait(deadline) {
                Landed::Value(bytes) => match codec::decode::<O::Stored>(&bytes) {
                    Ok(value) => return O::from_stored(value),
                    Err(e) => {
                        self.cache_error("decoding a value from another thread", &e);
                        return self.compute_and_store(key, compute, settings).0;
                    }
                },
                Landed::TimedOut => {
                    self.report(
                        settings.verbose,
                        "gave up waiting (wait_for_calc_timeout): computing",
                        Some(key),
                    );
                    return self.compute_and_store(key, compute, settings).0;
                }
                Landed::Nothing => {
                    if let Lookup::Fresh(value, _) = self.peek::<O>(key, settings) {
                        return O::from_stored(value);
                    }
                    self.report(
                        settings.verbose,
                        "the computation waited for cached nothing: computing in turn",
                        Some(key),
                    );
                }
            }
        }
    }

    /// The one thread of this process computing `key`: claims it across processes,
    /// computes and stores, then hands the value to the threads waiting here.
    fn pilot<O: Outcome>(
        self: &Arc<Self>,
        key: &Key,
        pilot: Pilot,
        compute: impl FnOnce() -> O,
        settings: &Settings,
        deadline: Option<Instant>,
    ) -> O {
        let mut pause = Duration::from_millis(1);
        let claim = loop {
            match self.core.try_claim(key) {
                Ok(Some(claim)) => break Some(claim),
                Ok(None) => {}
                Err(e) => {
                    self.cache_error("claiming a key (computing without the claim)", &e);
                    break None;
                }
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                self.report(
                    settings.verbose,
                    "gave up waiting (wait_for_calc_timeout): computing",
                    Some(key),
                );
                break None;
            }
            self.report(
                settings.verbose,
                "waiting for another process computing it",
                Some(key),
            );
            let left = deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()));
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL);
            if let Lookup::Fresh(value, bytes) = self.peek::<O>(key, settings) {
                pilot.land(Some(bytes));
                return O::from_stored(value);
            }
        };
        // Another caller may have stored the value between our lookup and our claim.
        if claim.is_some()
            && let Lookup::Fresh(value, bytes) = self.peek::<O>(key, settings)
        {
            pilot.land(Some(bytes));
            return O::from_stored(value);
        }
        let (outcome, bytes) = self.compute_and_store(key, compute, settings);
        drop(claim);
        pilot.land(bytes);
        outcome
    }

    /// Runs the body and stores what it returns if that is cacheable; returns the
    /// result and its encoding (for threads waiting on this computation).
    fn compute_and_store<O: Outcome>(
        self: &Arc<Self>,
        key: &Key,
        compute: impl FnOnce() -> O,
        settings: &Settings,
    ) -> (O, Option<Arc<[u8]>>) {
        Stats::bump(&self.stats.recalculations);
        let outcome = compute();
        let Some(stored) = outcome.stored(settings.allow_none) else {
            self.report(
                settings.verbose,
                "result not cached (Err, or None without allow_none)",
                Some(key),
            );
            return (outcome, None);
        };
        let bytes: Arc<[u8]> = match codec::encode(stored) {
            Ok(bytes) => bytes.into(),
            Err(e) => {
                self.cache_error("encoding the result", &e);
                return (outcome, None);
            }
        };
        let limit = settings
            .entry_size_limit
            .map_or(MAX_VALUE_LEN, |limit| limit.min(MAX_VALUE_LEN));
        if bytes.len() > limit {
            let event = format!(
                "result of {} bytes exceeds the size limit of {limit} (entry_size_limit): not stored",
                bytes.len()
            );
            self.report(settings.verbose, &event, Some(key));
        } else {
            match self
                .core
                .set(key, &Entry::new(SystemTime::now(), Arc::clone(&bytes)))
            {
                Ok(()) => {
                    self.report(settings.verbose, "stored", Some(key));
                    self.maybe_reclaim(settings.verbose);
                }
                Err(e) => self.cache_error("storing the result", &e),
            }
        }
        (outcome, Some(bytes))
    }

    /// A `next_time` refresh, run in the background: recomputes `key` unless
    /// another process holds its claim or has refreshed it already.
    fn refresh<O: Outcome>(self: &Arc<Self>, key: &Key, job: Job<O>, settings: &Settings, pilot: Pilot) {
        let claim = match self.core.try_claim(key) {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                return self.report(
                    settings.verbose,
                    "refresh skipped: another process computes it",
                    Some(key),
                );
            }
            Err(e) => return self.cache_error("claiming a key to refresh it", &e),
        };
        if let Lookup::Fresh(_, bytes) = self.peek::<O>(key, settings) {
            self.report(settings.verbose, "refresh skipped: already fresh", Some(key));
            return pilot.land(Some(bytes));
        }
        let (_, bytes) = self.compute_and_store(key, job, settings);
        drop(claim);
        pilot.land(bytes);
    }

    /// With `cleanup_stale`, deletes stale entries in the background once per
    /// `cleanup_interval`.
    fn maybe_cleanup(self: &Arc<Self>, settings: &Settings) {
        let Some(stale_after) = settings.stale_after.filter(|_| self.options.cleanup_stale) else {
            return;
        };
        if !once_per(&self.last_cleanup, settings.cleanup_interval) {
            return;
        }
        let this = Arc::clone(self);
        let verbose = settings.verbose;
        self.background.spawn(&self.function, move || {
            let cutoff = SystemTime::now() - stale_after;
            match this.core.delete_stale(cutoff) {
                Ok(n) => this.report(verbose, &format!("cleanup deleted {n} stale entries"), None),
                Err(e) => this.cache_error("deleting stale entries", &e),
            }
        });
    }

    /// After a store, asks the core in the background to reclaim what dead
    /// writers left behind, at most once per [`RECLAIM_INTERVAL`].
    fn maybe_reclaim(self: &Arc<Self>, verbose: bool) {
        if !once_per(&self.last_reclaim, RECLAIM_INTERVAL) {
            return;
        }
        let this = Arc::clone(self);
        self.background
            .spawn(&self.function, move || match this.core.reclaim() {
                Ok(0) => {}
                Ok(n) => this.report(
                    verbose,
                    &format!("reclaimed {n} files left by dead writers"),
                    None,
                ),
                Err(e) => this.cache_error("reclaiming files left by dead writers", &e),
            });
    }

    fn cache_error(&self, doing: &str, error: &Error) {
        Stats::bump(&self.stats.cache_errors);
        tracing::warn!(function = %self.function, %error, "cachier: cache failure while {doing}");
    }

    fn report(&self, verbose: bool, event: &str, key: Option<&Key>) {
        // Formatting the key costs more than a memory hit: do it only when someone listens.
        if !verbose && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let key = key.map(ToString::to_string).unwrap_or_default();
        if verbose {
            eprintln!("cachier: {}: {event} {key}", self.function);
            tracing::info!(function = %self.function, key, "cachier: {event}");
        } else {
            tracing::debug!(function = %self.function, key, "cachier: {event}");
        }
    }
}

/// Whether the time kept in `last` is `interval` ago or more (or unset); if so,
/// sets it to now.
fn once_per(last: &Mutex<Option<Instant>>, interval: Duration) -> bool {
    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
    if last.is_some_and(|last| last.elapsed() < interval) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

/// Background work of one function, counted so that it can be waited for.
#[derive(Default)]
struct Background {
    running: Mutex<usize>,
    idle: Condvar,
}

/// Counts one background task as finished when dropped, even if it panicked
/// or its thread never started.
struct Running(Arc<Background>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        if *running == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Background {
    fn spawn(self: &Arc<Self>, function: &str, work: impl FnOnce() + Send + 'static) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let running = Running(Arc::clone(self));
        let spawned = thread::Builder::new()
            .name("cachier-background".into())
            .spawn(move || {
                let _running = running;
                work();
            });
        if let Err(e) = spawned {
            tracing::warn!(function, error = %e, "cachier: cannot start a background thread");
        }
    }

    fn wait_idle(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        drop(
            self.idle
                .wait_while(running, |n| *n > 0)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

impl FunctionCacheBuilder {
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
        self.cache_dir = Some(dir.into());
        self
    }

    /// Who the file core's directories are shared with, instead of the global default.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = Some(sharing);
        self
    }

    /// Stores entries in the MongoDB collection `getter` returns (called on first use).
    #[cfg(feature = "mongo")]
    pub fn mongetter(mut self, getter: fn() -> mongodb::sync::Collection<mongodb::bson::Document>) -> Self {
        let params = config::read(|g| g.mongo.clone());
        self.core = Some(Box::new(crate::MongoCore::with_getter(
            self.function.clone(),
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
        let core = self.core.unwrap_or_else(|| {
            let global = config::global_params();
            match self.backend.unwrap_or(global.backend) {
                Backend::File => {
                    let dir = self.cache_dir.unwrap_or(global.cache_dir);
                    let core = FileCore::new(dir.join(FileCore::function_dir_name(&self.function)));
                    Box::new(core.sharing(self.sharing.unwrap_or(global.sharing)))
                }
                Backend::Memory => Box::new(MemoryCore::new()),
                #[cfg(feature = "mongo")]
                Backend::Mongo => Box::new(crate::MongoCore::with_params(
                    self.function.clone(),
                    &global.mongo,
                )),
            }
        });
        let mut identity = self.function.clone();
        if !self.signature.is_empty() {
            identity = format!("{identity} {}", self.signature);
        }
        if !self.code_version.is_empty() {
            identity = format!("{identity} code:{}", self.code_version);
        }
        let key_space = KeySpace::new(&identity);
        FunctionCache {
            inner: Arc::new(Inner {
                key_space,
                function: self.function,
                core,
                options: self.options,
                stats: Stats::default(),
                flights: Flights::default(),
                background: Arc::default(),
                last_cleanup: Mutex::new(None),
                last_reclaim: Mutex::new(None),
            }),
        }
    }
}
