//! The SQL core on an SQLite file: the suite of `tests/sql.rs`, with
//! processes of this binary sharing one file in WAL mode, and a file that is
//! not a database.
#![cfg(feature = "sql")]

mod support;

use cachier::{SqlCore, cachier};

/// One file for every process of this binary (runs use keys of their own).
fn url() -> String {
    format!("sqlite://{}/cachier-sqlite-tests.db", env!("CARGO_TARGET_TMPDIR"))
}

support::sql_suite!();

fn garbage() -> SqlCore {
    let file = format!("{}/not-a-database.db", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&file, vec![0x5a; 64 * 1024]).unwrap();
    let mut params = params();
    params.url = Some(format!("sqlite://{file}"));
    SqlCore::with_params("sqlite::on_garbage", &params)
}

#[cachier(core = garbage())]
fn on_garbage(x: u64) -> u64 {
    x + 1
}

#[test]
fn a_file_that_is_not_a_database_costs_the_cache_not_the_caller() {
    let log = support::logged(|| {
        assert_eq!(on_garbage(1), 2);
        assert_eq!(on_garbage(1), 2);
    });
    let info = on_garbage.cache_info();
    assert_eq!(info.hits, 0);
    assert!(info.cache_errors >= 2, "{info:?}");
    assert!(log.contains("WARN"), "{log}");
}
