//! Hit and store cost as the cache grows: 1, 1,000, 2,000, 20,000, 100,000 and
//! 1,000,000 entries already stored, for cachier and the `cached` crate side by side;
//! at the largest size, hits on two threads at once too.
//!
//! ```text
//! cargo bench --bench scaling                                   # fills up to 1,000,000 entries: minutes
//! CACHIER_BENCH_MAX_ENTRIES=100000 cargo bench --bench scaling  # a quicker look
//! ```

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachier::cachier;
use common::*;
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};

/// The largest cache the scaling benchmark fills (`CACHIER_BENCH_MAX_ENTRIES`).
fn max_entries() -> u64 {
    std::env::var("CACHIER_BENCH_MAX_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

#[cachier(cache_dir = run_dir("cachier-scaling"), segments = false)]
fn cachier_file_add_scaled(a: u64, b: u64) -> u64 {
    add(a, b)
}

/// `cachier_file_add_scaled` with small entries packed into segments.
#[cachier(cache_dir = run_dir("cachier-segments-scaling"), segments = true)]
fn cachier_segments_add_scaled(a: u64, b: u64) -> u64 {
    add(a, b)
}

/// One library's `add`, and what empties its cache where that is cheap.
struct Library {
    name: &'static str,
    add: AddFn,
    empty: Option<fn()>,
}

/// The five libraries. The file layout's cache is never emptied: deleting
/// its files would slow the file stores measured after (see [`run_dir`]).
fn libraries() -> [Library; 5] {
    fn clear(cache: &cachier::FunctionCache) {
        cache.clear().expect("cachier clear");
    }
    let library = |name, add, empty| Library { name, add, empty };
    [
        library(
            "cachier/memory",
            *cachier_memory_add,
            Some(|| clear(cachier_memory_add.cache())),
        ),
        library("cachier/file", *cachier_file_add_scaled, None),
        library(
            "cachier/segments",
            *cachier_segments_add_scaled,
            Some(|| clear(cachier_segments_add_scaled.cache())),
        ),
        library("cached/memory", cached_memory_add, Some(clear_cached_memory_add)),
        library("cached/redb", cached_redb_add, Some(clear_cached_redb_add)),
    ]
}

/// Hits and stores with 1, 1,000, 2,000, 20,000, 100,000 and 1,000,000 entries
/// already stored (20,000: issue #11's "random keys among 20,000 entries").
/// Each library fills its cache to the next size and is measured there; at
/// the largest size, hits on two threads at once too.
///
/// The stores measured at a size stay in the cache: a library storing in
/// 0.4 µs adds some three million entries in the second it is measured. So
/// that the next size's hits are measured among that size's entries, each
/// cache that can be emptied cheaply is emptied and filled again from
/// nothing; the file layout's holds the stores of the sizes before.
fn scaling(c: &mut Criterion) {
    let sizes: Vec<u64> = [1, 1_000, 2_000, 20_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max_entries())
        .collect();
    for Library { name, add: f, empty } in libraries() {
        let mut filled = 0;
        // One run of fresh keys across the sizes: every store measured is a
        // miss (a counter restarted at each size found the keys stored at
        // the sizes before, and measured hits as stores).
        let fresh = AtomicU64::new(1 << 50);
        for &size in &sizes {
            let fill_start = Instant::now();
            // Fill with keys (i, 0), i below `size`; stores measured use (2^50 + n, 1).
            (filled..size).for_each(|i| {
                f(i, 0);
            });
            filled = size;
            eprintln!("{name}: filled to {size} entries in {:.1?}", fill_start.elapsed());
            let mut group = c.benchmark_group(format!("scaling/{name}"));
            // Short, so that the stores measured (each a new entry) leave the
            // cache near its size: at 3.5 us a store, criterion's default 8 s
            // of warm-up and measurement stored 2.3 million entries a size.
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_secs(1));
            let mut next = 0;
            group.bench_function(BenchmarkId::new("hit", size), |b| {
                b.iter(|| {
                    next = (next + 7919) % size;
                    f(black_box(next), 0)
                })
            });
            // At the largest size, two threads hitting keys spread over the
            // cache too (time per call pair): whether readers take turns.
            // Each batch goes on where the last one stopped, as `hit` does:
            // a batch starting over would hit the keys of the last one again,
            // which the file core then remembers.
            if Some(&size) == sizes.last() {
                let mut done = 0;
                group.bench_function(BenchmarkId::new("hit_two_threads", size), |b| {
                    b.iter_custom(|iters| {
                        let from = done;
                        done += iters;
                        on_two_threads(iters, |thread, i| {
                            f(black_box((thread * size / 2 + (from + i) * 7919) % size), 0);
                        })
                    })
                });
            }
            group.bench_function(BenchmarkId::new("store", size), |b| {
                b.iter(|| f(black_box(fresh.fetch_add(1, Ordering::Relaxed)), 1))
            });
            group.finish();
            // The largest cache stays, for `disk_and_clear` to measure.
            if let Some(empty) = empty.filter(|_| Some(&size) != sizes.last()) {
                empty();
                filled = 0;
            }
        }
    }
}

/// What the largest caches take on disk, how long `clear_cache` of the file
/// cache takes, and how long until its files are deleted: printed, being
/// one-off measurements rather than criterion's.
fn disk_and_clear(_: &mut Criterion) {
    let Some(dir) = cachier_file_add_scaled.cache_dpath() else {
        return;
    };
    let (files, bytes) = disk_usage(&dir);
    let started = Instant::now();
    let cleared = cachier_file_add_scaled.clear_cache();
    let returned = started.elapsed();
    // The files go after the call returns, on a thread of this process,
    // with the directory a clear renames aside (`retired-...`).
    let retired = |function: &std::path::Path| {
        std::fs::read_dir(function)
            .into_iter()
            .flatten()
            .flatten()
            .any(|item| item.file_name().to_string_lossy().starts_with("retired-"))
    };
    while dir.parent().is_some_and(retired) {
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "cachier/file: {files} files, {:.1} MB on disk; clear_cache returned in {returned:.1?} ({cleared:?}), its files were gone after {:.1?}",
        bytes as f64 / 1e6,
        started.elapsed()
    );
    if let Some(dir) = cachier_segments_add_scaled.cache_dpath() {
        let (files, bytes) = disk_usage(&dir);
        let started = Instant::now();
        let cleared = cachier_segments_add_scaled.clear_cache();
        eprintln!(
            "cachier/segments: {files} files, {:.1} MB on disk; clear_cache returned in {:.1?} ({cleared:?})",
            bytes as f64 / 1e6,
            started.elapsed()
        );
    }
    packed_million();
    let (_, bytes) = disk_usage(&bench_dir("redb"));
    eprintln!(
        "cached/redb: {:.1} MB on disk (both of its stores)",
        bytes as f64 / 1e6
    );
}

/// What a million entries of 8-byte values take packed into segments (issue
/// #11's disk row: at most twice the payload plus 64 bytes each), and how
/// long storing and clearing them take.
fn packed_million() {
    use cachier::{Core, Entry, FileCore, Key};
    let core = FileCore::new(run_dir("cachier-segments-million"))
        .version("million")
        .segments(true);
    let started = Instant::now();
    for n in 0..1_000_000u64 {
        let key = Key::new("million", &n).expect("a key");
        let entry = Entry::new(std::time::SystemTime::now(), n.to_le_bytes().to_vec());
        core.set(&key, &entry).expect("a store");
    }
    let stored = started.elapsed();
    let Some(dir) = core.dpath() else {
        return;
    };
    let (files, bytes) = disk_usage(&dir);
    let started = Instant::now();
    let cleared = core.clear();
    eprintln!(
        "cachier/segments: 1,000,000 entries of 8-byte values stored in {stored:.1?}: {files} files, \
         {:.1} MB on disk, {:.1} bytes an entry; clear returned in {:.1?} ({cleared:?})",
        bytes as f64 / 1e6,
        bytes as f64 / 1_000_000.0, // entries
        started.elapsed()
    );
}

/// The number of files under `dir` and the bytes the filesystem allocated to them.
fn disk_usage(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for item in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = item.metadata() else { continue };
        if meta.is_dir() {
            let (files, bytes) = disk_usage(&item.path());
            total = (total.0 + files, total.1 + bytes);
        } else {
            total = (total.0 + 1, total.1 + meta.blocks() * 512);
        }
    }
    total
}

criterion_group!(benches, scaling, disk_and_clear);
criterion_main!(benches);
