//! cachier's Redis core and the `cached` crate's Redis store side by side,
//! on one Redis server on loopback: a hit and a miss with its store.
//!
//! ```text
//! scripts/with-redis cargo bench -p cachier-bench --bench redis
//! ```
//!
//! (or set `CACHIER_REDIS_URL` to a server of yours). `cached/redis` is its
//! `RedisCache` (an r2d2 pool, MessagePack values) called as `#[io_cached]`
//! calls it: look up, else compute and store.

use std::hint::black_box;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use cached::{ConcurrentCached, RedisCache};
use cachier::cachier;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

fn url() -> String {
    std::env::var("CACHIER_REDIS_URL").expect("a Redis server: run this with scripts/with-redis")
}

/// A function body: cheap, so the benchmark measures the caches.
fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

#[cachier(backend = "redis")]
fn cachier_redis_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

static CACHED: LazyLock<RedisCache<String, u64>> = LazyLock::new(|| {
    RedisCache::builder("bench-cached-add")
        .ttl(std::time::Duration::from_secs(3600))
        .connection_string(&url())
        .build()
        .expect("a cached RedisCache")
});

fn cached_redis_add(a: u64, b: u64) -> u64 {
    let key = format!("{a}:{b}");
    if let Ok(Some(value)) = CACHED.cache_get(&key) {
        return value;
    }
    let value = add(a, b);
    let _ = CACHED.cache_set(key, value);
    value
}

type Add = fn(u64, u64) -> u64;

fn adders() -> [(&'static str, Add); 2] {
    let mut params = cachier::global_params().redis.clone();
    params.url = Some(url());
    cachier::set_global_params(cachier::global_params().redis(params));
    cachier_redis_add.clear_cache().expect("a reachable Redis server");
    [
        ("cachier/redis", *cachier_redis_add),
        ("cached/redis", cached_redis_add),
    ]
}

fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("redis_hit_u64_pair");
    for (name, f) in adders() {
        f(1, 2);
        group.bench_function(name, |b| b.iter(|| f(black_box(1), black_box(2))));
    }
    group.finish();
}

fn miss_and_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("redis_miss_and_store");
    group.sampling_mode(SamplingMode::Flat);
    for (name, f) in adders() {
        let fresh = AtomicU64::new(1 << 40);
        group.bench_function(name, |b| {
            b.iter(|| f(black_box(fresh.fetch_add(1, Ordering::Relaxed)), 0))
        });
    }
    group.finish();
}

criterion_group!(benches, hit, miss_and_store);
criterion_main!(benches);
