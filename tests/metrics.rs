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

    let listed = functions()
        .into_iter()
        .find(|f| f.name() == "metrics::metered")
        .unwrap();
    assert_eq!(listed.backend(), Some(cachier::Backend::Memory));
    assert_eq!(listed.options().max_entries, None);
    assert_eq!(listed.info().recalculations, 1);
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

#[cachier(backend = "memory")]
fn timed(x: u64) -> u64 {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(x));
    // At least a thread's start and a channel's round trip: measurably more than nothing.
    receive.recv().unwrap()
}

/// The quantiles of the summary `metric` for `function` in `scrape`.
fn quantiles(scrape: &Scrape, metric: &str, function: &str) -> Vec<(f64, f64)> {
    let summary = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("function") == Some(function));
    match summary.map(|s| &s.value) {
        Some(Value::Summary(quantiles)) => quantiles.iter().map(|q| (q.quantile, q.count)).collect(),
        other => panic!("no summary {metric} for {function}: {other:?}"),
    }
}

#[test]
fn hits_and_computations_are_timed_as_summaries() {
    for x in 0..10 {
        timed(x);
    }
    for _ in 0..64 {
        timed(1);
    }
    let info = timed.cache_info();
    assert_eq!(info.compute_time.count, 10);
    assert!(info.compute_time.p50 > std::time::Duration::ZERO);
    assert!(info.compute_time.p50 <= info.compute_time.p99);
    assert!(info.compute_time.total >= info.compute_time.p50 * 5);
    // One call in 16 per thread is a timed one: any 64 hits in a row on a thread, 4.
    assert_eq!(info.hit_time.count, 64 / u64::from(cachier::HIT_SAMPLING));
    assert!(info.hit_time.p99 >= info.hit_time.p50);

    let text = metrics::render();
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("valid exposition text");
    let computed = quantiles(&scrape, "cachier_compute_duration_seconds", "metrics::timed");
    let wanted: Vec<f64> = computed.iter().map(|q| q.0).collect();
    assert_eq!(wanted, [0.5, 0.9, 0.99], "{text}");
    let p50 = info.compute_time.p50.as_secs_f64();
    assert!((computed[0].1 - p50).abs() <= p50 * 1e-9, "{computed:?} vs {p50}");
    assert_eq!(
        sample(
            &scrape,
            "cachier_compute_duration_seconds_count",
            "metrics::timed"
        ),
        Some(10.0)
    );
    let hits = quantiles(&scrape, "cachier_hit_duration_seconds", "metrics::timed");
    assert!(hits.iter().all(|q| q.1 > 0.0), "{hits:?}");
    assert_eq!(
        sample(&scrape, "cachier_evictions_total", "metrics::timed"),
        Some(0.0)
    );
}

#[cfg(feature = "http")]
#[test]
fn the_endpoint_serves_the_exposition_over_http() {
    use std::io::{Read, Write};
    metered(7);
    let endpoint = metrics::serve("127.0.0.1:0").unwrap();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(endpoint.addr()).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let response = get("/metrics");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let scrape = Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("valid exposition text");
    assert!(sample(&scrape, "cachier_recalculations_total", "metrics::metered").is_some_and(|n| n >= 1.0));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
    // Dropping it stops the server and joins its thread.
    drop(endpoint);
}
