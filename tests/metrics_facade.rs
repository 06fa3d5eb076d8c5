//! With feature `metrics`, every counter and latency histogram reaches the
//! recorder the program installed, under the names of the Prometheus text.
#![cfg(feature = "metrics")]

use cachier::cachier;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[cachier(backend = "memory")]
fn published(x: u64) -> u64 {
    x * 3
}

#[test]
fn counters_and_histograms_reach_the_installed_recorder() {
    // Installed before the function's first call, which registers its series.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    published(1);
    published(1);
    published(2);

    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let function = key
            .labels()
            .find(|l| l.key() == "function")
            .map(|l| l.value().to_owned());
        assert_eq!(function.as_deref(), Some("metrics_facade::published"), "{key:?}");
        let value = match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => panic!("no gauges: {key:?}"),
        };
        seen.insert(key.name().to_owned(), value);
    }
    let expected = [
        ("cachier_cache_errors_total", 0),
        ("cachier_compute_duration_seconds", 2),
        ("cachier_evictions_total", 0),
        ("cachier_hits_total", 1),
        ("cachier_misses_total", 2),
        ("cachier_recalculations_total", 2),
        ("cachier_stale_hits_total", 0),
    ];
    for (name, value) in expected {
        assert_eq!(seen.get(name), Some(&value), "{name}: {seen:?}");
    }
    assert!(seen.contains_key("cachier_hit_duration_seconds"), "{seen:?}");
}
