//! The process's cached functions, listed and exposed as Prometheus text that
//! a real parser reads back.

use cachier::{cache_of, cachier, functions, metrics};
use prometheus_parse::{Scrape, Value};

#[cachier(backend = "memory")]
fn metered(x: u64) -> u64 {
    x + 1
}

struct Model;

impl Model {
    #[cachier(backend = "memory", ignore = [self])]
    fn scored(&self, x: u64) -> u64 {
        x * 2
    }
}

/// The value of `metric` for `function` in `scrape`.
fn sample(scrape: &Scrape, metric: &str, function: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("function") == Some(function))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn every_function_used_or_named_is_listed_and_exposed() {
    metered(1);
    metered(1);
    metered(1);
    Model.scored(2);
    let method = cache_of!(Model::scored).name().to_owned();
    assert_eq!(method, "metrics::Model::scored");

    let names: Vec<_> = functions().iter().map(|f| f.name().to_owned()).collect();
    assert!(names.contains(&"metrics::metered".to_owned()), "{names:?}");
    assert!(names.contains(&method), "{names:?}");

    let text = metrics::render();
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("valid exposition text");
    assert_eq!(
        sample(&scrape, "cachier_hits_total", "metrics::metered"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&scrape, "cachier_misses_total", "metrics::metered"),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "cachier_recalculations_total", "metrics::metered"),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "cachier_recalculations_total", &method),
        Some(1.0)
    );
    assert_eq!(sample(&scrape, "cachier_cache_errors_total", &method), Some(0.0));
    assert!(
        scrape.docs.contains_key("cachier_hits_total"),
        "every metric has its HELP"
    );
}
