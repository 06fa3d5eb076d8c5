//! The behaviour every core must show, as a reusable test suite (feature `contract`).
//!
//! Each check takes a factory that returns a fresh, empty core, and panics on a
//! violation. [`core_contract!`](crate::core_contract) turns all of them into
//! `#[test]`s, so a new core (including one of your own) gets the whole suite
//! with one line:
//!
//! ```ignore
//! mod my_store {
//!     cachier_core::core_contract!(|| Box::new(MyStore::connect_fresh()) as Box<dyn cachier_core::Core>);
//! }
//! ```
//!
//! The checks cover the core itself (storage, claims, clearing) and the engine
//! running on it (hits, misses, staleness, `next_time`, single-flight,
//! non-cacheable results, panics, waiting, size limits, cleanup).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::{Budget, CallOptions, Core, Entry, FunctionCache, Job, Key, OkOnly, Plain, SomeOnly};

/// Makes a fresh, empty core.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn Core>;

/// Generates one `#[test]` per check of this module, each on cores from `$factory`.
#[macro_export]
macro_rules! core_contract {
    ($factory:expr) => {
        $crate::core_contract!(@each $factory;
            missing_keys_read_as_none, stored_entries_read_back, reads_lend_what_gets_return,
            stores_replace, keys_are_independent,
            claims_are_exclusive_until_dropped, clear_removes_every_entry, clear_claims_frees_keys,
            delete_stale_removes_only_older_entries, evictions_bring_the_store_within_its_budget,
            a_second_call_is_a_hit, arguments_are_told_apart,
            errors_are_returned_not_cached, none_is_cached_only_with_allow_none,
            a_panicking_body_caches_nothing_and_blocks_nobody, concurrent_cold_callers_compute_once,
            stale_entries_are_recomputed, next_time_serves_stale_and_refreshes_once, max_age_forces_recomputation,
            ignore_and_overwrite, precached_values_are_served, clear_forces_recomputation,
            oversized_results_are_returned_not_stored, waiters_take_the_claim_holders_value,
            wait_for_calc_timeout_bounds_waiting, cleanup_deletes_stale_entries);
    };
    (@each $factory:expr; $($check:ident),* $(,)?) => {$(
        #[test]
        fn $check() {
            $crate::contract::$check(&$factory)
        }
    )*};
}

fn key(n: u64) -> Key {
    Key::new("contract::f", &n).expect("u64 keys always encode")
}

fn entry(age: Duration, value: &[u8]) -> Entry {
    Entry::new(SystemTime::now() - age, value)
}

fn cache(factory: Factory<'_>) -> crate::FunctionCacheBuilder {
    FunctionCache::builder("contract::f").core(factory())
}

