//! Per-function counters and latency summaries, read by [`CacheInfo`], by
//! [`metrics::render`](crate::metrics::render) and (feature `metrics`)
//! published through the `metrics` crate's facade.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What one function's cache has done since the process started.
///
/// Every cached call is counted once as a hit, a miss or a stale hit, by what its
/// lookup found; `recalculations` counts runs of the body.
///
/// ```
/// let info = cachier_core::CacheInfo::default();
/// assert_eq!(info.calls(), 0);
/// assert_eq!(info.hit_time.p99, std::time::Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Calls that found a fresh entry.
    pub hits: u64,
    /// Calls that found no usable entry.
    pub misses: u64,
    /// Calls that found a stale entry (served at once with `next_time`, else recomputed).
    pub stale_hits: u64,
    /// Runs of the body under the cache, in the foreground or the background.
    pub recalculations: u64,
    /// Failures of the cache itself (I/O, corrupt entries, encoding, server errors).
    pub cache_errors: u64,
    /// Entries this process evicted to keep the store within its budget
    /// (`max_entries`, `max_bytes`).
    pub evictions: u64,
    /// How long hits took in the engine, from the call to its value (the
    /// key aside). One hit in [`HIT_SAMPLING`] per thread is timed, so that
    /// timing costs a hit next to nothing.
    pub hit_time: Latency,
    /// How long runs of the body took (every one is timed).
    pub compute_time: Latency,
}

impl CacheInfo {
    /// Calls that looked up the cache: hits, misses and stale hits.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.hits + self.misses + self.stale_hits
    }
}

/// One hit in this many (per thread) is timed for [`CacheInfo::hit_time`].
pub const HIT_SAMPLING: u32 = 16;

/// How long the timed events of one kind took: their number, total, and
/// quantiles, each within an eighth of the true value.
///
/// ```
/// let latency = cachier_core::Latency::default();
/// assert_eq!((latency.count, latency.p50), (0, std::time::Duration::ZERO));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// How many were timed.
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
}

/// The counters, each with its Prometheus name and help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    Hits,
    Misses,
    StaleHits,
    Recalculations,
    CacheErrors,
    Evictions,
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::Hits,
        Counter::Misses,
        Counter::StaleHits,
        Counter::Recalculations,
        Counter::CacheErrors,
        Counter::Evictions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Hits => "cachier_hits_total",
            Counter::Misses => "cachier_misses_total",
            Counter::StaleHits => "cachier_stale_hits_total",
            Counter::Recalculations => "cachier_recalculations_total",
            Counter::CacheErrors => "cachier_cache_errors_total",
            Counter::Evictions => "cachier_evictions_total",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Counter::Hits => "Calls answered from a fresh entry.",
            Counter::Misses => "Calls that found no usable entry.",
            Counter::StaleHits => "Calls that found a stale entry (served with next_time, else recomputed).",
            Counter::Recalculations => "Runs of a function's body under its cache.",
            Counter::CacheErrors => {
                "Failures of a cache itself (I/O, corrupt entries, server errors); the calls still returned."
            }
            Counter::Evictions => {
                "Entries evicted to keep a store within its budget (max_entries, max_bytes)."
            }
        }
    }
}

/// The timed events, each with its Prometheus name and help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timed {
    Hit,
    Compute,
}

impl Timed {
    pub const ALL: [Timed; 2] = [Timed::Hit, Timed::Compute];

    pub fn name(self) -> &'static str {
        match self {
            Timed::Hit => "cachier_hit_duration_seconds",
            Timed::Compute => "cachier_compute_duration_seconds",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Timed::Hit => "Time the engine took to answer a hit (one hit in 16 per thread is timed).",
            Timed::Compute => "Time a run of a function's body took.",
        }
    }
}

/// The live counters and histograms of one function.
pub(crate) struct Stats {
    counts: [Counts; STRIPES],
    times: [Histogram; Timed::ALL.len()],
    #[cfg(feature = "metrics")]
    facade: facade::Handles,
}

impl Stats {
    /// Fresh statistics for the function named `function` (the label of its
    /// series in the `metrics` facade, whose recorder must be installed by then).
    pub fn new(function: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = function;
        Stats {
            counts: Default::default(),
            times: Default::default(),
            #[cfg(feature = "metrics")]
            facade: facade::Handles::new(function),
        }
    }

