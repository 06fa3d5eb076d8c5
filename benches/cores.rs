//! What a hit and a store cost on the memory and the file core.
//!
//! `cargo bench --bench cores`

use std::hint::black_box;
use std::path::PathBuf;

use cachier::cachier;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-cores")
}

#[cachier(backend = "memory")]
fn memory_add(a: u64, b: u64) -> u64 {
    a + b
}

#[cachier(cache_dir = bench_dir())]
fn file_add(a: u64, b: u64) -> u64 {
    a + b
}

fn hits_and_stores(c: &mut Criterion) {
    file_add.clear_cache().unwrap();
    let mut group = c.benchmark_group("u64_pair");
    memory_add(1, 2);
    group.bench_function("memory/hit", |b| {
        b.iter(|| memory_add(black_box(1), black_box(2)))
    });
    group.bench_function("memory/store", |b| {
        b.iter(|| memory_add.overwrite_cache(black_box(1), black_box(2)))
    });
    file_add(1, 2);
    group.bench_function("file/hit", |b| b.iter(|| file_add(black_box(1), black_box(2))));
    group.bench_function("file/store", |b| {
        b.iter(|| file_add.overwrite_cache(black_box(1), black_box(2)))
    });
    group.finish();
}

criterion_group!(benches, hits_and_stores);
criterion_main!(benches);
