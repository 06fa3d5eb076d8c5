//! One cache for every machine: run this on two hosts pointed at the same
//! MongoDB server, and whichever runs first computes; the other reads its values.
//!
//! ```text
//! CACHIER_MONGO_URI=mongodb://db-host:27017 cargo run --example mongo_shared --features mongo
//! ```
//!
//! With the server down, every call still returns its own result: the first
//! failure costs the server-selection timeout (2 s by default), after which the
//! server is skipped for `retry_after` (10 s) and calls run at full speed.

use std::time::{Duration, Instant};

use cachier::cachier;

/// A slow report whose results every machine shares for an hour.
#[cachier(backend = "mongo", stale_after = "1h")]
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
    if std::env::var_os("CACHIER_MONGO_URI").is_none() {
        eprintln!("set CACHIER_MONGO_URI, for example mongodb://127.0.0.1:27017");
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
