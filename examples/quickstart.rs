//! A slow function made instant: on its second call, and on a second run of
//! this program (the cache lives in files under ~/.cachier, or $CACHIER_DIR).
//!
//! ```text
//! cargo run --example quickstart   # run it twice
//! ```

use std::time::{Duration, Instant};

use cachier::cachier;

/// Pretends to be an expensive computation, such as an API call or a report.
#[cachier(stale_after = "1d")]
fn slow_add(a: u64, b: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    a + b
}

fn timed(label: &str) -> Duration {
    let start = Instant::now();
    let sum = slow_add(40, 2);
    let took = start.elapsed();
    println!("{label:<13} slow_add(40, 2) = {sum}   took {took:?}");
    took
}

fn main() -> cachier::Result<()> {
    println!(
        "cache directory: {}",
        slow_add.cache_dpath().unwrap_or_default().display()
    );
    let first = timed("first call:");
    timed("second call:");
    if first < Duration::from_millis(500) {
        println!("(the first call was a hit too: the previous run of this program stored it)");
    } else {
        println!("run the example again: the first call will be served from the cache too");
    }
    println!("{:?}", slow_add.cache_info());
    if std::env::args().any(|arg| arg == "--clear") {
        slow_add.clear_cache()?;
        println!("cache cleared");
    }
    Ok(())
}
