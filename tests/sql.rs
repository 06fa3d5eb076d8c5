//! The SQL core against a real PostgreSQL server.
//!
//! `scripts/test` starts one on 127.0.0.1 and sets `CACHIER_SQL_URL` (point it
//! at a database of yours, PostgreSQL or SQLite, to run these unchanged there),
//! and `CACHIER_POSTGRES_SERVER`, the script with which the restart test
//! starts and stops a server of its own. Processes other than the test are
//! this binary run again as the ignored test `child`. `tests/sqlite.rs` runs
//! the same suite on an SQLite file.
#![cfg(feature = "sql")]

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachier::{SqlCore, cachier};
use support::PATIENCE;

fn url() -> String {
    std::env::var("CACHIER_SQL_URL")
        .expect("the SQL tests need a database: run scripts/test, or set CACHIER_SQL_URL")
}

support::sql_suite!();

/// A PostgreSQL server of this test's own, which it stops and starts again
/// on one data directory.
struct Server {
    process: Option<Child>,
}

impl Server {
    fn start(port: u16, dir: &PathBuf) -> Server {
        let script = std::env::var("CACHIER_POSTGRES_SERVER").expect(
            "the restart test starts its own server: run scripts/test, or set CACHIER_POSTGRES_SERVER",
        );
        let process = Command::new(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            process: Some(process),
        };
        let url = own_url(port);
        let deadline = Instant::now() + PATIENCE;
        while postgres::Client::connect(&url, postgres::NoTls)
            .and_then(|mut client| client.simple_query("SELECT 1"))
            .is_err()
        {
            assert!(Instant::now() < deadline, "the test server never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Stops the server at once, as a crash would (`SIGQUIT`: immediate shutdown).
    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = process.id().to_string();
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
            process.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn own_url(port: u16) -> String {
    format!("postgres://cachier@127.0.0.1:{port}/postgres")
}

static OWN_PORT: OnceLock<u16> = OnceLock::new();

fn own_server() -> SqlCore {
    let port = *OWN_PORT.get().expect("the port is chosen before the first call");
    let mut params = params();
    params.url = Some(own_url(port));
    SqlCore::with_params("sql::on_own_server", &params)
}

#[cachier(core = own_server())]
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
    let dir = std::env::temp_dir().join(format!("cachier-sql-outage-{}", std::process::id()));
    support::survives_an_outage(
        || Server::start(port, &dir),
        *on_own_server,
        on_own_server.cache(),
        RETRY_AFTER,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("initdb.log"));
}