/// A function body that counts its runs and returns the run number.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl Counter {
    fn run(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn runs(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn call(cache: &FunctionCache, arg: u64, body: &Counter) -> u64 {
    cache
        .call(&CallOptions::DEFAULT, cache.key(&arg), || Plain(body.run()))
        .0
}

/// `get` of a key never stored is `None`.
pub fn missing_keys_read_as_none(factory: Factory<'_>) {
    assert!(factory().get(&key(1)).unwrap().is_none());
}

/// `set` then `get` returns the value and its time (to the millisecond).
pub fn stored_entries_read_back(factory: Factory<'_>) {
    let core = factory();
    let stored = entry(Duration::from_secs(5), b"value");
    core.set(&key(1), &stored).unwrap();
    let read = core.get(&key(1)).unwrap().expect("the stored entry");
    assert_eq!(read.value, stored.value);
    let drift = read
        .computed_at
        .duration_since(stored.computed_at)
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift < Duration::from_millis(1),
        "computed_at drifted by {drift:?}"
    );
}

/// `read` lends the entry `get` returns, and lends nothing for a missing key.
pub fn reads_lend_what_gets_return(factory: Factory<'_>) {
    let core = factory();
    core.set(&key(1), &entry(Duration::from_secs(5), b"value"))
        .unwrap();
    let mut lent = Vec::new();
    core.read(&key(1), &mut |entry| lent.push(entry.clone())).unwrap();
    core.read(&key(2), &mut |entry| lent.push(entry.clone())).unwrap();
    assert_eq!(lent, [core.get(&key(1)).unwrap().expect("the stored entry")]);
}

/// A second `set` of one key replaces the first.
pub fn stores_replace(factory: Factory<'_>) {
    let core = factory();
    core.set(&key(1), &entry(Duration::ZERO, b"old")).unwrap();
    core.set(&key(1), &entry(Duration::ZERO, b"new")).unwrap();
    assert_eq!(&*core.get(&key(1)).unwrap().unwrap().value, b"new");
}

/// Entries of different keys do not affect each other.
pub fn keys_are_independent(factory: Factory<'_>) {
    let core = factory();
    core.set(&key(1), &entry(Duration::ZERO, b"one")).unwrap();
    core.set(&key(2), &entry(Duration::ZERO, b"two")).unwrap();
    assert_eq!(&*core.get(&key(1)).unwrap().unwrap().value, b"one");
    assert_eq!(&*core.get(&key(2)).unwrap().unwrap().value, b"two");
}

/// Only one claim of a key is held at a time; dropping it frees the key.
pub fn claims_are_exclusive_until_dropped(factory: Factory<'_>) {
    let core = factory();
    let claim = core
        .try_claim(&key(1))
        .unwrap()
        .expect("a free key can be claimed");
    assert!(
        core.try_claim(&key(1)).unwrap().is_none(),
        "a claimed key was claimed twice"
    );
    let other = core.try_claim(&key(2)).unwrap();
    assert!(other.is_some(), "claims of other keys are independent");
    drop(claim);
    assert!(
        core.try_claim(&key(1)).unwrap().is_some(),
        "a dropped claim still blocks"
    );
}

/// `clear` removes every entry.
pub fn clear_removes_every_entry(factory: Factory<'_>) {
    let core = factory();
    core.clear().expect("clearing an empty core works");
    for n in 0..3 {
        core.set(&key(n), &entry(Duration::ZERO, b"v")).unwrap();
    }
    core.clear().unwrap();
    assert!((0..3).all(|n| core.get(&key(n)).unwrap().is_none()));
}

/// `clear_claims` frees keys whose claims are still held.
pub fn clear_claims_frees_keys(factory: Factory<'_>) {
    let core = factory();
    let _stuck = core
        .try_claim(&key(1))
        .unwrap()
        .expect("a free key can be claimed");
    core.clear_claims().unwrap();
    assert!(
        core.try_claim(&key(1)).unwrap().is_some(),
        "the claim survived clear_claims"
    );
}

/// `delete_stale` removes the entries computed before the cutoff, and only them.
pub fn delete_stale_removes_only_older_entries(factory: Factory<'_>) {
    let core = factory();
    core.set(&key(1), &entry(Duration::from_secs(7200), b"old"))
        .unwrap();
    core.set(&key(2), &entry(Duration::ZERO, b"new")).unwrap();
    let deleted = core
        .delete_stale(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(core.get(&key(1)).unwrap().is_none());
    assert!(core.get(&key(2)).unwrap().is_some());
}

/// `evict` leaves as many entries as the budget allows (or, from a core that
/// keeps no record of use, all of them) and says how many went.
pub fn evictions_bring_the_store_within_its_budget(factory: Factory<'_>) {
    let core = factory();
    for n in 0..3 {
        core.set(&key(n), &entry(Duration::ZERO, b"v")).unwrap();
    }
    let left = |core: &dyn Core| (0..3).filter(|&n| core.get(&key(n)).unwrap().is_some()).count();
    match core.evict(Budget::new().max_entries(1)).unwrap() {
        Some(evicted) => {
            assert_eq!((evicted, left(&*core)), (2, 1));
            assert_eq!(core.evict(Budget::new().max_bytes(0)).unwrap(), Some(1));
            assert_eq!(left(&*core), 0);
        }
        None => assert_eq!(left(&*core), 3, "a core that cannot evict removed entries"),
    }
}

/// The first call computes; the second is served from the cache.
pub fn a_second_call_is_a_hit(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let body = Counter::default();
    assert_eq!(call(&cache, 7, &body), 1);
    assert_eq!(call(&cache, 7, &body), 1);
    let info = cache.info();
    assert_eq!(
        (info.misses, info.hits, info.recalculations, info.cache_errors),
        (1, 1, 1, 0)
    );
}

/// `f(1, 23)` and `f(12, 3)` are different calls.
pub fn arguments_are_told_apart(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let add = |a: u64, b: u64| {
        cache
            .call(&CallOptions::DEFAULT, cache.key(&(a, b)), || Plain(a * 100 + b))
            .0
    };
    assert_eq!(add(1, 23), 123);
    assert_eq!(add(12, 3), 1203);
    assert_eq!(cache.info().recalculations, 2);
}

/// `Err` results are returned and never cached.
pub fn errors_are_returned_not_cached(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let body = Counter::default();
    let fallible = || -> Result<u64, String> {
        cache
            .call(&CallOptions::DEFAULT, cache.key(&1u8), || {
                OkOnly(Err::<u64, _>(format!("failure {}", body.run())))
            })
            .0
    };
    assert_eq!(fallible(), Err("failure 1".into()));
    assert_eq!(fallible(), Err("failure 2".into()));
    let ok = cache
        .call(&CallOptions::DEFAULT, cache.key(&1u8), || {
            OkOnly(Ok::<u64, String>(42))
        })
        .0;
    assert_eq!(ok, Ok(42));
    let cached = cache
        .call(&CallOptions::DEFAULT, cache.key(&1u8), || {
            OkOnly(Ok::<u64, String>(0))
        })
        .0;
    assert_eq!(cached, Ok(42), "the Ok value was not cached");
}

/// `None` is cached only with `allow_none`.
pub fn none_is_cached_only_with_allow_none(factory: Factory<'_>) {
    for allow_none in [false, true] {
        let cache = cache(factory).allow_none(allow_none).build();
        let body = Counter::default();
        for _ in 0..2 {
            let got = cache.call(&CallOptions::DEFAULT, cache.key(&1u8), || {
                body.run();
                SomeOnly(None::<u64>)
            });
            assert_eq!(got.0, None);
        }
        assert_eq!(
            body.runs(),
            if allow_none { 1 } else { 2 },
            "allow_none = {allow_none}"
        );
    }
}

/// A panic propagates, stores nothing, and the next caller computes at once.
pub fn a_panicking_body_caches_nothing_and_blocks_nobody(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.call(&CallOptions::DEFAULT, cache.key(&1u8), || -> Plain<u64> {
            panic!("body failed")
        })
    }));
    assert!(panicked.is_err(), "the panic must reach the caller");
    assert!(cache.core().get(&cache.key(&1u8).unwrap()).unwrap().is_none());
    assert!(
        cache
            .core()
            .try_claim(&cache.key(&1u8).unwrap())
            .unwrap()
            .is_some(),
        "the panic left a claim"
    );
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 1);
}

