//! Hit and store cost as the cache grows: 1, 1,000, 2,000, 20,000, 100,000 and
//! 1,000,000 entries already stored, for cachier and the `cached` crate side by side.
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

#[cachier(cache_dir = run_dir("cachier-scaling"))]
fn cachier_file_add_scaled(a: u64, b: u64) -> u64 {
    add(a, b)
}

/// Hits and stores with 1, 1,000, 2,000, 20,000, 100,000 and 1,000,000 entries
/// already stored (20,000: issue #11's "random keys among 20,000 entries").
/// Each library fills its cache to the next size and is measured there.
fn scaling(c: &mut Criterion) {
    let mut libraries = adders();
    libraries[1] = ("cachier/file", *cachier_file_add_scaled);
    let sizes: Vec<u64> = [1, 1_000, 2_000, 20_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max_entries())
        .collect();
    for (name, f) in libraries {
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
            if size >= 100_000 {
                group.sample_size(20).measurement_time(Duration::from_secs(3));
            }
            group.sampling_mode(SamplingMode::Flat);
            let mut next = 0;
            group.bench_function(BenchmarkId::new("hit", size), |b| {
                b.iter(|| {
                    next = (next + 7919) % size;
                    f(black_box(next), 0)
                })
            });
            group.bench_function(BenchmarkId::new("store", size), |b| {
                b.iter(|| f(black_box(fresh.fetch_add(1, Ordering::Relaxed)), 1))
            });
            group.finish();
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
    let (_, bytes) = disk_usage(&bench_dir("redb"));
    eprintln!(
        "cached/redb: {:.1} MB on disk (both of its stores)",
        bytes as f64 / 1e6
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