    /// Counts `n` in the stripe of the calling thread: threads counting
    /// at once seldom write the same cache line.
    pub fn add(&self, counter: Counter, n: u64) {
        let stripe = Stripe::of_thread();
        stripe.add(&self.counts[stripe.0].0[counter as usize], n);
        #[cfg(feature = "metrics")]
        self.facade.add(counter, n);
    }

    pub fn record(&self, timed: Timed, took: Duration) {
        self.times[timed as usize].record(took);
        #[cfg(feature = "metrics")]
        self.facade.record(timed, took);
    }

    /// Whether this hit is one to time: one in [`HIT_SAMPLING`] per thread.
    pub fn sample_hit() -> bool {
        thread_local!(static HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        HITS.with(|hits| {
            let n = hits.get().wrapping_add(1);
            hits.set(n);
            n % HIT_SAMPLING == 1
        })
    }

    pub fn times(&self, timed: Timed) -> Buckets {
        self.times[timed as usize].snapshot()
    }

    /// The total of `counter` over the stripes.
    pub fn count(&self, counter: Counter) -> u64 {
        self.counts
            .iter()
            .map(|stripe| stripe.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub fn snapshot(&self) -> CacheInfo {
        let read = |c: Counter| self.count(c);
        CacheInfo {
            hits: read(Counter::Hits),
            misses: read(Counter::Misses),
            stale_hits: read(Counter::StaleHits),
            recalculations: read(Counter::Recalculations),
            cache_errors: read(Counter::CacheErrors),
            evictions: read(Counter::Evictions),
            hit_time: self.times(Timed::Hit).latency(),
            compute_time: self.times(Timed::Compute).latency(),
        }
    }
}

/// How many stripes threads hold, one thread each, and how many more the
/// threads past them share.
const HELD: usize = 8;
const SHARED: usize = 8;
/// How many stripes each function's counters are spread over.
const STRIPES: usize = HELD + SHARED;

/// One copy of every counter, alone on its cache lines (two lines: adjacent
/// lines are fetched together).
#[derive(Default)]
#[repr(align(128))]
struct Counts([AtomicU64; Counter::ALL.len()]);

/// The stripe a thread counts in: one of the [`HELD`] stripes, which the
/// thread writes alone while it lives, or else one of the [`SHARED`] ones.
///
/// A thread takes the lowest held stripe no living thread holds when it
/// first counts, and gives it back when it ends: a thread started after
/// another ended counts where that one did, never where a long-lived
/// thread counts (were stripes taken in turn, pools that start and end
/// threads would share a long-lived thread's stripe one time in eight).
/// Threads past [`HELD`] at once take the shared stripes in turn.
#[derive(Clone, Copy)]
struct Stripe(usize);

/// Bit `i` is set while a living thread holds stripe `i`.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

impl Stripe {
    /// The calling thread's stripe.
    fn of_thread() -> Stripe {
        thread_local!(static STRIPE: Holder = Holder::take());
        // A count made by another thread-local's destructor, after this
        // one's, goes to a shared stripe.
        STRIPE.try_with(|holder| holder.0).unwrap_or(Stripe(HELD))
    }

    /// Adds `n` to `counter`, one of this stripe's.
    fn add(self, counter: &AtomicU64, n: u64) {
        if self.0 < HELD {
            // Only this thread writes here: no locked instruction needed.
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A thread's hold on its stripe, given back when the thread ends.
struct Holder(Stripe);

impl Holder {
    fn take() -> Holder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        loop {
            let free = (!TAKEN.load(Ordering::Relaxed)).trailing_zeros() as usize;
            if free >= HELD {
                let shared = HELD + NEXT.fetch_add(1, Ordering::Relaxed) % SHARED;
                return Holder(Stripe(shared));
            }
            // Acquire, to see every count of the thread that gave it back.
            if TAKEN.fetch_or(1 << free, Ordering::Acquire) & (1 << free) == 0 {
                return Holder(Stripe(free));
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.0.0 < HELD {
            TAKEN.fetch_and(!(1 << self.0.0), Ordering::Release);
        }
    }
}

/// Sub-buckets per power of two: a bucket spans at most a quarter of its
/// lower bound, so its middle is within an eighth of any value in it.
const SUB: u32 = 4;
/// Buckets for every `u64` of nanoseconds.
const BUCKETS: usize = (SUB * (64 - SUB.trailing_zeros() + 1)) as usize;

/// A histogram of durations in log-linear buckets of nanoseconds, kept in
/// one copy per stripe (see [`Stripe`]), each made when a thread of its
/// stripe first records: threads timing hits at once seldom write the same
/// line, and a function timed on one thread holds one copy.
#[derive(Default)]
struct Histogram([OnceLock<Box<Tally>>; STRIPES]);

/// One stripe's copy of a [`Histogram`].
struct Tally {
    buckets: [AtomicU64; BUCKETS],
    total_nanos: AtomicU64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            total_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let stripe = Stripe::of_thread();
        let tally = self.0[stripe.0].get_or_init(Box::default);
        stripe.add(&tally.buckets[bucket(nanos)], 1);
        stripe.add(&tally.total_nanos, nanos);
    }

    /// The stripes' copies added up.
    fn snapshot(&self) -> Buckets {
        let mut sum = Buckets::default();
        for tally in self.0.iter().filter_map(OnceLock::get) {
            sum.merge(&Buckets {
                counts: tally.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
                total_nanos: tally.total_nanos.load(Ordering::Relaxed),
            });
        }
        sum
    }
}

/// The bucket of `nanos`: values under [`SUB`] have one each; above, each
/// power of two is split into [`SUB`] equal parts.
fn bucket(nanos: u64) -> usize {
    let bits = SUB.trailing_zeros();
    if nanos < u64::from(SUB) {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros();
    let part = (nanos >> (exponent - bits)) & u64::from(SUB - 1);
    ((exponent - bits + 1) * SUB) as usize + part as usize
}

/// The smallest value of bucket `index`, and its width.
fn bounds(index: usize) -> (u64, u64) {
    let (index, bits) = (index as u64, u64::from(SUB.trailing_zeros()));
    let sub = u64::from(SUB);
    if index < sub {
        return (index, 1);
    }
    let exponent = index / sub + bits - 1;
    let width = 1u64 << (exponent - bits);
    ((1u64 << exponent) + (index % sub) * width, width)
}

/// What a histogram held at one moment; histograms of one name add up.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buckets {
    counts: Vec<u64>,
    total_nanos: u64,
}

impl Buckets {
    pub fn merge(&mut self, other: &Buckets) {
        self.counts.resize(BUCKETS, 0);
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total_nanos += other.total_nanos;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.total_nanos)
    }

    /// The `q`-quantile (`0.0..=1.0`): the middle of the bucket holding it;
    /// `None` if nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        // The rank of the quantile, from 1 to `count`.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count.max(1));
        let mut seen = 0;
        let index = self.counts.iter().position(|&n| {
            seen += n;
            seen >= rank
        })?;
        let (low, width) = bounds(index);
        Some(Duration::from_nanos(low + width / 2))
    }

    pub fn latency(&self) -> Latency {
        let at = |q| self.quantile(q).unwrap_or_default();
        Latency {
            count: self.count(),
            total: self.total(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
        }
    }
}

/// Every counter and histogram published through the `metrics` crate's
/// facade, with the same names and labels as [`metrics::render`](crate::metrics::render).
#[cfg(feature = "metrics")]
mod facade {
    use std::time::Duration;

    use super::{Counter, Timed};

    pub struct Handles {
        counters: [metrics::Counter; Counter::ALL.len()],
        histograms: [metrics::Histogram; Timed::ALL.len()],
    }

    impl Handles {
        /// Registers this function's series with the recorder installed now.
        pub fn new(function: &str) -> Self {
            Handles {
                counters: Counter::ALL.map(|counter| {
                    metrics::describe_counter!(counter.name(), counter.help());
                    metrics::counter!(counter.name(), "function" => function.to_owned())
                }),
                histograms: Timed::ALL.map(|timed| {
                    metrics::describe_histogram!(timed.name(), metrics::Unit::Seconds, timed.help());
                    metrics::histogram!(timed.name(), "function" => function.to_owned())
                }),
            }
        }

        pub fn add(&self, counter: Counter, n: u64) {
            self.counters[counter as usize].increment(n);
        }

        pub fn record(&self, timed: Timed, took: Duration) {
            self.histograms[timed as usize].record(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `record(t)` `t` times on each thread `t` of `2 * STRIPES`, all
    /// alive at once (so that they hold every held stripe and share the
    /// shared ones); returns the number of threads.
    fn on_every_stripe(record: impl Fn(u64) + Sync) -> u64 {
        let threads = 2 * STRIPES as u64;
        let all_alive = std::sync::Barrier::new(threads as usize);
        std::thread::scope(|scope| {
            for thread in 1..=threads {
                let (record, all_alive) = (&record, &all_alive);
                scope.spawn(move || {
                    all_alive.wait();
                    (0..thread).for_each(|_| record(thread));
                });
            }
        });
        threads
    }

    /// Threads ending and starting while others count lose no count: a
    /// thread taking a held stripe goes on from its last holder's counts.
    #[test]
    fn counts_survive_threads_ending_and_starting() {
        let stats = Stats::new("tests::churn");
        let (generations, per_thread) = (50, 1000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..generations {
                        std::thread::scope(|inner| {
                            inner.spawn(|| (0..per_thread).for_each(|_| stats.add(Counter::Hits, 1)));
                        });
                    }
                });
            }
        });
        assert_eq!(stats.count(Counter::Hits), 4 * generations * per_thread);
    }

    #[test]
    fn counts_of_every_thread_add_up() {
        let stats = Stats::new("tests::counts");
        let threads = on_every_stripe(|_| stats.add(Counter::Hits, 1));
        stats.add(Counter::Misses, 5);
        assert_eq!(stats.count(Counter::Hits), threads * (threads + 1) / 2);
        assert_eq!(
            (stats.snapshot().hits, stats.snapshot().misses),
            (threads * (threads + 1) / 2, 5)
        );
    }

    /// Thread `t` times `t` hits of `t` µs each: the latency read back
    /// holds every one, whichever stripe it went to.
    #[test]
    fn times_of_every_thread_add_up() {
        let stats = Stats::new("tests::times");
        let threads = on_every_stripe(|t| stats.record(Timed::Hit, Duration::from_micros(t)));
        let hit_time = stats.snapshot().hit_time;
        assert_eq!(hit_time.count, threads * (threads + 1) / 2);
        let squares: u64 = (1..=threads).map(|t| t * t).sum();
        assert_eq!(hit_time.total, Duration::from_micros(squares));
        assert_eq!(stats.snapshot().compute_time.count, 0);
    }

    #[test]
    fn buckets_cover_every_value_and_stay_within_an_eighth() {
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for nanos in (0..5_000).chain([999_999, 1 << 40, u64::MAX / 3, u64::MAX]) {
            let (low, width) = bounds(bucket(nanos));
            assert!((low..=low.saturating_add(width - 1)).contains(&nanos), "{nanos}");
            let middle = (low + width / 2) as f64;
            assert!(
                (middle - nanos as f64).abs() <= nanos as f64 / 8.0 + 1.0,
                "{nanos}"
            );
        }
    }

    #[test]
    fn quantiles_come_from_the_recorded_values() {
        let histogram = Histogram::default();
        assert_eq!(histogram.snapshot().quantile(0.5), None);
        for micros in 1..=100 {
            histogram.record(Duration::from_micros(micros));
        }
        let buckets = histogram.snapshot();
        let near = |q: f64, micros: f64| {
            let got = buckets.quantile(q).unwrap().as_secs_f64() * 1e6;
            assert!(
                (got - micros).abs() <= micros / 8.0,
                "q{q}: {got} µs, not {micros}"
            );
        };
        near(0.5, 50.0);
        near(0.9, 90.0);
        near(0.99, 99.0);
        assert_eq!(buckets.count(), 100);
        assert_eq!(buckets.total(), Duration::from_micros(5_050));
        let mut merged = Buckets::default();
        merged.merge(&buckets);
        merged.merge(&buckets);
        assert_eq!(
            (merged.count(), merged.quantile(0.5)),
            (200, buckets.quantile(0.5))
        );
    }
}