/// Sixteen threads calling one cold key at once run the body once and all get its value.
pub fn concurrent_cold_callers_compute_once(factory: Factory<'_>) {
    const THREADS: u64 = 16;
    let cache = cache(factory).build();
    let body = Counter::default();
    let start = Barrier::new(THREADS as usize);
    let values: Vec<u64> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    cache
                        .call(&CallOptions::DEFAULT, cache.key(&1u8), || {
                            // Finish only once every caller has looked and missed, so
                            // that all of them overlap this computation.
                            while cache.info().misses < THREADS {
                                thread::yield_now();
                            }
                            Plain(body.run())
                        })
                        .0
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(body.runs(), 1, "the body ran more than once");
    assert!(values.iter().all(|&v| v == 1), "{values:?}");
}

/// Without `next_time`, a stale entry is recomputed before returning.
pub fn stale_entries_are_recomputed(factory: Factory<'_>) {
    let cache = cache(factory).stale_after(Duration::ZERO).build();
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 1);
    assert_eq!(call(&cache, 1, &body), 2);
    let info = cache.info();
    assert_eq!((info.misses, info.stale_hits, info.recalculations), (1, 1, 2));
    let fresh = self::cache(factory)
        .stale_after(Duration::from_secs(3600))
        .build();
    assert_eq!(call(&fresh, 1, &body), 3);
    assert_eq!(call(&fresh, 1, &body), 3, "a fresh entry was recomputed");
}

