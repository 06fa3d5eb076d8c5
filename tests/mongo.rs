//! The MongoDB core against a real MongoDB-wire-compatible server.
//!
//! `scripts/test` starts one on 127.0.0.1 and sets `CACHIER_MONGO_URI` (point it
//! at any real `mongod` to run these unchanged there), and `CACHIER_SECANTUSD`,
//! the server binary the restart test starts and stops itself. Processes other
//! than the test are this binary run again as the ignored test `child`.
#![cfg(feature = "mongo")]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachier::mongodb::bson::Document;
use cachier::mongodb::options::ClientOptions;
use cachier::mongodb::sync::{Client, Collection};
use cachier::{Core, MongoCore, MongoParams, cachier};
use support::PATIENCE;

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
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let function = format!(
            "contract-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Box::new(MongoCore::with_params(function, &params()))
    }

    cachier_core::core_contract!(fresh);
}

// The zero-code form: CACHIER_MONGO_URI, default database and collection.
support::shared_store_tests!("mongo");

/// A server of this test's own, which it stops and starts again.
struct Server {
    process: Option<Child>,
}

impl Server {
    fn start(port: u16) -> Server {
        let binary = std::env::var("CACHIER_SECANTUSD")
            .expect("the restart test starts its own server: run scripts/test, or set CACHIER_SECANTUSD");
        let process = Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
                ":memory:",
            ])
            .args(["--log-level", "WARNING"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            process: Some(process),
        };
        let client = Client::with_options(client_options(port, Duration::from_millis(500))).unwrap();
        let ping = cachier::mongodb::bson::doc! { "ping": 1 };
        let deadline = std::time::Instant::now() + PATIENCE;
        while client.database("admin").run_command(ping.clone()).run().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the test server never answered"
            );
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // SIGTERM, so that it removes its temporary storage.
            Command::new("kill")
                .arg(process.id().to_string())
                .status()
                .unwrap();
            process.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    OWN_PORT.set(port).unwrap();
    support::survives_an_outage(
        || Server::start(port),
        *on_own_server,
        on_own_server.cache(),
        RETRY_AFTER,
    );
}
