//! `#[cachier]` as a user writes it: call sites, the cache controls, and the
//! shapes of arguments and return types.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cachier::{CallOptions, cachier};
use serde::{Deserialize, Serialize};
use support::counted;

/// A scratch cache directory of this test binary.
fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("attribute")
        .join(name)
}

static ADD_RUNS: AtomicU64 = AtomicU64::new(0);

/// Adds two numbers, slowly.
#[cachier(cache_dir = scratch("add"))]
fn slow_add(a: u64, b: u64) -> u64 {
    ADD_RUNS.fetch_add(1, Ordering::SeqCst);
    a + b
}

#[test]
fn call_sites_stay_the_same_and_the_file_core_is_the_default() {
    slow_add.clear_cache().unwrap();
    let runs = ADD_RUNS.load(Ordering::SeqCst);
    assert_eq!(slow_add(1, 23), 24);
    assert_eq!(slow_add(1, 23), 24);
    assert_eq!(
        slow_add(12, 3),
        15,
        "f(1, 23) and f(12, 3) must not share an entry"
    );
    assert_eq!(ADD_RUNS.load(Ordering::SeqCst) - runs, 2);
    let dir = slow_add.cache_dpath().expect("the file core has a directory");
    // One directory per function, and in it one per version of its code.
    assert_eq!(dir.parent(), Some(&*scratch("add").join("attribute.slow_add")));
    assert!(
        dir.file_name().unwrap().to_str().unwrap().starts_with("code-"),
        "{dir:?}"
    );
    // Small entries are packed in one segment of this process (Linux: where
    // generation counters are), not a file each.
    let packed = cfg!(target_os = "linux");
    assert_eq!(
        counted(&dir, ["segment", "cachier"]),
        if packed { [1, 0] } else { [0, 2] }
    );
    // The function is also usable as a value.
    let as_pointer: fn(u64, u64) -> u64 = *slow_add;
    assert_eq!(as_pointer(1, 23), 24);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Options {
    lowercase: bool,
    weights: HashMap<String, u64>,
}

static PARSE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn parse(text: &str, opts: &Options) -> Vec<String> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    let words = text.split_whitespace();
    words
        .map(|w| {
            if opts.lowercase {
                w.to_lowercase()
            } else {
                w.to_owned()
            }
        })
        .collect()
}

#[test]
fn reference_arguments_and_hash_maps_key_by_value() {
    let forward = Options {
        lowercase: true,
        weights: (0..40).map(|i| (i.to_string(), i)).collect(),
    };
    let mut weights = HashMap::with_capacity(512);
    weights.extend((0..40).rev().map(|i| (i.to_string(), i)));
    let backward = Options {
        lowercase: true,
        weights,
    };
    assert_eq!(forward, backward);

    assert_eq!(parse("Hello World", &forward), ["hello", "world"]);
    assert_eq!(parse(&String::from("Hello World"), &backward), ["hello", "world"]);
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst),
        1,
        "equal maps must give equal keys"
    );
    assert_eq!(parse.cache_dpath(), None, "the memory core has no directory");
}

#[cachier(backend = "memory")]
fn first_letter_of(words: &str) -> String {
    words.chars().take(1).collect()
}

#[cachier(backend = "memory")]
fn last_letter_of(words: &str) -> String {
    words.chars().last().into_iter().collect()
}

#[test]
fn two_functions_never_share_entries() {
    assert_eq!(first_letter_of("abc"), "a");
    assert_eq!(last_letter_of("abc"), "c");
    assert_eq!(first_letter_of.cache_info().misses, 1);
    assert_eq!(last_letter_of.cache_info().misses, 1);
}

#[derive(Debug, PartialEq)]
struct ReportError(String);

static REPORT_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn report(date: &str) -> Result<String, ReportError> {
    REPORT_RUNS.fetch_add(1, Ordering::SeqCst);
    match date {
        "" => Err(ReportError("no date".into())),
        date => Ok(format!("report for {date}")),
    }
}

#[test]
fn only_ok_results_are_cached() {
    let runs = || REPORT_RUNS.load(Ordering::SeqCst);
    assert_eq!(report(""), Err(ReportError("no date".into())));
    assert_eq!(report(""), Err(ReportError("no date".into())));
    assert_eq!(runs(), 2, "an Err was cached");
    assert_eq!(report("2026-01-01"), Ok("report for 2026-01-01".into()));
    assert_eq!(report("2026-01-01"), Ok("report for 2026-01-01".into()));
    assert_eq!(runs(), 3);
}

static LOOKUPS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn lookup(id: u32) -> Option<String> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

