//! cachier's shared cores (Redis, PostgreSQL, an SQLite file) and the `cached`
//! crate's Redis store side by side, on servers on loopback: a hit and a miss
//! with its store.
//!
//! ```text
//! scripts/with-servers cargo bench -p cachier-bench --bench servers
//! ```
//!
//! (or set `CACHIER_REDIS_URL` and `CACHIER_SQL_URL` to servers of yours).
//! `cached/redis` is its `RedisCache` (an r2d2 pool, MessagePack values)
//! called as `#[io_cached]` calls it: look up, else compute and store.

mod common;

use std::sync::LazyLock;

use cached::{ConcurrentCached, RedisCache};
use cachier::{SqlCore, cachier};
use common::{AddFn, add, bench_dir, bench_hits, bench_misses};
use criterion::{Criterion, criterion_group, criterion_main};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name}: run this with scripts/with-servers"))
}

#[cachier(backend = "redis")]
fn cachier_redis_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

#[cachier(backend = "sql")]
fn cachier_postgres_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

fn sqlite() -> SqlCore {
    let dir = bench_dir("sqlite");
    std::fs::create_dir_all(&dir).expect("a bench directory");
    let mut params = cachier::global_params().sql.clone();
    params.url = Some(format!("sqlite://{}", dir.join("cache.db").display()));
    SqlCore::with_params("bench::sqlite_add", &params)
}

#[cachier(core = sqlite())]
fn cachier_sqlite_add(a: u64, b: u64) -> u64 {
    add(a, b)
}

static CACHED: LazyLock<RedisCache<String, u64>> = LazyLock::new(|| {
    RedisCache::builder("bench-cached-add")
        .ttl(std::time::Duration::from_secs(3600))
        .connection_string(&var("CACHIER_REDIS_URL"))
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

fn adders() -> [(&'static str, AddFn); 4] {
    let global = cachier::global_params();
    let (mut redis, mut sql) = (global.redis.clone(), global.sql.clone());
    redis.url = Some(var("CACHIER_REDIS_URL"));
    sql.url = Some(var("CACHIER_SQL_URL"));
    cachier::set_global_params(global.redis(redis).sql(sql));
    cachier_redis_add.clear_cache().expect("a reachable Redis server");
    cachier_postgres_add
        .clear_cache()
        .expect("a reachable PostgreSQL server");
    cachier_sqlite_add.clear_cache().expect("an SQLite file");
    [
        ("cachier/redis", *cachier_redis_add),
        ("cached/redis", cached_redis_add),
        ("cachier/postgres", *cachier_postgres_add),
        ("cachier/sqlite", *cachier_sqlite_add),
    ]
}

fn hit(c: &mut Criterion) {
    bench_hits(c, "server_hit_u64_pair", &adders());
}

fn miss_and_store(c: &mut Criterion) {
    bench_misses(c, "server_miss_and_store", &adders());
}

criterion_group!(benches, hit, miss_and_store);
criterion_main!(benches);
