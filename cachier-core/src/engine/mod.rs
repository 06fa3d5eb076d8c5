//! The call engine: everything a cached call decides, once, for every core.
//!
//! - this module: [`FunctionCache`], and the decision tree of one call (look up,
//!   serve, refresh, compute once, store);
//! - `builder`: [`FunctionCacheBuilder`], a function's identity and core;
//! - `call`: the context of one call (its key and the options in force);
//! - `flight`: single-flight among the threads of this process (claims do it
//!   across processes, in the cores);
//! - `eviction`: when a store is brought back within its size budget;
//! - `mode`: how a caller waits, the one difference between sync and async
//!   calls: the decision tree is `async` code generic over it, and a sync call
//!   runs it in the blocking mode;
//! - `background`: refreshes, cleanups and reclaims, after the call returned.

mod background;
mod builder;
mod call;
mod eviction;
mod flight;
mod mode;
mod registry;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use self::background::{Background, Every};
pub use self::builder::FunctionCacheBuilder;
pub use self::call::FunctionOptions;
use self::call::{Call, Settings};
use self::eviction::Eviction;
use self::flight::{Flights, Join, Landed, Pilot, computing};
#[cfg(feature = "async")]
use self::mode::Tokio;
use self::mode::{Blocking, Mode, block_on};
pub use self::registry::functions;
use crate::clock;
use crate::codec::{self, MAX_VALUE_LEN};
use crate::config::{self, Backend};
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::key::{Key, KeySpace};
use crate::options::CallOptions;
use crate::outcome::Outcome;
use crate::scope;
use crate::stats::{CacheInfo, Counter, Stats, Timed};

/// A call with owned copies of its arguments, runnable on another thread.
pub type Job<O> = Box<dyn FnOnce() -> O + Send>;

/// An async call with owned copies of its arguments, runnable as a task of its own.
#[cfg(feature = "async")]
pub type TaskJob<O> = std::pin::Pin<Box<dyn Future<Output = O> + Send>>;

/// Longest pause between two looks at a key another process is computing.
const MAX_POLL: Duration = Duration::from_millis(100);
/// How often a process asks a function's core to reclaim what dead writers left.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(3600);

/// The cache of one function: its core, its options and its statistics.
///
/// `#[cachier]` builds one per annotated function; it is also usable directly.
/// Every method may be called from any thread at any time; calls for the same
/// key coordinate (one computes, the others wait), calls for other keys do not.
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
    /// Which of the function caches this process built this is (the first
    /// is 0): its calls' settings are remembered under it (see `Settings::resolve`).
    number: u64,
    /// What keys are hashed under: the function's identity.
    key_space: KeySpace,
    core: Arc<dyn Core>,
    /// The built-in backend of `core`, if it is one.
    backend: Option<Backend>,
    options: FunctionOptions,
    stats: Stats,
    flights: Flights,
    background: Arc<Background>,
    eviction: Eviction,
    cleanup: Every,
    reclaim: Every,
    /// Whether a verbose caller was told of entries of other code versions.
    told_other_versions: AtomicBool,
}

impl FunctionCache {
    /// Starts building the cache of the function identified by `function`, which
    /// should be unique and stable, such as `concat!(module_path!(), "::name")`.
    pub fn builder(function: impl Into<String>) -> FunctionCacheBuilder {
        FunctionCacheBuilder::new(function.into())
    }

    fn new(
        function: String,
        key_space: KeySpace,
        (core, backend): (Box<dyn Core>, Option<Backend>),
        options: FunctionOptions,
    ) -> Self {
        let cache = FunctionCache {
            inner: Arc::new(Inner {
                stats: Stats::new(&function),
                function,
                number: {
                    static BUILT: AtomicU64 = AtomicU64::new(0);
                    BUILT.fetch_add(1, Ordering::Relaxed)
                },
                key_space,
                core: Arc::from(core),
                backend,
                options,
                flights: Flights::default(),
                background: Arc::default(),
                eviction: Eviction::default(),
                cleanup: Every::default(),
                reclaim: Every::default(),
                told_other_versions: AtomicBool::new(false),
            }),
        };
        registry::register(&cache.inner);
        cache
    }