static LOOKUPS_ALLOWING_NONE: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", allow_none)]
fn lookup_allowing_none(id: u32) -> Option<String> {
    LOOKUPS_ALLOWING_NONE.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then(|| format!("user {id}"))
}

#[test]
fn none_is_cached_only_with_allow_none() {
    for _ in 0..2 {
        assert_eq!(lookup(1), None);
        assert_eq!(lookup(2).as_deref(), Some("user 2"));
        assert_eq!(lookup_allowing_none(1), None);
    }
    assert_eq!(
        LOOKUPS.load(Ordering::SeqCst),
        3,
        "None was cached without allow_none"
    );
    assert_eq!(
        LOOKUPS_ALLOWING_NONE.load(Ordering::SeqCst),
        1,
        "None was not cached with allow_none"
    );
}

static CONTROL_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn controlled(x: u64) -> u64 {
    CONTROL_RUNS.fetch_add(1, Ordering::SeqCst) + 1000 * x
}

#[test]
fn the_cache_controls() {
    let stored = controlled(1);
    assert_eq!(controlled(1), stored);

    let ignored = controlled.ignore_cache(1);
    assert_ne!(ignored, stored, "ignore_cache must run the body");
    assert_eq!(controlled(1), stored, "ignore_cache must not store");

    let overwritten = controlled.overwrite_cache(1);
    assert_ne!(overwritten, stored);
    assert_eq!(controlled(1), overwritten, "overwrite_cache must store");

    assert_eq!(controlled.verbose_cache(1), overwritten);

    let fresh = controlled.call_with(&CallOptions::new().max_age(Duration::ZERO), 1);
    assert_ne!(fresh, overwritten, "max_age 0 must recompute");
    assert_eq!(controlled(1), fresh);

    controlled.precache_value(2, 7).unwrap();
    assert_eq!(controlled(2), 7, "a precached value is served");

    controlled.clear_cache().unwrap();
    let runs = CONTROL_RUNS.load(Ordering::SeqCst);
    controlled(1);
    assert_eq!(
        CONTROL_RUNS.load(Ordering::SeqCst),
        runs + 1,
        "clear_cache must drop entries"
    );
    controlled.clear_being_calculated().unwrap();

    let info = controlled.cache_info();
    assert!(
        info.hits >= 4 && info.misses >= 2 && info.stale_hits >= 1,
        "{info:?}"
    );
    assert_eq!(info.cache_errors, 0);
}

#[test]
fn precaching_a_value_the_function_would_not_cache_is_an_error() {
    let refused = report.precache_value("x", Err(ReportError("nope".into())));
    assert!(
        matches!(refused, Err(cachier::Error::NotCacheable)),
        "{refused:?}"
    );
}

/// Not serializable: keyed through `hash_func`.
struct Connection {
    host: String,
}

fn by_host(conn: &Connection, table: &str) -> (String, String) {
    (conn.host.clone(), table.to_owned())
}

static ROWS_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", hash_func = by_host)]
fn count_rows(conn: &Connection, table: &str) -> u64 {
    ROWS_RUNS.fetch_add(1, Ordering::SeqCst);
    conn.host.len() as u64 + table.len() as u64
}

#[test]
fn hash_func_keys_arguments_that_are_not_serializable() {
    let a = Connection { host: "db1".into() };
    let b = Connection { host: "db1".into() };
    assert_eq!(count_rows(&a, "users"), 8);
    assert_eq!(count_rows(&b, "users"), 8);
    assert_eq!(count_rows(&b, "orders"), 9);
    assert_eq!(ROWS_RUNS.load(Ordering::SeqCst), 2);
}

static STALE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", stale_after = Duration::ZERO, next_time = true)]
fn always_stale(label: &str, mut tags: HashSet<String>) -> String {
    let run = STALE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    tags.insert(label.to_owned());
    format!("{label}-{}-{run}", tags.len())
}

#[test]
fn next_time_returns_the_stale_value_and_refreshes_in_the_background() {
    let tags = || HashSet::from(["a".to_string()]);
    assert_eq!(always_stale("x", tags()), "x-2-1");
    assert_eq!(
        always_stale("x", tags()),
        "x-2-1",
        "the stale value is returned at once"
    );
    always_stale.wait_for_background();
    assert_eq!(STALE_RUNS.load(Ordering::SeqCst), 2, "one background refresh");
    assert_eq!(
        always_stale("x", tags()),
        "x-2-2",
        "the refreshed value is served next time"
    );
    always_stale.wait_for_background();
}

