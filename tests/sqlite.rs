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

/// Processes starting at once on a new database file all get their claims
/// and stores through: none meets the file still being set up by another
/// (switched to WAL, its table created) as a failure. Ten new files, each
/// opened by sixteen cores at once.
#[test]
fn cores_opening_a_new_file_at_once_all_reach_it() {
    use cachier::{Core, Entry, Key};
    let threads = 16;
    for round in 0..10 {
        let file = format!(
            "{}/opened-at-once-{}-{round}.db",
            env!("CARGO_TARGET_TMPDIR"),
            std::process::id()
        );
        let all_ready = std::sync::Barrier::new(threads);
        let failures: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|n| {
                    let (file, all_ready) = (&file, &all_ready);
                    scope.spawn(move || {
                        let mut params = params();
                        params.url = Some(format!("sqlite://{file}"));
                        let core = SqlCore::with_params(&format!("sqlite::at_once_{n}"), &params);
                        let key = Key::new("sqlite::at_once", &n).unwrap();
                        all_ready.wait();
                        let claim = core.try_claim(&key).map_err(|e| format!("claim {n}: {e}"))?;
                        assert!(claim.is_some(), "key {n} is its thread's alone");
                        core.set(&key, &Entry::new(std::time::SystemTime::now(), vec![1; 8]))
                            .map_err(|e| format!("store {n}: {e}"))
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap().err())
                .collect()
        });
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{file}{suffix}"));
        }
        assert!(failures.is_empty(), "round {round}: {failures:?}");
    }
}