    /// The function's name, as given to [`builder`](Self::builder): for
    /// `#[cachier]` functions, their path (`app::report`,
    /// `<app::Model as app::Scorer>::score`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.function
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
        self.run_blocking(opts, key, Foreground(compute))
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
        self.run_blocking(opts, key, Refreshable(job))
    }

    /// [`call`](Self::call) for an async body: the caller awaits, and waiting for
    /// another caller computing the same key (a task, a thread, or a process)
    /// never blocks the executor's thread. Cores that wait on the network
    /// (MongoDB) run on tokio's blocking pool; the file and memory cores answer
    /// in microseconds and run inline. Dropping the future while it computes
    /// releases its claim: a waiting caller computes instead.
    ///
    /// The future is `Send` when `compute` and the result are.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use cachier_core::{Backend, CallOptions, FunctionCache, Plain};
    /// let cache = FunctionCache::builder("doc::fetch").backend(Backend::Memory).build();
    /// let fetch = |url: &str| {
    ///     let key = cache.key(url);
    ///     let url = url.to_owned();
    ///     let cache = &cache;
    ///     async move { cache.call_async(&CallOptions::DEFAULT, key, async move { Plain(url.len()) }).await.0 }
    /// };
    /// let (a, b, c) = tokio::join!(fetch("https://a"), fetch("https://a"), fetch("https://a"));
    /// assert_eq!((a, b, c), (9, 9, 9));
    /// assert_eq!(cache.info().recalculations, 1);
    /// # });
    /// ```
    #[cfg(feature = "async")]
    pub async fn call_async<O: Outcome + 'static>(
        &self,
        opts: &CallOptions,
        key: Result<Key>,
        compute: impl Future<Output = O>,
    ) -> O {
        match self.inner.begin::<O>(opts, key) {
            Begun::Served(value) => value,
            // Boxed, so that the call's own future (which a hit allocates
            // too) stays small: the rest of the decision tree is large.
            begun => Box::pin(self.inner.finish::<Tokio, O>(begun, Awaited(compute))).await,
        }
    }

    /// [`call_async`](Self::call_async) for `next_time` functions: `job` makes
    /// an owned, `Send` copy of the call, so that a stale entry can be returned
    /// at once while the copy recomputes it as a task of the caller's tokio
    /// runtime (or, outside one, on a thread of its own).
    #[cfg(feature = "async")]
    pub fn call_refreshable_async<'a, O: Outcome + Send + 'static>(
        &'a self,
        opts: &'a CallOptions,
        key: Result<Key>,
        job: impl FnOnce() -> TaskJob<O> + Send + 'a,
    ) -> impl Future<Output = O> + 'a {
        // Boxed, so that the call's future is `Send` by the box's bound alone:
        // rustc cannot always prove it through a closure's type.
        let job: Box<dyn FnOnce() -> TaskJob<O> + Send + 'a> = Box::new(job);
        self.inner
            .finish::<Tokio, O>(self.inner.begin::<O>(opts, key), RefreshableTask(job))
    }

    /// [`wait_for_background`](Self::wait_for_background) without blocking the
    /// executor, for async functions (whose refreshes are tasks of the runtime
    /// this awaits on).
    #[cfg(feature = "async")]
    pub async fn wait_for_background_async(&self) {
        self.inner.background.idle::<Tokio>().await;
    }

    /// A sync call: the part of the decision tree that never waits, then the
    /// rest in the blocking mode, unless the first part served it.
    fn run_blocking<O: Outcome + 'static>(
        &self,
        opts: &CallOptions,
        key: Result<Key>,
        body: impl Body<O>,
    ) -> O {
        match self.inner.begin::<O>(opts, key) {
            Begun::Served(value) => value,
            begun => block_on(self.inner.finish::<Blocking, O>(begun, body)),
        }
    }

    /// Stores `value` as the result for `key` without running the function.
    ///
    /// # Errors
    /// [`Error::NotCacheable`] for a value this function does not cache (an `Err`,
    /// or `None` without `allow_none`); otherwise a failure of the encoding or
    /// the store.
    pub fn precache<O: Outcome>(&self, key: Key, value: O) -> Result<()> {
        let this = &self.inner;
        let settings = Settings::resolve(this.number, &this.options, &CallOptions::DEFAULT);
        let stored = value.stored(settings.allow_none).ok_or(Error::NotCacheable)?;
        let bytes = codec::encode(stored)?;
        let len = bytes.len();
        this.core.set(&key, &Entry::new(this.entry_time(), bytes))?;
        block_on(this.maybe_evict::<Blocking>(&settings, len));
        Ok(())
    }

    /// Removes every entry of this function, and (file core) the entries of
    /// other versions of its code that no process uses. No process is served
    /// a cleared entry once this returns; the file core may still be deleting
    /// their files then, on a thread of its own (README, "What you can rely
    /// on"): a program that must free the disk before it exits calls
    /// [`reclaim`](Self::reclaim) next.
    ///
    /// # Errors
    /// A failure of the store.
    pub fn clear(&self) -> Result<()> {
        self.inner.core.clear()
    }

    /// Removes what the store no longer needs, now rather than in the
    /// background (where it runs once an hour per process, after a store):
    /// with the file core, the entries of other versions of the function's
    /// code that no process holds nor used within a day, the files of
    /// writers that died, and what clears left to delete (see
    /// [`clear`](Self::clear)).
    /// Returns how many entries and files went.
    ///
    /// # Errors
    /// A failure of the store.
    pub fn reclaim(&self) -> Result<u64> {
        self.inner.core.reclaim()
    }

    /// Drops every claim on this function's keys ("being calculated" in Python
    /// cachier's words), so that callers waiting on them compute for themselves.
    ///
    /// # Errors
    /// A failure of the store.
    pub fn clear_being_calculated(&self) -> Result<()> {
        self.inner.core.clear_claims()
    }

    /// The directory of the file core; `None` for other cores.
    #[must_use]
    pub fn dpath(&self) -> Option<PathBuf> {
        self.inner.core.dpath()
    }

    /// The built-in backend its entries live in; `None` for a core of your
    /// own (`core = ...`, a `mongetter`, a `redis_client`).
    #[must_use]
    pub fn backend(&self) -> Option<Backend> {
        self.inner.backend
    }

    /// The function's own options (unset ones: the global params').
    #[must_use]
    pub fn options(&self) -> &FunctionOptions {
        &self.inner.options
    }

    /// This function's counters since the process started.
    #[must_use]
    pub fn info(&self) -> CacheInfo {
        self.inner.stats.snapshot()
    }

    /// The live statistics behind [`info`](Self::info).
    pub(crate) fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Blocks until the background work this process started for this function
    /// (`next_time` refreshes, stale-entry cleanups, reclaims) has finished. Call
    /// it before exiting to keep the results of refreshes still under way.
    pub fn wait_for_background(&self) {
        block_on(self.inner.background.idle::<Blocking>());
    }

    /// The core behind this cache.
    #[must_use]
    pub fn core(&self) -> &dyn Core {
        &*self.inner.core
    }
}

