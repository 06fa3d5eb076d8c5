//! The MongoDB core against a real MongoDB-wire-compatible server.
//!
//! `scripts/test` starts one on 127.0.0.1 and sets `CACHIER_MONGO_URI` (point it
//! at any real `mongod` to run these unchanged there), and `CACHIER_SECANTUSD`,
//! the server binary the restart test starts and stops itself. Processes other
//! than the test are this binary run again as the ignored test `child`.
#![cfg(feature = "mongo")]

mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cachier::mongodb::bson::Document;
use cachier::mongodb::options::ClientOptions;
use cachier::mongodb::sync::{Client, Collection};
use cachier::{Core, MongoCore, MongoParams, cachier};

/// Short enough that the takeover test is quick, long enough to be renewed in time.
const LEASE: Duration = Duration::from_secs(2);
const RETRY_AFTER: Duration = Duration::from_millis(300);

fn uri() -> String {
    std::env::var("CACHIER_MONGO_URI")
        .expect("the MongoDB tests need a server: run scripts/test, or set CACHIER_MONGO_URI")
}

fn params() -> MongoParams {
    let mut params = MongoParams::default();
    params.uri = Some(uri());
    params.database = "cachier_test".into();
    params.lease = LEASE;
    params.retry_after = RETRY_AFTER;
    params
}

/// Every process of this binary uses the test server and a short lease.
fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| cachier::set_global_params(cachier::global_params().mongo(params())));
}

mod contract {
    use super::*;

    /// A fresh core: a function name no other core uses.
    fn fresh() -> Box<dyn Core> {
        let function = support::fresh_function();
        Box::new(MongoCore::with_params(function, &params()))
    }

    cachier_core::core_contract!(fresh);
}

// The zero-code form: CACHIER_MONGO_URI, default database and collection.
support::shared_store_tests!("mongo");

/// A server of this test's own, which it stops (`SIGTERM`, so that it removes
/// its temporary storage) and starts again.
fn own_server_started(port: u16) -> support::OwnServer {
    let binary = std::env::var("CACHIER_SECANTUSD")
        .expect("the restart test starts its own server: run scripts/test, or set CACHIER_SECANTUSD");
    let mut command = Command::new(binary);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--storage-path", ":memory:", "--log-level", "WARNING"]);
    let client = Client::with_options(client_options(port, Duration::from_millis(500))).unwrap();
    let ping = cachier::mongodb::bson::doc! { "ping": 1 };
    support::OwnServer::start(command, "TERM", || {
        client.database("admin").run_command(ping.clone()).run().is_ok()
    })
}

fn client_options(port: u16, timeout: Duration) -> ClientOptions {
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let mut options = ClientOptions::parse(uri).run().unwrap();
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout);
    options
}

static OWN_PORT: OnceLock<u16> = OnceLock::new();

fn own_server() -> Collection<Document> {
    let port = *OWN_PORT.get().expect("the port is chosen before the first call");
    let client = Client::with_options(client_options(port, Duration::from_millis(500))).unwrap();
    client.database("cachier_test").collection("restart")
}

#[cachier(backend = "mongo", mongetter = own_server)]
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