/// With `next_time`, a stale entry is returned at once and refreshed by one
/// background computation, however many callers see it meanwhile.
pub fn next_time_serves_stale_and_refreshes_once(factory: Factory<'_>) {
    let cache = cache(factory).stale_after(Duration::ZERO).next_time(true).build();
    let body = Counter::default();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let call = || {
        let (body, gate) = (body.clone(), Arc::clone(&gate));
        cache
            .call_refreshable(
                &CallOptions::DEFAULT,
                cache.key(&1u8),
                move || -> Job<Plain<u64>> {
                    Box::new(move || {
                        let run = body.run();
                        if run > 1 {
                            let (open, opened) = &*gate;
                            drop(opened.wait_while(open.lock().unwrap(), |open| !*open).unwrap());
                        }
                        Plain(run)
                    })
                },
            )
            .0
    };
    assert_eq!(call(), 1, "a miss computes in the foreground");
    // The refresh is held at the gate: every stale call meanwhile returns at once.
    for _ in 0..8 {
        assert_eq!(call(), 1);
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    cache.wait_for_background();
    assert_eq!(body.runs(), 2, "one refresh for all the stale calls");
    assert_eq!(call(), 2, "the refreshed value is served");
    cache.wait_for_background();
    assert_eq!(cache.info().stale_hits, 9);
}

/// `max_age` makes younger entries stale for one call.
pub fn max_age_forces_recomputation(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 1);
    let strict = CallOptions::new().max_age(Duration::ZERO);
    assert_eq!(cache.call(&strict, cache.key(&1u64), || Plain(body.run())).0, 2);
    assert_eq!(call(&cache, 1, &body), 2, "the recomputed value was stored");
}

/// `ignore_cache` neither reads nor writes; `overwrite_cache` recomputes and stores.
pub fn ignore_and_overwrite(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let body = Counter::default();
    let with = |opts: CallOptions| cache.call(&opts, cache.key(&1u64), || Plain(body.run())).0;
    assert_eq!(with(CallOptions::new().ignore_cache(true)), 1);
    assert_eq!(call(&cache, 1, &body), 2, "ignore_cache stored its result");
    assert_eq!(
        with(CallOptions::new().ignore_cache(true)),
        3,
        "ignore_cache read the cache"
    );
    assert_eq!(with(CallOptions::new().overwrite_cache(true)), 4);
    assert_eq!(call(&cache, 1, &body), 4, "overwrite_cache did not store");
}

/// A precached value is served without running the body.
pub fn precached_values_are_served(factory: Factory<'_>) {
    let cache = cache(factory).build();
    cache.precache(cache.key(&1u64).unwrap(), Plain(99u64)).unwrap();
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 99);
    assert_eq!(body.runs(), 0);
    let refused = cache.precache(cache.key(&2u64).unwrap(), OkOnly(Err::<u64, &str>("no")));
    assert!(matches!(refused, Err(crate::Error::NotCacheable)));
}