/// A function body as the engine runs it: in the call (a future that the
/// call awaits), or (for `next_time`) from an owned copy in the background.
trait Body<O>: Sized {
    fn run(self) -> impl Future<Output = O>;
    /// Starts a background refresh of `call` with an owned copy of this body,
    /// or gives the body back if it cannot make one.
    fn refresh(self, inner: &Arc<Inner>, call: Call) -> Result<(), Self>;
}

/// A sync body, run when the call's future is polled.
struct Foreground<F>(F);

impl<O, F: FnOnce() -> O> Body<O> for Foreground<F> {
    async fn run(self) -> O {
        (self.0)()
    }
    fn refresh(self, _: &Arc<Inner>, _: Call) -> Result<(), Self> {
        Err(self)
    }
}

/// A sync body that can make an owned copy of itself, refreshed on a thread.
struct Refreshable<F>(F);

impl<O: Outcome + 'static, F: FnOnce() -> Job<O>> Body<O> for Refreshable<F> {
    async fn run(self) -> O {
        (self.0)()()
    }
    fn refresh(self, inner: &Arc<Inner>, call: Call) -> Result<(), Self> {
        let job = (self.0)();
        if let Some(pilot) = inner.refresh_pilot(&call) {
            let this = Arc::clone(inner);
            let refresh = move || this.refresh::<Blocking, O>(call, Foreground(job), pilot);
            inner.background.spawn_thread(&inner.function, refresh);
        }
        Ok(())
    }
}

/// An async body: the future the call awaits.
#[cfg(feature = "async")]
struct Awaited<F>(F);

#[cfg(feature = "async")]
impl<O, F: Future<Output = O>> Body<O> for Awaited<F> {
    fn run(self) -> impl Future<Output = O> {
        self.0
    }
    fn refresh(self, _: &Arc<Inner>, _: Call) -> Result<(), Self> {
        Err(self)
    }
}

