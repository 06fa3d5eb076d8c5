//! The Redis core against a real Redis server.
//!
//! `scripts/test` starts one on 127.0.0.1 and sets `CACHIER_REDIS_URL` (point
//! it at a Redis of yours to run these unchanged there), and
//! `CACHIER_REDIS_SERVER`, the server binary the restart test starts and stops
//! itself. Processes other than the test are this binary run again as the
//! ignored test `child`.
#![cfg(feature = "redis")]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachier::{Core, RedisCore, RedisParams, cachier, redis};
use support::{PATIENCE, Peer, role, say, wait_for_parent};

/// Short enough that the takeover test is quick, long enough to be renewed in time.
const LEASE: Duration = Duration::from_secs(2);
const RETRY_AFTER: Duration = Duration::from_millis(300);

fn url() -> String {
    std::env::var("CACHIER_REDIS_URL")
        .expect("the Redis tests need a server: run scripts/test, or set CACHIER_REDIS_URL")
}

fn params() -> RedisParams {
    let mut params = RedisParams::default();
    params.url = Some(url());
    params.prefix = "cachier-test".into();
    params.lease = LEASE;
    params.retry_after = RETRY_AFTER;
    params.timeout = Duration::from_millis(500);
    params
}

/// Every process of this binary uses the test server and a short lease.
fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| cachier::set_global_params(cachier::global_params().redis(params())));
}

mod contract {
    use super::*;

    /// A fresh core: a function name no other core uses.
    fn fresh() -> Box<dyn Core> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let function = format!(
            "contract-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Box::new(RedisCore::with_params(&function, &params()))
    }

    cachier_core::core_contract!(fresh);
}

#[cachier(backend = "redis")]
fn race(run: &str) -> String {
    say("computing");
    wait_for_parent();
    format!("{run} computed by {}", std::process::id())
}

#[cachier(backend = "redis")]
fn held(run: &str) -> String {
    if role() == "hold" {
        say("computing");
        wait_for_parent();
    }
    format!("{run} computed by {}", std::process::id())
}

#[cachier(backend = "redis", stale_after = "1h")]
fn shared(run: &str) -> String {
    format!("{run} computed by {}", std::process::id())
}

/// The other processes' side of the tests below. Arguments arrive in `CACHIER_TEST_RUN`.
#[test]
#[ignore = "a helper: the other tests of this file run it as a child process"]
fn child() {
    init();
    let run = support::run();
    match role().as_str() {
        "race" => say(&format!("value={}", race.verbose_cache(&run))),
        "hold" => say(&format!("value={}", held(&run))),
        "store" => say(&format!("value={}", shared(&run))),
        "clear" => shared.clear_cache().unwrap(),
        other => panic!("unknown role {other:?}"),
    }
}

/// A run id, so that tests never see entries of earlier runs against a lasting server.
fn run_id(test: &str) -> String {
    format!("{test}-{}-{:?}", std::process::id(), std::time::SystemTime::now())
}

#[test]
fn processes_sharing_a_key_compute_once() {
    init();
    let run = run_id("race");
    let value = support::race("race", &run, 3);
    assert_eq!(race(&run), value, "this process reads the shared value");
    assert_eq!(race.cache_info().recalculations, 0);
}

#[test]
fn a_claim_of_a_killed_process_is_taken_over_after_its_lease() {
    init();
    let run = run_id("held");
    let peer = Peer::start("hold", &run);
    peer.expect("computing");
    let key = held.cache().key(&(run.as_str(),)).unwrap();
    assert!(
        held.cache().core().try_claim(&key).unwrap().is_none(),
        "the child's claim should be live"
    );
    peer.kill();
    // No wait_for_calc_timeout: only the expiring lease lets this call through.
    let ours = held(&run);
    assert_eq!(ours, format!("{run} computed by {}", std::process::id()));
    assert_eq!(held.cache_info().recalculations, 1);
}

#[test]
fn values_and_clears_of_other_processes_are_seen() {
    init();
    let run = run_id("shared");
    let theirs = Peer::start("store", &run).value();
    assert_eq!(
        shared(&run),
        theirs,
        "a value stored by another process must be served"
    );
    Peer::start("clear", &run).finish();
    assert_eq!(
        shared(&run),
        format!("{run} computed by {}", std::process::id()),
        "their clear must be seen"
    );
}

#[cachier(backend = "redis", entry_size_limit = "1KB")]
fn large(n: usize) -> Vec<u8> {
    vec![7; n]
}

#[test]
fn a_value_over_the_limit_is_returned_and_not_stored() {
    init();
    large.clear_cache().unwrap();
    assert_eq!(large(4096).len(), 4096);
    assert_eq!(large(4096).len(), 4096);
    assert_eq!(large.cache_info().hits, 0, "not stored, so never a hit");
    assert_eq!(large(10), vec![7; 10]);
    assert_eq!(large(10), vec![7; 10]);
    assert_eq!(large.cache_info().hits, 1);
}

/// A server of this test's own, which it stops and starts again.
struct Server {
    process: Option<Child>,
}

impl Server {
    fn start(port: u16) -> Server {
        let binary = std::env::var("CACHIER_REDIS_SERVER")
            .expect("the restart test starts its own server: run scripts/test, or set CACHIER_REDIS_SERVER");
        let process = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            process: Some(process),
        };
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "the test server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

static OWN_PORT: OnceLock<u16> = OnceLock::new();

fn own_server() -> redis::Client {
    let port = *OWN_PORT.get().expect("the port is chosen before the first call");
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap()
}

#[cachier(backend = "redis", redis_client = own_server)]
fn on_own_server(x: u64) -> u64 {
    x * 10
}

#[test]
fn a_server_outage_costs_the_cache_not_the_caller() {
    init();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    OWN_PORT.set(port).unwrap();
    let mut server = Server::start(port);
    assert_eq!(on_own_server(1), 10);
    assert_eq!(on_own_server(1), 10);
    assert_eq!(on_own_server.cache_info().hits, 1);

    server.stop();
    let errors = on_own_server.cache_info().cache_errors;
    assert_eq!(
        on_own_server(2),
        20,
        "the function's own result while the server is down"
    );
    assert_eq!(on_own_server(3), 30);
    let info = on_own_server.cache_info();
    assert!(
        info.cache_errors >= errors + 2,
        "every failure is counted: {info:?}"
    );

    drop(server);
    let _server = Server::start(port);
    // The core skips the server for RETRY_AFTER after a failure: let that pass.
    std::thread::sleep(RETRY_AFTER);
    assert_eq!(on_own_server(4), 40);
    let hits = on_own_server.cache_info().hits;
    assert_eq!(on_own_server(4), 40);
    assert_eq!(
        on_own_server.cache_info().hits,
        hits + 1,
        "caching resumes once the server is back"
    );
}
