//! The Redis core against a real Redis server.
//!
//! `scripts/test` starts one on 127.0.0.1 and sets `CACHIER_REDIS_URL` (point
//! it at a Redis of yours to run these unchanged there), and
//! `CACHIER_REDIS_SERVER`, the server binary the restart test starts and stops
//! itself. Processes other than the test are this binary run again as the
//! ignored test `child`.
#![cfg(feature = "redis")]

mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cachier::{Core, RedisCore, RedisParams, cachier, redis};

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
        let function = support::fresh_function();
        Box::new(RedisCore::with_params(&function, &params()))
    }

    cachier_core::core_contract!(fresh);
}

support::shared_store_tests!("redis");

/// A server of this test's own, which it stops (`SIGKILL`) and starts again.
fn own_server_started(port: u16) -> support::OwnServer {
    let binary = std::env::var("CACHIER_REDIS_SERVER")
        .expect("the restart test starts its own server: run scripts/test, or set CACHIER_REDIS_SERVER");
    let mut command = Command::new(binary);
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    support::OwnServer::start(command, "KILL", || {
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    })
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
    let port = support::free_port();
    OWN_PORT.set(port).unwrap();
    support::survives_an_outage(
        || own_server_started(port),
        *on_own_server,
        on_own_server.cache(),
        RETRY_AFTER,
    );
}