/// An async body that can make an owned copy of itself, refreshed as a task.
#[cfg(feature = "async")]
struct RefreshableTask<F>(F);

#[cfg(feature = "async")]
impl<O: Outcome + Send + 'static, F: FnOnce() -> TaskJob<O>> Body<O> for RefreshableTask<F> {
    fn run(self) -> impl Future<Output = O> {
        (self.0)()
    }
    fn refresh(self, inner: &Arc<Inner>, call: Call) -> Result<(), Self> {
        let task = (self.0)();
        if let Some(pilot) = inner.refresh_pilot(&call) {
            let refresh = Arc::clone(inner).refresh::<Tokio, O>(call, Awaited(task), pilot);
            inner.background.spawn_task(&inner.function, refresh);
        }
        Ok(())
    }
}

/// Where the first, synchronous part of a call left it.
enum Begun<O: Outcome> {
    /// Caching is off for this call, or its key could not be built: run the body.
    Uncached,
    /// Compute and store, replacing any entry.
    Overwrite(Call),
    /// Answered from a fresh entry.
    Served(O),
    /// To be decided on what the lookup found, once the core has answered
    /// (`None` for a core that waits on the network: the lookup is awaited).
    Looked(Call, Option<Lookup<O::Stored>>),
}

enum Lookup<T> {
    Fresh(T),
    Stale(T),
    Missing,
}