/// After `clear`, calls compute again.
pub fn clear_forces_recomputation(factory: Factory<'_>) {
    let cache = cache(factory).build();
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 1);
    cache.clear().unwrap();
    assert_eq!(call(&cache, 1, &body), 2);
}

/// Results encoded larger than `entry_size_limit` are returned but not stored.
pub fn oversized_results_are_returned_not_stored(factory: Factory<'_>) {
    let cache = cache(factory).entry_size_limit(64).build();
    let runs = Counter::default();
    let big = || {
        cache
            .call(&CallOptions::DEFAULT, cache.key(&1u8), || {
                Plain(vec![runs.run() as u8; 1000])
            })
            .0
    };
    assert_eq!(big(), vec![1; 1000]);
    assert_eq!(big(), vec![2; 1000]);
    let small = cache
        .call(&CallOptions::DEFAULT, cache.key(&2u8), || Plain(vec![7u8; 8]))
        .0;
    assert_eq!(small, vec![7; 8]);
    let again = cache
        .call(&CallOptions::DEFAULT, cache.key(&2u8), || Plain(Vec::<u8>::new()))
        .0;
    assert_eq!(again, vec![7; 8], "a small result was not stored");
}

/// A caller that finds the key claimed (by another process, say) waits and takes
/// the value the claim holder stores, without running the body.
///
/// A [process-local](Core::process_local) core is never asked for claims:
/// its callers wait on each other in the engine, as
/// [`concurrent_cold_callers_compute_once`] checks.
pub fn waiters_take_the_claim_holders_value(factory: Factory<'_>) {
    let cache = cache(factory).build();
    if cache.core().process_local() {
        return;
    }
    let key = cache.key(&1u64).unwrap();
    let claim = cache
        .core()
        .try_claim(&key)
        .unwrap()
        .expect("a free key can be claimed");
    let body = Counter::default();
    thread::scope(|scope| {
        let waiter = scope.spawn(|| call(&cache, 1, &body));
        while cache.info().misses == 0 {
            thread::yield_now();
        }
        let value = crate::codec::encode(&42u64).unwrap();
        cache
            .core()
            .set(&key, &Entry::new(SystemTime::now(), value))
            .unwrap();
        drop(claim);
        assert_eq!(waiter.join().unwrap(), 42);
    });
    assert_eq!(
        body.runs(),
        0,
        "the waiter computed instead of taking the stored value"
    );
}

/// A claim that is never released blocks callers only for `wait_for_calc_timeout`.
pub fn wait_for_calc_timeout_bounds_waiting(factory: Factory<'_>) {
    let cache = cache(factory)
        .wait_for_calc_timeout(Duration::from_millis(20))
        .build();
    let _hung = cache
        .core()
        .try_claim(&cache.key(&1u64).unwrap())
        .unwrap()
        .expect("a free key can be claimed");
    let body = Counter::default();
    assert_eq!(call(&cache, 1, &body), 1);
    assert_eq!(
        call(&cache, 1, &body),
        1,
        "the result computed after the timeout was not stored"
    );
}

/// With `cleanup_stale`, calls delete stale entries in the background.
pub fn cleanup_deletes_stale_entries(factory: Factory<'_>) {
    let cache = cache(factory)
        .stale_after(Duration::from_secs(3600))
        .cleanup_stale(true)
        .build();
    let old = cache.key(&1u64).unwrap();
    let value = crate::codec::encode(&1u64).unwrap();
    cache
        .core()
        .set(
            &old,
            &Entry::new(SystemTime::now() - Duration::from_secs(7200), value),
        )
        .unwrap();
    let body = Counter::default();
    call(&cache, 2, &body);
    cache.wait_for_background();
    assert!(
        cache.core().get(&old).unwrap().is_none(),
        "the stale entry survived cleanup"
    );
    assert!(cache.core().get(&cache.key(&2u64).unwrap()).unwrap().is_some());
}
