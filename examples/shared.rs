//! One cache for every machine: run this on two hosts pointed at the same
//! MongoDB, Redis or PostgreSQL server, and whichever runs first computes; the
//! other reads its values. Two processes asking for one report at once compute
//! it once. (An SQLite file is shared by the processes of one machine.)
//!
//! ```text
//! CACHIER_REDIS_URL=redis://cache-host:6379/0 cargo run --example shared --features redis
//! CACHIER_MONGO_URI=mongodb://db-host:27017   cargo run --example shared --features mongo
//! CACHIER_SQL_URL=postgres://app@db-host/app  cargo run --example shared --features sql
//! CACHIER_SQL_URL=sqlite:///tmp/reports.db    cargo run --example shared --features sql
//! ```
//!
//! With the server down, every call still returns its own result: the first
//! failure costs the connect timeout (2 s by default), after which the server
//! is skipped for `retry_after` (10 s) and calls run at full speed.

use std::time::{Duration, Instant};

use cachier::{Backend, cachier};

/// A slow report whose results every machine shares for an hour, on the
/// backend of the global params (set in `main`).
#[cachier(stale_after = "1h")]
fn regional_report(region: &str) -> String {
    std::thread::sleep(Duration::from_secs(2));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "report for {region}, computed on {} by process {}",
        host.trim(),
        std::process::id()
    )
}

/// The server backend whose URL is set, among those built in.
fn server_backend() -> Option<Backend> {
    #[cfg(feature = "redis")]
    if std::env::var_os("CACHIER_REDIS_URL").is_some() {
        return Some(Backend::Redis);
    }
    #[cfg(feature = "mongo")]
    if std::env::var_os("CACHIER_MONGO_URI").is_some() {
        return Some(Backend::Mongo);
    }
    #[cfg(feature = "sql")]
    if std::env::var_os("CACHIER_SQL_URL").is_some() {
        return Some(Backend::Sql);
    }
    None
}

fn main() {
    let Some(backend) = server_backend() else {
        eprintln!(
            "build with --features redis and set CACHIER_REDIS_URL (redis://127.0.0.1:6379/0), \
             with --features mongo and set CACHIER_MONGO_URI (mongodb://127.0.0.1:27017), \
             or with --features sql and set CACHIER_SQL_URL (sqlite:///tmp/reports.db)"
        );
        std::process::exit(2);
    };
    cachier::set_global_params(cachier::global_params().backend(backend));
    for region in ["EMEA", "APAC", "EMEA"] {
        let start = Instant::now();
        let report = regional_report(region);
        println!("{:>9.3?}  {report}", start.elapsed());
    }
    let info = regional_report.cache_info();
    println!("{info:?}");
    if info.cache_errors > 0 {
        println!("the server could not be used: every value above was computed here");
    }
}
