//! The counters of every cached function as Prometheus / OpenMetrics text.
//!
//! ```text
//! # HELP cachier_hits_total Calls answered from a fresh entry.
//! # TYPE cachier_hits_total counter
//! cachier_hits_total{function="app::report"} 42
//! ```
//!
//! Serve [`render`]'s text at `/metrics` from the web framework you use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::engine::functions;
use crate::stats::CacheInfo;

/// A counter: its name, its help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&CacheInfo) -> u64);

/// The counters.
const COUNTERS: [Counter; 6] = [
    ("cachier_hits_total", "Calls answered from a fresh entry.", |i| {
        i.hits
    }),
    ("cachier_misses_total", "Calls that found no usable entry.", |i| {
        i.misses
    }),
    (
        "cachier_stale_hits_total",
        "Calls that found a stale entry (served with next_time, else recomputed).",
        |i| i.stale_hits,
    ),
    (
        "cachier_recalculations_total",
        "Runs of a function's body under its cache.",
        |i| i.recalculations,
    ),
    (
        "cachier_cache_errors_total",
        "Failures of a cache itself (I/O, corrupt entries, server errors); the calls still returned.",
        |i| i.cache_errors,
    ),
    (
        "cachier_evictions_total",
        "Entries evicted to keep a store within its budget (max_entries, max_bytes).",
        |i| i.evictions,
    ),
];

/// Every cached function's counters since the process started, in the
/// Prometheus text format, one series per function (caches sharing a name
/// are summed).
///
/// ```
/// use cachier_core::{Backend, CallOptions, FunctionCache, Plain, metrics};
/// let cache = FunctionCache::builder("doc::metered").backend(Backend::Memory).build();
/// cache.call(&CallOptions::DEFAULT, cache.key(&1), || Plain(1));
/// let text = metrics::render();
/// assert!(text.contains("cachier_recalculations_total{function=\"doc::metered\"} 1\n"));
/// ```
#[must_use]
pub fn render() -> String {
    let mut by_function: BTreeMap<String, CacheInfo> = BTreeMap::new();
    for cache in functions() {
        let info = cache.info();
        let sum = by_function.entry(cache.name().to_owned()).or_default();
        sum.hits += info.hits;
        sum.misses += info.misses;
        sum.stale_hits += info.stale_hits;
        sum.recalculations += info.recalculations;
        sum.cache_errors += info.cache_errors;
        sum.evictions += info.evictions;
    }
    let mut text = String::new();
    for (name, help, counter) in COUNTERS {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} counter");
        for (function, info) in &by_function {
            let _ = writeln!(
                text,
                "{name}{{function=\"{}\"}} {}",
                escaped(function),
                counter(info)
            );
        }
    }
    text
}

/// A label value with `\`, `"` and line feeds escaped, as the format asks.
fn escaped(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escaped("<app::M as app::T>::f"), "<app::M as app::T>::f");
    }
}
