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

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use cachier::{SqlCore, cachier};

fn url() -> String {
    std::env::var("CACHIER_SQL_URL")
        .expect("the SQL tests need a database: run scripts/test, or set CACHIER_SQL_URL")
}

support::sql_suite!();

/// A PostgreSQL server of this test's own on one data directory, which it
/// stops at once, as a crash would (`SIGQUIT`: immediate shutdown), and starts again.
fn own_server_started(port: u16, dir: &PathBuf) -> support::OwnServer {
    let script = std::env::var("CACHIER_POSTGRES_SERVER")
        .expect("the restart test starts its own server: run scripts/test, or set CACHIER_POSTGRES_SERVER");
    let mut command = Command::new(script);
    command.arg(port.to_string()).arg(dir);
    let url = own_url(port);
    support::OwnServer::start(command, "QUIT", || {
        postgres::Client::connect(&url, postgres::NoTls)
            .and_then(|mut client| client.simple_query("SELECT 1"))
            .is_ok()
    })
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
    let port = support::free_port();
    OWN_PORT.set(port).unwrap();
    let dir = std::env::temp_dir().join(format!("cachier-sql-outage-{}", std::process::id()));
    support::survives_an_outage(
        || own_server_started(port, &dir),
        *on_own_server,
        on_own_server.cache(),
        RETRY_AFTER,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("initdb.log"));
}