static FRESH_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", stale_after = "1h")]
fn fresh_for_an_hour(_x: u8) -> u64 {
    FRESH_RUNS.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn entries_younger_than_stale_after_are_served() {
    let first = fresh_for_an_hour(1);
    assert_eq!(fresh_for_an_hour(1), first);
    assert_eq!(fresh_for_an_hour.cache_info().stale_hits, 0);
}

// Arguments named like things the macro generates must not collide with them.
#[cachier(backend = "memory")]
fn collisions(key: u8, cache: u8, options: u8, value: u8, body: u8) -> u32 {
    u32::from(key) + u32::from(cache) + u32::from(options) + u32::from(value) + u32::from(body)
}

#[test]
fn argument_names_cannot_collide_with_generated_names() {
    assert_eq!(collisions(1, 2, 3, 4, 5), 15);
    assert_eq!(
        collisions
            .precache_value(0, 0, 0, 0, 1, 99)
            .map(|()| collisions(0, 0, 0, 0, 1))
            .unwrap(),
        99
    );
}

// Lifetimes and where-clauses are forwarded to everything generated.
#[cachier(backend = "memory")]
fn longest<'a, 'b>(a: &'a str, b: &'b str) -> usize
where
    String: Clone,
{
    a.len().max(b.len())
}

#[test]
fn lifetimes_are_forwarded() {
    let owned = String::from("four");
    assert_eq!(longest(&owned, "seven!!"), 7);
    assert_eq!(longest.ignore_cache("a", "bb"), 2);
}

// Recursion goes through the cache.
#[cachier(backend = "memory")]
fn fibonacci(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci(n - 1) + fibonacci(n - 2)
    }
}

#[test]
fn recursive_calls_are_memoized() {
    assert_eq!(fibonacci(90), 2_880_067_194_370_816_120);
    assert_eq!(fibonacci.cache_info().recalculations, 91);
}

mod visibility {
    use cachier::cachier;

    /// Public functions stay public, with their controls.
    #[cachier(backend = "memory")]
    pub fn shout(text: &str) -> String {
        text.to_uppercase()
    }
}

#[test]
fn cached_functions_can_be_imported_from_other_modules() {
    use visibility::shout;
    assert_eq!(shout("hi"), "HI");
    assert_eq!(shout.cache_info().misses, 1);
}

#[cachier(backend = "memory")]
fn no_arguments() -> u64 {
    41 + 1
}

#[test]
fn functions_without_arguments_are_cached() {
    assert_eq!(no_arguments(), 42);
    assert_eq!(no_arguments(), 42);
    assert_eq!(no_arguments.cache_info().hits, 1);
}

mod renamed {
    // `crate = ...` points the macro at the runtime under another name.
    use cachier as cache_lib;

    #[cache_lib::cachier(backend = "memory", crate = cache_lib)]
    pub fn twice(x: u32) -> u32 {
        x * 2
    }
}

#[test]
fn the_crate_path_can_be_given() {
    assert_eq!(renamed::twice(21), 42);
}

/// A client that is not `Serialize`, and a progress log: neither is part of the key.
struct ApiClient {
    requests: AtomicU64,
}

#[cachier(backend = "memory", ignore = [client, progress])]
fn daily_total(client: &ApiClient, day: u32, progress: &mut Vec<u32>) -> u64 {
    client.requests.fetch_add(1, Ordering::SeqCst);
    progress.push(day);
    u64::from(day) * 10
}

#[test]
fn ignored_arguments_are_left_out_of_the_key() {
    let (first, second) = (
        ApiClient {
            requests: AtomicU64::new(0),
        },
        ApiClient {
            requests: AtomicU64::new(0),
        },
    );
    let mut progress = Vec::new();
    assert_eq!(daily_total(&first, 3, &mut progress), 30);
    assert_eq!(
        daily_total(&second, 3, &mut progress),
        30,
        "another client, same key"
    );
    assert_eq!(daily_total(&second, 4, &mut progress), 40);
    assert_eq!(
        first.requests.load(Ordering::SeqCst) + second.requests.load(Ordering::SeqCst),
        2
    );
    assert_eq!(progress, [3, 4], "the body ran for days 3 and 4 only");
}

mod nested {
    use cachier::cachier;

    #[cachier(backend = "memory")]
    pub fn triple(x: u64) -> u64 {
        x * 3
    }
}

#[test]
fn cache_of_reaches_a_function_s_cache_by_its_path_before_its_first_call() {
    let cache: &'static cachier::FunctionCache = cachier::cache_of!(nested::triple);
    cache.clear().unwrap();
    assert_eq!(cache.info().calls(), 0);
    assert_eq!(nested::triple(2), 6);
    assert_eq!(cachier::cache_of!(nested::triple).info().misses, 1);
    assert!(
        std::ptr::eq(cache, nested::triple.cache()),
        "one cache per function"
    );
}