impl Inner {
    /// The part of the decision tree of a call that never waits: options, key,
    /// and the lookup when the core answers without waiting. A fresh hit ends
    /// here, so that it costs no state machine; everything else goes on in
    /// [`finish`](Self::finish), for sync and async callers alike.
    fn begin<O: Outcome + 'static>(self: &Arc<Self>, opts: &CallOptions, key: Result<Key>) -> Begun<O> {
        let scoped;
        let opts = match scope::current() {
            Some(options) if *opts == CallOptions::DEFAULT => {
                scoped = options;
                &scoped
            }
            _ => opts,
        };
        if !config::caching_enabled() || opts.ignore_cache {
            self.report(opts.verbose, "cache ignored: running the body", None);
            return Begun::Uncached;
        }
        let started = Stats::sample_hit().then(Instant::now);
        let settings = Settings::resolve(self.number, &self.options, opts);
        let call = match key {
            Ok(key) => Call {
                key,
                settings,
                started,
            },
            Err(e) => {
                self.cache_error("building the key", &e);
                return Begun::Uncached;
            }
        };
        self.maybe_cleanup(&settings);
        if opts.overwrite_cache {
            self.tell(&call, "overwriting");
            return Begun::Overwrite(call);
        }
        if self.core.waits_on_network() {
            return Begun::Looked(call, None);
        }
        match self.lookup::<O>(&call, None) {
            Lookup::Fresh(value) => Begun::Served(self.serve(&call, value)),
            found => Begun::Looked(call, Some(found)),
        }
    }

    /// The rest of the decision tree, for callers waiting as `M` says.
    async fn finish<M: Mode, O: Outcome + 'static>(
        self: &Arc<Self>,
        begun: Begun<O>,
        body: impl Body<O>,
    ) -> O {
        let (call, found) = match begun {
            Begun::Served(value) => return value,
            Begun::Uncached => return scope::outside(body.run()).await,
            Begun::Overwrite(call) => return self.compute_and_store::<M, O>(&call, body).await.0,
            Begun::Looked(call, Some(found)) => (call, found),
            Begun::Looked(call, None) => {
                let got = M::get(&self.core, call.key).await;
                let found = self.lookup::<O>(&call, Some(got));
                (call, found)
            }
        };
        match found {
            Lookup::Fresh(value) => self.serve(&call, value),
            Lookup::Stale(value) => {
                self.stats.add(Counter::StaleHits, 1);
                if self.options.next_time {
                    match body.refresh(self, call) {
                        Ok(()) => {
                            self.tell(&call, "stale: returned, refreshing in the background");
                            return O::from_stored(value);
                        }
                        Err(body) => return self.recompute_stale::<M, O>(&call, body).await,
                    }
                }
                self.recompute_stale::<M, O>(&call, body).await
            }
            Lookup::Missing => {
                self.stats.add(Counter::Misses, 1);
                self.tell(&call, "miss");
                self.tell_other_versions(&call);
                self.compute_once::<M, O>(&call, body).await
            }
        }
    }

    /// A hit: counts it and returns the value.
    fn serve<O: Outcome>(&self, call: &Call, value: O::Stored) -> O {
        self.stats.add(Counter::Hits, 1);
        if let Some(started) = call.started {
            self.stats.record(Timed::Hit, started.elapsed());
        }
        self.tell(call, "hit");
        O::from_stored(value)
    }

    async fn recompute_stale<M: Mode, O: Outcome>(self: &Arc<Self>, call: &Call, body: impl Body<O>) -> O {
        self.tell(call, "stale: recomputing");
        self.compute_once::<M, O>(call, body).await
    }

    /// The call's first lookup: what the core holds for its key, decoded
    /// from the entry it lends (or, for a core the call awaited, from its
    /// answer `got`). An unreadable entry is reported, and counts as missing.
    fn lookup<O: Outcome>(&self, call: &Call, got: Option<Result<Option<Entry>>>) -> Lookup<O::Stored> {
        let mut found = Ok(Lookup::Missing);
        let mut judge = |entry: &Entry| found = Self::judge::<O>(call, entry);
        let read = match got {
            None => self.core.read(&call.key, &mut judge),
            Some(got) => got.map(|entry| entry.iter().for_each(judge)),
        };
        if let Err(e) = read {
            self.cache_error("reading an entry (treated as a miss)", &e);
            return Lookup::Missing;
        }
        found.unwrap_or_else(|e| {
            self.cache_error("decoding an entry (treated as a miss)", &e);
            Lookup::Missing
        })
    }

    /// Looks the call's key up again, for a fresh value and its encoding (to
    /// hand to the callers waiting here): an unreadable entry was reported
    /// by the call's first lookup already.
    async fn peek<M: Mode, O: Outcome>(&self, call: &Call) -> Option<(O::Stored, Arc<[u8]>)> {
        let entry = M::get(&self.core, call.key).await.ok()??;
        match Self::judge::<O>(call, &entry) {
            Ok(Lookup::Fresh(value)) => Some((value, entry.value)),
            _ => None,
        }
    }

    /// The value `entry` holds for the call, fresh or stale.
    fn judge<O: Outcome>(call: &Call, entry: &Entry) -> Result<Lookup<O::Stored>> {
        let value = codec::decode::<O::Stored>(&entry.value)?;
        Ok(match call.settings.stale_limit {
            Some(limit) if entry.age(clock::coarse_now()) >= limit => Lookup::Stale(value),
            _ => Lookup::Fresh(value),
        })
    }

    /// Computes the call's key unless another caller or process already does,
    /// in which case waits for its value (within `wait_for_calc_timeout`).
    ///
    /// A computation that ends with nothing to share (an `Err`, `None` without
    /// `allow_none`, a panic, a cancelled task) does not release the waiting
    /// callers all at once: they take turns, one computation at a time. A call
    /// made from within the computation of the same key (re-entrant) runs the
    /// body like an uncached call instead of waiting for itself.
    async fn compute_once<M: Mode, O: Outcome>(self: &Arc<Self>, call: &Call, body: impl Body<O>) -> O {
        let deadline = call
            .settings
            .wait_for_calc_timeout
            .map(|timeout| Instant::now() + timeout);
        loop {
            let flight = match self.flights.join(call.key) {
                Join::Pilot(pilot) => return self.pilot::<M, O>(call, pilot, body, deadline).await,
                Join::Passenger(flight) => flight,
                Join::Reentrant => {
                    self.tell(call, "re-entrant call computing its own key: running the body");
                    return self.compute_and_store::<M, O>(call, body).await.0;
                }
            };
            self.tell(call, "waiting for another caller computing it");
            match flight.wait::<M>(deadline).await {
                Landed::Value(bytes) => match codec::decode::<O::Stored>(&bytes) {
                    Ok(value) => return O::from_stored(value),
                    Err(e) => {
                        self.cache_error("decoding a value from another caller", &e);
                        return self.compute_and_store::<M, O>(call, body).await.0;
                    }
                },
                Landed::TimedOut => {
                    self.tell(call, "gave up waiting (wait_for_calc_timeout): computing");
                    return self.compute_and_store::<M, O>(call, body).await.0;
                }
                Landed::Nothing => {
                    if let Some((value, _)) = self.peek::<M, O>(call).await {
                        return O::from_stored(value);
                    }
                    self.tell(
                        call,
                        "the computation waited for cached nothing: computing in turn",
                    );
                }
            }
        }
    }

    /// The one caller of this process computing the call's key: claims it
    /// across processes, computes and stores, then hands the value to the
    /// callers waiting here.
    async fn pilot<M: Mode, O: Outcome>(
        self: &Arc<Self>,
        call: &Call,
        pilot: Pilot,
        body: impl Body<O>,
        deadline: Option<Instant>,
    ) -> O {
        let key = call.key;
        let mut pause = Duration::from_millis(1);
        let claim = loop {
            match self.claim::<M>(key).await {
                Ok(Some(claim)) => break Some(claim),
                Ok(None) => {}
                Err(e) => {
                    self.cache_error("claiming a key (computing without the claim)", &e);
                    break None;
                }
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                self.tell(call, "gave up waiting (wait_for_calc_timeout): computing");
                break None;
            }
            self.tell(call, "waiting for another process computing it");
            let left = deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()));
            M::sleep(pause.min(left)).await;
            pause = (pause * 2).min(MAX_POLL);
            if let Some((value, bytes)) = self.peek::<M, O>(call).await {
                pilot.land(Some(bytes));
                return O::from_stored(value);
            }
        };
        // Another caller may have stored the value between our lookup and our claim.
        if claim.is_some()
            && let Some((value, bytes)) = self.peek::<M, O>(call).await
        {
            pilot.land(Some(bytes));
            return O::from_stored(value);
        }
        let (outcome, bytes) = self.compute_and_store::<M, O>(call, body).await;
        drop(claim);
        pilot.land(bytes);
        outcome
    }

    /// Runs the body and stores what it returns if that is cacheable; returns the
    /// result and its encoding (for the callers waiting on this computation).
    async fn compute_and_store<M: Mode, O: Outcome>(
        self: &Arc<Self>,
        call: &Call,
        body: impl Body<O>,
    ) -> (O, Option<Arc<[u8]>>) {
        self.stats.add(Counter::Recalculations, 1);
        let started = Instant::now();
        let outcome = computing(&self.flights, call.key, scope::outside(body.run())).await;
        let computed = Instant::now();
        self.stats.record(Timed::Compute, computed - started);
        let Some(stored) = outcome.stored(call.settings.allow_none) else {
            self.tell(call, "result not cached (Err, or None without allow_none)");
            return (outcome, None);
        };
        let bytes = match codec::encode(stored) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.cache_error("encoding the result", &e);
                return (outcome, None);
            }
        };
        let budget = call.settings.budget.max_bytes;
        let limit = [
            call.settings.entry_size_limit,
            budget.and_then(|b| usize::try_from(b).ok()),
        ]
        .into_iter()
        .flatten()
        .fold(MAX_VALUE_LEN, usize::min);
        if bytes.len() > limit {
            let event = format!(
                "result of {} bytes exceeds the size limit of {limit} (entry_size_limit or max_bytes): not stored",
                bytes.len()
            );
            self.tell(call, &event);
            return (outcome, Some(bytes));
        }
        let (key, entry) = (call.key, Entry::new(self.entry_time(), Arc::clone(&bytes)));
        match M::set(&self.core, key, entry).await {
            Ok(()) => {
                self.tell(call, "stored");
                self.maybe_evict::<M>(&call.settings, bytes.len()).await;
                self.maybe_reclaim(computed, call.settings.verbose);
            }
            Err(e) => self.cache_error("storing the result", &e),
        }
        (outcome, Some(bytes))
    }

    /// When an entry stored now was computed. A process-local core's entries
    /// are only ever compared with this process's clock, whose coarse
    /// reading already ages every hit (see `judge`): they take a coarse
    /// reading too, about a quarter of the cost of a precise one, and look
    /// at most a kernel tick older for it. Every other core's entries take
    /// the precise time, which other processes order against their own
    /// records (a segment's removal marks).
    fn entry_time(&self) -> SystemTime {
        if self.core.process_local() {
            clock::coarse_now()
        } else {
            SystemTime::now()
        }
    }

    /// Claims `key` across processes, as [`Core::try_claim`]; a
    /// process-local core is not asked (see [`Core::process_local`]).
    async fn claim<M: Mode>(&self, key: Key) -> Result<Option<Claim>> {
        if self.core.process_local() {
            return Ok(Some(Claim::in_process()));
        }
        M::try_claim(&self.core, key).await
    }

    /// The pilot of a `next_time` refresh of the call's key, unless a caller of
    /// this process computes the key already.
    fn refresh_pilot(&self, call: &Call) -> Option<Pilot> {
        match self.flights.join(call.key) {
            Join::Pilot(pilot) => Some(pilot),
            Join::Passenger(_) | Join::Reentrant => None,
        }
    }

    /// A `next_time` refresh, run in the background by a caller of mode `M`:
    /// recomputes the call's key unless another process holds its claim or has
    /// refreshed it already.
    async fn refresh<M: Mode, O: Outcome>(self: Arc<Self>, call: Call, body: impl Body<O>, pilot: Pilot) {
        let (call, key) = (&call, call.key);
        let claim = match self.claim::<M>(key).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return self.tell(call, "refresh skipped: another process computes it"),
            Err(e) => return self.cache_error("claiming a key to refresh it", &e),
        };
        if let Some((_, bytes)) = self.peek::<M, O>(call).await {
            self.tell(call, "refresh skipped: already fresh");
            return pilot.land(Some(bytes));
        }
        let (_, bytes) = self.compute_and_store::<M, O>(call, body).await;
        drop(claim);
        pilot.land(bytes);
    }

    /// With `cleanup_stale`, deletes stale entries in the background once per
    /// `cleanup_interval`.
    fn maybe_cleanup(self: &Arc<Self>, settings: &Settings) {
        let Some(stale_after) = settings.stale_after.filter(|_| self.options.cleanup_stale) else {
            return;
        };
        if !self.cleanup.due(Instant::now(), settings.cleanup_interval) {
            return;
        }
        let this = Arc::clone(self);
        let verbose = settings.verbose;
        self.background.spawn_thread(&self.function, move || async move {
            let cutoff = SystemTime::now() - stale_after;
            match this.core.delete_stale(cutoff) {
                Ok(n) => this.report(verbose, &format!("cleanup deleted {n} stale entries"), None),
                Err(e) => this.cache_error("deleting stale entries", &e),
            }
        });
    }

    /// After a store of `len` bytes under a budget: an eviction round, in
    /// the storing call, when one is due (see `eviction`).
    async fn maybe_evict<M: Mode>(&self, settings: &Settings, len: usize) {
        let budget = settings.budget;
        if budget.is_unlimited() || !self.eviction.due(&budget, len as u64) {
            return;
        }
        match M::evict(&self.core, budget).await {
            Ok(Some(0)) => {}
            Ok(Some(n)) => {
                self.stats.add(Counter::Evictions, n);
                let event = format!("evicted the {n} least recently used entries (max_entries, max_bytes)");
                self.report(settings.verbose, &event, None);
            }
            Ok(None) => {
                if self.eviction.first_unsupported() {
                    tracing::warn!(
                        function = %self.function,
                        "cachier: this backend keeps no record of use: max_entries and max_bytes are not enforced"
                    );
                }
            }
            Err(e) => self.cache_error("evicting entries (max_entries, max_bytes)", &e),
        }
    }

    /// After a store made at `now`, asks the core in the background to
    /// reclaim what dead writers left behind, at most once per
    /// [`RECLAIM_INTERVAL`].
    fn maybe_reclaim(self: &Arc<Self>, now: Instant, verbose: bool) {
        if !self.reclaim.due(now, RECLAIM_INTERVAL) {
            return;
        }
        let this = Arc::clone(self);
        self.background.spawn_thread(&self.function, move || async move {
            match this.core.reclaim() {
                Ok(0) => {}
                Ok(n) => this.report(
                    verbose,
                    &format!("reclaimed {n} files left by dead writers"),
                    None,
                ),
                Err(e) => this.cache_error("reclaiming files left by dead writers", &e),
            }
        });
    }

    /// Tells a verbose caller, once per process, that the store holds
    /// entries of other versions of the function's code: why a call
    /// recomputes after an edit.
    fn tell_other_versions(&self, call: &Call) {
        if !call.settings.verbose || self.told_other_versions.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok(true) = self.core.has_other_versions() {
            self.tell(
                call,
                "entries from another version of this function exist: its code changed, and they are never served",
            );
        }
    }

    fn cache_error(&self, doing: &str, error: &Error) {
        self.stats.add(Counter::CacheErrors, 1);
        tracing::warn!(function = %self.function, %error, "cachier: cache failure while {doing}");
    }

    /// Reports a decision about the call's key.
    fn tell(&self, call: &Call, event: &str) {
        self.report(call.settings.verbose, event, Some(&call.key));
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
