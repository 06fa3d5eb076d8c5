//! Hit and store cost as the cache grows: 1, 1,000, 2,000, 100,000 and 1,000,000
//! entries already stored, for cachier and the `cached` crate side by side.
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

/// Hits and stores with 1, 1,000, 100,000 and 1,000,000 entries already stored.
/// Each library fills its cache to the next size and is measured there.
fn scaling(c: &mut Criterion) {
    let mut libraries = adders();
    libraries[1] = ("cachier/file", *cachier_file_add_scaled);
    let sizes: Vec<u64> = [1, 1_000, 2_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max_entries())
        .collect();
    for (name, f) in libraries {
        let mut filled = 0;
        for &size in &sizes {
            let fill_start = Instant::now();
            // Fill with keys (i, 0); i below `size`. Keys (i, 1) are never stored.
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
            let fresh = AtomicU64::new(1 << 50);
            group.bench_function(BenchmarkId::new("store", size), |b| {
                b.iter(|| f(black_box(fresh.fetch_add(1, Ordering::Relaxed)), 1))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, scaling, remove_run_dirs);
criterion_main!(benches);
