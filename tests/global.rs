//! Process-wide settings: global params, the caching switch and the
//! environment overrides. They are process state, so the tests that change them
//! take turns, and the environment is tried in child processes.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cachier::cachier;

/// Held by every test that changes process-wide settings.
static SETTINGS: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("global")
        .join(name)
}

static SWITCHED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn switched(x: u64) -> u64 {
    SWITCHED_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn disable_caching_runs_every_body_without_touching_the_cache() {
    let _turn = SETTINGS.lock().unwrap();
    cachier::disable_caching();
    assert!(!cachier::caching_enabled());
    switched(1);
    switched(1);
    assert_eq!(SWITCHED_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(
        switched.cache_info().calls(),
        0,
        "the cache was consulted while disabled"
    );
    cachier::enable_caching();
    switched(1);
    switched(1);
    assert_eq!(SWITCHED_RUNS.load(Ordering::SeqCst), 3);
}

// No backend or directory of their own: they take the global params.
#[cachier]
fn follows_global_backend(x: u64) -> u64 {
    x
}

#[cachier]
fn follows_global_dir(x: u64) -> u64 {
    x
}

static AGING_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory")]
fn follows_global_staleness(x: u64) -> u64 {
    AGING_RUNS.fetch_add(1, Ordering::SeqCst) + x
}

#[test]
fn global_params_are_the_defaults_of_functions_that_set_nothing() {
    let _turn = SETTINGS.lock().unwrap();
    let original = cachier::global_params();

    cachier::set_global_params(original.clone().backend(cachier::Backend::Memory));
    assert_eq!(follows_global_backend.cache_dpath(), None, "read when first used");

    cachier::set_global_params(original.clone().cache_dir(scratch("global-dir")));
    assert_eq!(
        follows_global_dir.cache_dpath().unwrap().parent(),
        Some(&*scratch("global-dir").join("global.follows_global_dir"))
    );

    // Staleness is read at every call.
    let first = follows_global_staleness(1);
    assert_eq!(follows_global_staleness(1), first);
    cachier::set_global_params(original.clone().stale_after(Some(Duration::ZERO)));
    assert_ne!(
        follows_global_staleness(1),
        first,
        "the global stale_after was ignored"
    );

    cachier::set_global_params(original.clone());
    assert_eq!(cachier::global_params(), original);
}

/// Runs `probe` in a child process with `env` set; returns what it printed.
fn in_child(env: &[(&str, &str)]) -> String {
    support::stdout_of(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "probe", "--ignored", "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied()),
    )
}

static PROBE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cachier]
fn probed(x: u64) -> u64 {
    PROBE_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
#[ignore = "a helper: the environment tests run it as a child process"]
fn probe() {
    probed(1);
    probed(1);
    println!("runs={}", PROBE_RUNS.load(Ordering::SeqCst));
    println!("dpath={}", probed.cache_dpath().unwrap().display());
    probed.clear_cache().unwrap();
}

#[test]
fn cachier_dir_moves_the_default_directory() {
    let dir = scratch("from-env");
    let printed = in_child(&[("CACHIER_DIR", dir.to_str().unwrap())]);
    assert!(
        printed.contains(&format!("dpath={}", dir.join("global.probed").display())),
        "{printed}"
    );
    assert!(printed.contains("runs=1"), "{printed}");
}

#[test]
fn cachier_disable_turns_caching_off() {
    let dir = scratch("disabled");
    let printed = in_child(&[("CACHIER_DIR", dir.to_str().unwrap()), ("CACHIER_DISABLE", "1")]);
    assert!(printed.contains("runs=2"), "{printed}");
}
