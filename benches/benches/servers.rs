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

mod common;

use std::sync::LazyLock;

use cached::{ConcurrentCached, RedisCache};
use cachier::cachier;
use common::{AddFn, add, bench_hits, bench_misses};
use criterion::{Criterion, criterion_group, criterion_main};

fn url() -> String {
    std::env::var("CACHIER_REDIS_URL").expect("a Redis server: run this with scripts/with-redis")
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

fn adders() -> [(&'static str, AddFn); 2] {
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
    bench_hits(c, "redis_hit_u64_pair", &adders());
}

fn miss_and_store(c: &mut Criterion) {
    bench_misses(c, "redis_miss_and_store", &adders());
}

criterion_group!(benches, hit, miss_and_store);
criterion_main!(benches);
