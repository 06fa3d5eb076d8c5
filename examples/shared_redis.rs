//! One cache for every machine, on Redis: run this on two hosts pointed at the
//! same Redis server, and whichever runs first computes; the other reads its
//! values. Two processes asking for one report at once compute it once.
//!
//! ```text
//! CACHIER_REDIS_URL=redis://cache-host:6379/0 cargo run --example shared_redis --features redis
//! ```
//!
//! With the server down, every call still returns its own result: the first
//! failure costs the connect timeout (2 s by default), after which the server
//! is skipped for `retry_after` (10 s) and calls run at full speed.

use std::time::{Duration, Instant};

use cachier::cachier;

/// A slow report whose results every machine shares for an hour.
#[cachier(backend = "redis", stale_after = "1h")]
fn regional_report(region: &str) -> String {
    std::thread::sleep(Duration::from_secs(2));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "report for {region}, computed on {} by process {}",
        host.trim(),
        std::process::id()
    )
}

fn main() {
    if std::env::var_os("CACHIER_REDIS_URL").is_none() {
        eprintln!("set CACHIER_REDIS_URL, for example redis://127.0.0.1:6379/0");
        std::process::exit(2);
    }
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
