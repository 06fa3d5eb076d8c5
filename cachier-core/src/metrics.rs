//! The counters and latency summaries of every cached function as
//! Prometheus / OpenMetrics text.
//!
//! ```text
//! # HELP cachier_hits_total Calls answered from a fresh entry.
//! # TYPE cachier_hits_total counter
//! cachier_hits_total{function="app::report"} 42
//! ```
//!
//! Serve [`render`]'s text at `/metrics` from the web framework you use, or
//! (feature `http`) let [`serve`] run an endpoint of its own. With feature
//! `metrics`, every series is also published through the `metrics` crate's
//! facade, to whatever exporter the program installed.
//!
#![cfg_attr(feature = "http", doc = "[`serve`]: serve")]
// Without the feature, `serve` does not exist: the name links to this module.
#![cfg_attr(not(feature = "http"), doc = "[`serve`]: self")]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::engine::functions;
use crate::stats::{Buckets, Counter, Timed};

/// The quantiles of each summary.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// One function's series: caches sharing a name are summed.
#[derive(Default)]
struct Series {
    counts: [u64; Counter::ALL.len()],
    times: [Buckets; Timed::ALL.len()],
}

/// Every cached function's counters since the process started, and its
/// latency summaries (`cachier_hit_duration_seconds`,
/// `cachier_compute_duration_seconds`: quantiles 0.5, 0.9 and 0.99, sum and
/// count), in the Prometheus text format, one series per function.
///
/// ```
/// use cachier_core::{Backend, CallOptions, FunctionCache, Plain, metrics};
/// let cache = FunctionCache::builder("doc::metered").backend(Backend::Memory).build();
/// cache.call(&CallOptions::DEFAULT, cache.key(&1), || Plain(1));
/// let text = metrics::render();
/// assert!(text.contains("cachier_recalculations_total{function=\"doc::metered\"} 1\n"));
/// assert!(text.contains("cachier_compute_duration_seconds_count{function=\"doc::metered\"} 1\n"));
/// ```
#[must_use]
pub fn render() -> String {
    let mut by_function: BTreeMap<String, Series> = BTreeMap::new();
    for cache in functions() {
        let series = by_function.entry(cache.name().to_owned()).or_default();
        for counter in Counter::ALL {
            series.counts[counter as usize] += cache.stats().count(counter);
        }
        for timed in Timed::ALL {
            series.times[timed as usize].merge(&cache.stats().times(timed));
        }
    }
    let mut text = String::new();
    for counter in Counter::ALL {
        let name = counter.name();
        let _ = writeln!(text, "# HELP {name} {}", counter.help());
        let _ = writeln!(text, "# TYPE {name} counter");
        for (function, series) in &by_function {
            let function = escaped(function);
            let _ = writeln!(
                text,
                "{name}{{function=\"{function}\"}} {}",
                series.counts[counter as usize]
            );
        }
    }
    for timed in Timed::ALL {
        let name = timed.name();
        let _ = writeln!(text, "# HELP {name} {}", timed.help());
        let _ = writeln!(text, "# TYPE {name} summary");
        for (function, series) in &by_function {
            let (function, times) = (escaped(function), &series.times[timed as usize]);
            for q in QUANTILES {
                let value = times.quantile(q).map_or(f64::NAN, |d| d.as_secs_f64());
                let _ = writeln!(text, "{name}{{function=\"{function}\",quantile=\"{q}\"}} {value}");
            }
            let _ = writeln!(
                text,
                "{name}_sum{{function=\"{function}\"}} {}",
                times.total().as_secs_f64()
            );
            let _ = writeln!(text, "{name}_count{{function=\"{function}\"}} {}", times.count());
        }
    }
    text
}

/// A tiny HTTP server answering `GET /metrics` with [`render`]'s text, on a
/// thread of its own, until dropped (feature `http`).
///
/// ```
/// let endpoint = cachier_core::metrics::serve("127.0.0.1:0").unwrap();
/// println!("scrape http://{}/metrics", endpoint.addr());
/// ```
#[cfg(feature = "http")]
pub struct Endpoint {
    server: std::sync::Arc<tiny_http::Server>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serves [`render`]'s text at `http://<addr>/metrics` (any other path is a
/// 404) until the returned [`Endpoint`] is dropped. Bind a loopback or
/// internal address: the endpoint has no authentication, like Prometheus
/// exporters.
///
/// # Errors
/// The address cannot be bound.
#[cfg(feature = "http")]
pub fn serve(addr: impl std::net::ToSocketAddrs) -> std::io::Result<Endpoint> {
    let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("not an IP address"))?;
    let server = std::sync::Arc::new(server);
    let serving = std::sync::Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("cachier-metrics".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                let response = match (request.method(), request.url()) {
                    (tiny_http::Method::Get, "/metrics") => tiny_http::Response::from_string(render())
                        .with_header(tiny_http::Header {
                            field: "Content-Type".parse().expect("a valid header name"),
                            value: "text/plain; version=0.0.4; charset=utf-8"
                                .parse()
                                .expect("an ASCII header value"),
                        }),
                    _ => tiny_http::Response::from_string("not found: GET /metrics\n").with_status_code(404),
                };
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "cachier: a metrics scrape went away");
                }
            }
        })?;
    Ok(Endpoint {
        server,
        addr,
        thread: Some(thread),
    })
}

#[cfg(feature = "http")]
impl Endpoint {
    /// The address it listens on (the port the system chose, for port 0).
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

#[cfg(feature = "http")]
impl Drop for Endpoint {
    /// Stops serving, and waits for the request under way.
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
