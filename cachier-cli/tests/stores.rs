//! The built `cachier` binary on the shared stores, filled by real cached
//! functions: an SQLite file of its own, and the PostgreSQL, Redis and
//! MongoDB servers `scripts/test` starts (`CACHIER_SQL_URL`,
//! `CACHIER_REDIS_URL`, `CACHIER_MONGO_URI`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use cachier::{SqlCore, SqlParams, cachier};
use serde_json::Value;

static SQLITE: LazyLock<String> = LazyLock::new(|| {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-stores.db");
    format!("sqlite://{}", path.display())
});

fn sqlite_core() -> SqlCore {
    let mut params = SqlParams::default();
    params.url = Some(SQLITE.clone());
    SqlCore::with_params("stores::on_sqlite", &params)
}

/// Runs of each function's body (the tests run at once: one counter each).
static RUNS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

#[cachier(core = sqlite_core())]
fn on_sqlite(x: u64) -> u64 {
    RUNS[0].fetch_add(1, Ordering::SeqCst);
    x * x
}

#[cachier(backend = "sql")]
fn on_postgres(x: u64) -> u64 {
    RUNS[1].fetch_add(1, Ordering::SeqCst);
    x * x
}

#[cachier(backend = "redis")]
fn on_redis(x: u64) -> u64 {
    RUNS[2].fetch_add(1, Ordering::SeqCst);
    x * x
}

#[cachier(backend = "mongo")]
fn on_mongo(x: u64) -> u64 {
    RUNS[3].fetch_add(1, Ordering::SeqCst);
    x * x
}

/// Runs `cachier <store> args..`, which must succeed; returns its stdout.
fn cachier(store: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cachier"))
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(store: &str, args: &[&str]) -> Value {
    serde_json::from_str(&cachier(store, args)).unwrap()
}

/// `ls`, `show`, `stats` and `clear` on `store`, after three calls of
/// `function` (named `name`, its body counted in `runs`), whose keys are `keys`.
fn lists_shows_and_clears(
    store: &str,
    name: &str,
    function: fn(u64) -> u64,
    keys: [String; 3],
    runs: &AtomicU64,
) {
    cachier(store, &["clear", name]);
    let before = runs.load(Ordering::SeqCst);
    (1..=3).for_each(|x| assert_eq!(function(x), x * x));

    let listing = json(store, &["ls", "--json"]);
    let row = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {listing}"));
    assert_eq!(row["entries"], 3, "{row}");
    assert!(row["bytes"].as_u64().unwrap() > 0);
    assert!(row["oldest"].as_f64().unwrap() <= row["newest"].as_f64().unwrap());

    let entries = json(store, &["show", name, "--json"]);
    let mut shown: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    shown.sort();
    let mut keys = keys.to_vec();
    keys.sort();
    assert_eq!(shown, keys);
    let human = cachier(store, &["ls"]);
    assert!(human.contains(name) && human.contains("ENTRIES"), "{human}");
    assert!(json(store, &["stats", "--json"])["entries"].as_u64().unwrap() >= 3);

    assert!(cachier(store, &["clear", name]).contains("removed 3 entries"));
    assert_eq!(function(2), 4);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        before + 4,
        "the running process saw the clear"
    );
}

macro_rules! keys {
    ($f:ident) => {
        [1u64, 2, 3].map(|x| $f.cache().key(&(x,)).unwrap().to_string())
    };
}

#[test]
fn an_sqlite_file() {
    let store = format!("--sql={}", *SQLITE);
    lists_shows_and_clears(
        &store,
        "stores::on_sqlite",
        *on_sqlite,
        keys!(on_sqlite),
        &RUNS[0],
    );

    // gc on a store of its own: dry run, then the oldest past a budget.
    (1..=3).for_each(|x| assert_eq!(on_sqlite(x), x * x));
    let one = json(&store, &["show", "stores::on_sqlite", "--json"])[0]["bytes"].clone();
    let budget = format!("{one}B");
    let dry = json(&store, &["gc", "--max-bytes", &budget, "--dry-run", "--json"]);
    assert_eq!(dry["over_budget"], 2, "{dry}");
    assert_eq!(
        json(&store, &["ls", "--json"])[0]["entries"],
        3,
        "a dry run removes nothing"
    );
    assert_eq!(
        json(&store, &["gc", "--max-bytes", &budget, "--json"])["over_budget"],
        2
    );
    assert_eq!(json(&store, &["ls", "--json"])[0]["entries"], 1);
    assert_eq!(json(&store, &["gc", "--older-than", "0s", "--json"])["old"], 1);
    assert_eq!(json(&store, &["ls", "--json"]), Value::Array(vec![]));
}

#[test]
fn postgresql() {
    lists_shows_and_clears(
        "--sql",
        "stores::on_postgres",
        *on_postgres,
        keys!(on_postgres),
        &RUNS[1],
    );
}

#[test]
fn redis() {
    lists_shows_and_clears(
        "--redis",
        "stores::on_redis",
        *on_redis,
        keys!(on_redis),
        &RUNS[2],
    );
}

#[test]
fn mongodb() {
    lists_shows_and_clears(
        "--mongo",
        "stores::on_mongo",
        *on_mongo,
        keys!(on_mongo),
        &RUNS[3],
    );
}
