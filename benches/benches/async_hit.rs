//! What an async hit costs against a sync hit of the same function shape, for
//! the memory and file cores, side by side:
//!
//! ```text
//! cargo bench -p cachier-bench --bench async_hit
//! ```
//!
//! The async calls are awaited in a loop inside one `block_on` of a
//! current-thread tokio runtime, so the runtime's own cost is not counted.

mod common;

use std::hint::black_box;
use std::time::Instant;

use cachier::cachier;
use common::{bench_dir, cachier_file_add, cachier_memory_add};
use criterion::{Criterion, criterion_group, criterion_main};

#[cachier(backend = "memory")]
async fn async_memory_add(a: u64, b: u64) -> u64 {
    a + b
}

#[cachier(cache_dir = bench_dir("cachier-async-add"), segments = false)]
async fn async_file_add(a: u64, b: u64) -> u64 {
    a + b
}

fn hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("hit_sync_vs_async");
    for (name, f) in [
        ("cachier/memory/sync", *cachier_memory_add),
        ("cachier/file/sync", *cachier_file_add),
    ] {
        f(1, 2);
        group.bench_function(name, |b| b.iter(|| f(black_box(1), black_box(2))));
    }
    runtime.block_on(async {
        async_memory_add(1, 2).await;
        async_file_add(1, 2).await;
    });
    let async_adders = [
        ("cachier/memory/async", *async_memory_add),
        ("cachier/file/async", *async_file_add),
    ];
    for (name, f) in async_adders {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(f(black_box(1), black_box(2)).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
