//! The functions the benchmark binaries compare: one body, cached five ways.
#![allow(dead_code)] // each bench binary uses its own part of this

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use cached::proc_macro::cached;
use cached::{ConcurrentCached, RedbCache};
use cachier::cachier;
use criterion::{Criterion, SamplingMode};

pub fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench")
        .join(name)
}

/// A directory of this run's own, `<name>-<run>`, so that a file cache
/// starts empty, as redb's does, without deleting anything first: for
/// minutes after many files are deleted, ext4 steps over their inodes
/// whenever it creates a file, and file stores look several times slower.
/// `benches/compare-python.sh` removes them once everything is measured.
pub fn run_dir(name: &str) -> PathBuf {
    static RUN: LazyLock<u64> = LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs())
    });
    bench_dir(&format!("{name}-{}", *RUN))
}

/// A redb store of its own for this run: `cached` keeps it in
/// `<name>_v<format version>.redb`, removed first.
fn redb(name: &str) -> RedbCache<String, u64> {
    let dir = bench_dir("redb");
    let earlier = format!("{name}_v");
    for file in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if file.file_name().to_string_lossy().starts_with(&earlier) {
            let _ = std::fs::remove_file(file.path());
        }
    }
    RedbCache::builder(name)
        .disk_dir(&dir)
        .durable(false)
        .build()
        .expect("a redb cache")
}

/// A function body: cheap, so the benchmarks measure the caches.
pub fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

pub fn weigh(text: &str, weights: &HashMap<String, u64>) -> u64 {
    text.len() as u64 + weights.values().sum::<u64>()
}

/// What `cached` needs for arguments that are not `Hash`: a key by hand.
pub fn weigh_key(text: &str, weights: &HashMap<String, u64>) -> String {
    let mut pairs: Vec<_> = weights.iter().collect();
    pairs.sort();
    format!("{text}{pairs:?}")
}

// --- the (u64, u64) function, four ways ---

#[cachier(backend = "memory")]
pub fn cachier_memory_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

#[cachier(cache_dir = run_dir("cachier-add"), segments = false)]
pub fn cachier_file_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

/// `cachier_file_add` with small entries packed into segments.
#[cachier(cache_dir = run_dir("cachier-segments"), segments = true)]
pub fn cachier_segments_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

#[cached]
pub fn cached_memory_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

static REDB_ADD: LazyLock<RedbCache<String, u64>> = LazyLock::new(|| redb("add"));

pub fn cached_redb_add(a: u64, b: u64) -> u64 {
    let key = format!("{a}:{b}");
    if let Some(value) = REDB_ADD.cache_get(&key).expect("redb get") {
        return value;
    }
    let value = add(a, b);
    REDB_ADD.cache_set(key, value).expect("redb set");
    value
}

/// Empties the cache of [`cached_memory_add`].
pub fn clear_cached_memory_add() {
    cached::Cached::cache_clear(&mut *CACHED_MEMORY_ADD.write());
}

/// Empties the cache of [`cached_redb_add`].
pub fn clear_cached_redb_add() {
    REDB_ADD.cache_clear().expect("redb clear");
}

// --- the (&str, &HashMap) function ---

#[cachier(backend = "memory")]
pub fn cachier_memory_weigh(text: &str, weights: &HashMap<String, u64>) -> u64 {
    weigh(text, weights)
}

#[cachier(cache_dir = run_dir("cachier-weigh"), segments = false)]
pub fn cachier_file_weigh(text: &str, weights: &HashMap<String, u64>) -> u64 {
    weigh(text, weights)
}

#[cached(key = "String", convert = r#"{ weigh_key(text, weights) }"#)]
pub fn cached_memory_weigh(text: &str, weights: &HashMap<String, u64>) -> u64 {
    weigh(text, weights)
}

static REDB_WEIGH: LazyLock<RedbCache<String, u64>> = LazyLock::new(|| redb("weigh"));

pub fn cached_redb_weigh(text: &str, weights: &HashMap<String, u64>) -> u64 {
    let key = weigh_key(text, weights);
    if let Some(value) = REDB_WEIGH.cache_get(&key).expect("redb get") {
        return value;
    }
    let value = weigh(text, weights);
    REDB_WEIGH.cache_set(key, value).expect("redb set");
    value
}

pub type AddFn = fn(u64, u64) -> u64;

/// The five implementations of `add`, by name.
pub fn adders() -> [(&'static str, AddFn); 5] {
    [
        ("cachier/memory", *cachier_memory_add),
        ("cachier/file", *cachier_file_add),
        ("cachier/segments", *cachier_segments_add),
        ("cached/memory", cached_memory_add),
        ("cached/redb", cached_redb_add),
    ]
}

/// Hits of each `add` of `adders` on one key, side by side in `group`.
pub fn bench_hits(c: &mut Criterion, group: &str, adders: &[(&str, AddFn)]) {
    let mut group = c.benchmark_group(group);
    for &(name, f) in adders {
        f(1, 2);
        group.bench_function(name, |b| b.iter(|| f(black_box(1), black_box(2))));
    }
    group.finish();
}

/// Calls of each `add` of `adders` with arguments never seen before (a lookup
/// that misses, then a store), side by side in `group`.
///
/// Each run starts from arguments of its own, so that what the memory
/// caches stored in earlier groups of the run is never hit; the file caches
/// start each run in a directory of their own (see [`run_dir`]).
pub fn bench_misses(c: &mut Criterion, group: &str, adders: &[(&str, AddFn)]) {
    let mut group = c.benchmark_group(group);
    group.sampling_mode(SamplingMode::Flat);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    for &(name, f) in adders {
        let fresh = AtomicU64::new((1 << 40) + (run << 24));
        group.bench_function(name, |b| {
            b.iter(|| f(black_box(fresh.fetch_add(1, Ordering::Relaxed)), 0))
        });
    }
    group.finish();
}

pub type WeighFn = fn(&str, &HashMap<String, u64>) -> u64;

/// The four implementations of `weigh`, by name.
pub fn weighers() -> [(&'static str, WeighFn); 4] {
    [
        ("cachier/memory", *cachier_memory_weigh),
        ("cachier/file", *cachier_file_weigh),
        ("cached/memory", cached_memory_weigh),
        ("cached/redb", cached_redb_weigh),
    ]
}

/// Runs `call(thread, i)` for `i` in `0..iters` on each of two threads
/// (`thread` 0 and 1) started together: the time of the slower thread, for
/// criterion's `iter_custom` (a call pair's time, each thread making one).
pub fn on_two_threads(iters: u64, call: impl Fn(u64, u64) + Sync) -> Duration {
    let start = Barrier::new(2);
    thread::scope(|scope| {
        let run = |thread: u64| {
            let (start, call) = (&start, &call);
            move || {
                start.wait();
                let begun = Instant::now();
                (0..iters).for_each(|i| call(thread, i));
                begun.elapsed()
            }
        };
        let other = scope.spawn(run(1));
        run(0)().max(other.join().unwrap())
    })
}
