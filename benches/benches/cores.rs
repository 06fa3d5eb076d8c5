//! cachier and the `cached` crate side by side, workload by workload: each
//! criterion group holds both libraries, so every report compares them.
//!
//! ```text
//! cargo bench --bench cores      # this file; benches/scaling.rs measures cache sizes
//! ```
//!
//! Libraries: `cachier/memory`, `cachier/file` (one file per entry, coherent
//! across processes), `cached/memory` (`#[cached]`), `cached/redb` (its redb
//! disk store, keyed with `key`/`convert` where arguments are not `Hash`).

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

fn hit_u64_pair(c: &mut Criterion) {
    bench_hits(c, "hit_u64_pair", &adders());
}

fn hit_str_map(c: &mut Criterion) {
    let weights: HashMap<String, u64> = (0..8).map(|i| (format!("feature-{i}"), i)).collect();
    let mut group = c.benchmark_group("hit_str_map");
    for (name, f) in weighers() {
        f("report", &weights);
        group.bench_function(name, |b| b.iter(|| f(black_box("report"), black_box(&weights))));
    }
    group.finish();
}

fn miss_and_store(c: &mut Criterion) {
    bench_misses(c, "miss_and_store", &adders());
}

/// Two threads calling the same cached key as fast as they can; time per call pair.
fn two_threads_hot_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads_hot_key");
    for (name, f) in adders() {
        f(3, 4);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, |_, _| {
                    black_box(f(black_box(3), black_box(4)));
                })
            })
        });
    }
    group.finish();
}

/// Sixteen threads calling one cold key at once: time until all have the value.
fn sixteen_threads_cold_key(c: &mut Criterion) {
    const THREADS: usize = 16;
    let mut group = c.benchmark_group("sixteen_threads_cold_key");
    group.sample_size(20);
    for (name, f) in adders() {
        let fresh = AtomicU64::new(1 << 60);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let key = fresh.fetch_add(1, Ordering::Relaxed);
                    let start = Barrier::new(THREADS + 1);
                    thread::scope(|scope| {
                        let racers: Vec<_> = (0..THREADS)
                            .map(|_| {
                                scope.spawn(|| {
                                    start.wait();
                                    f(key, 0)
                                })
                            })
                            .collect();
                        start.wait();
                        let begun = Instant::now();
                        racers
                            .into_iter()
                            .for_each(|r| assert_eq!(r.join().unwrap(), key));
                        total += begun.elapsed();
                    });
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    hit_u64_pair,
    hit_str_map,
    miss_and_store,
    two_threads_hot_key,
    sixteen_threads_cold_key
);
criterion_main!(benches);
