//! A cache directory is untrusted input. Each test makes one attack on a real
//! directory; each time the function returns its own result, the failure is
//! counted and logged, and nothing hangs, aborts, or is served that was not
//! computed for these arguments by this function.
//!
//! The attacks on entry files are made on functions that keep one file per
//! entry (`segments = false`), as values over 4 KiB do in any layout: a
//! function packing its entries never reads a file planted for a small one.
//! The attacks on segments are in tests/segments.rs.

mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use cachier::file::format;
use cachier::{Core, Entry, FileCore, FunctionCache, Key, cachier};
use support::{logged, returns};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("hostile")
        .join(name)
}

/// Empties a scratch directory before its function's first call.
fn reset(name: &str) {
    let _ = fs::remove_dir_all(scratch(name));
}

fn path_of(cache: &FunctionCache, key: Key, ext: &str) -> PathBuf {
    cache.dpath().unwrap().join(format!("{key}.{ext}"))
}

/// Where a claim on `key` is taken: the directory's `claims` file on Linux,
/// a lock file per key elsewhere.
fn claim_path(cache: &FunctionCache, key: Key) -> PathBuf {
    if cfg!(target_os = "linux") {
        cache.dpath().unwrap().join("claims")
    } else {
        path_of(cache, key, "lock")
    }
}

/// The bytes of a valid entry file holding `value` for `key`.
fn valid_entry<T: serde::Serialize>(key: Key, value: &T) -> Vec<u8> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
    format::encode(&key, &Entry::new(SystemTime::now(), bytes))
}

/// Waits until a process that opened the claims file before it was replaced
/// by hand looks at its name again: claims trust the directory's counters
/// for a second (hand changes are seen within a second, as for entries).
fn until_the_claims_file_is_looked_at_again() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Checks that `call` returned the function's own result with one more cache
/// error counted, and that the warning mentions each of `words`.
fn survives<T: PartialEq + std::fmt::Debug>(
    cache: &FunctionCache,
    call: impl FnOnce() -> (T, T),
    words: &[&str],
) {
    let errors = cache.info().cache_errors;
    let mut result = None;
    let log = logged(|| result = Some(call()));
    let (got, expected) = result.unwrap();
    assert_eq!(got, expected, "not the function's own result; log: {log}");
    assert!(cache.info().cache_errors > errors, "the failure was not counted");
    for word in words {
        assert!(
            log.contains("WARN") && log.contains(word),
            "no warning with {word:?} in {log:?}"
        );
    }
}

// 1. One file must not abort the process.

#[cachier(cache_dir = scratch("sparse"), segments = false)]
fn sparse(x: u64) -> u64 {
    x + 1
}

#[test]
fn sparse_giant_entry_files_are_misses_read_no_further_than_their_header() {
    reset("sparse");
    let path = path_of(sparse.cache(), sparse.cache().key(&(7u64,)).unwrap(), "cachier");
    assert_eq!(sparse(7), 8);
    // `truncate -s`: the real header stays, declaring 1 byte of value.
    for size in [1 << 40, 2 << 30] {
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size)
            .unwrap();
        survives(
            sparse.cache(),
            || (sparse(7), 8),
            &["corrupt cache entry", "header says"],
        );
    }
    // A sparse file of zeros from the start.
    fs::remove_file(&path).unwrap();
    fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
    survives(sparse.cache(), || (sparse(7), 8), &["bad magic"]);
    assert_eq!(sparse(7), 8);
    assert_eq!(fs::metadata(&path).unwrap().len(), 51, "replaced by a real entry");
}

#[cachier(cache_dir = scratch("prefix"), segments = false)]
fn label(x: u64) -> String {
    format!("label {x}")
}

#[test]
fn a_valid_entry_whose_string_claims_32_gib_is_a_miss() {
    reset("prefix");
    assert_eq!(label(1), "label 1"); // creates the directory
    let key = label.cache().key(&(3u64,)).unwrap();
    // bincode varint 0xfd + u64: a string of 2^35 bytes, followed by four.
    let mut value = vec![0xfd];
    value.extend_from_slice(&(1u64 << 35).to_le_bytes());
    value.extend_from_slice(b"tiny");
    let entry = format::encode(&key, &Entry::new(SystemTime::now(), value));
    fs::write(path_of(label.cache(), key, "cachier"), entry).unwrap();
    survives(
        label.cache(),
        || (label(3), "label 3".to_string()),
        &["decoding an entry", "LimitExceeded"],
    );
}

#[cachier(cache_dir = scratch("devzero"), segments = false)]
fn zeroed(x: u64) -> u64 {
    x * 10
}

#[test]
fn a_symlink_to_dev_zero_at_an_entry_path_is_never_followed() {
    reset("devzero");
    assert_eq!(zeroed(1), 10);
    let path = path_of(zeroed.cache(), zeroed.cache().key(&(2u64,)).unwrap(), "cachier");
    symlink("/dev/zero", &path).unwrap();
    survives(zeroed.cache(), || (returns(|| zeroed(2)), 20), &["symbolic link"]);
    assert!(
        path.is_file() && !path.is_symlink(),
        "the link is replaced by an entry"
    );
}

// 2. A FIFO must not hang the caller.

#[cachier(cache_dir = scratch("fifo"), segments = false)]
fn piped(x: u64) -> u64 {
    x + 100
}

fn mkfifo(path: &Path) {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
}

#[test]
fn fifos_at_entry_and_claim_paths_never_block() {
    reset("fifo");
    assert_eq!(piped(0), 100);
    let key = piped.cache().key(&(1u64,)).unwrap();
    mkfifo(&path_of(piped.cache(), key, "cachier"));
    let claims = claim_path(piped.cache(), key);
    let _ = fs::remove_file(&claims);
    mkfifo(&claims);
    until_the_claims_file_is_looked_at_again();
    survives(
        piped.cache(),
        || (returns(|| piped(1)), 101),
        &["Fifo, not a regular file", "claiming a key"],
    );
}

// 3. Nobody else can read cached results.

#[cachier(cache_dir = scratch("private/root"))]
fn secret(x: u64) -> String {
    format!("secret {x}")
}

#[cachier(cache_dir = scratch("private/root"), segments = false)]
fn filed_secret(x: u64) -> String {
    format!("secret {x}")
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The permission bits of every file in the directory `dir`.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut modes: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|file| file.unwrap().path())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                mode(&path),
            )
        })
        .collect();
    modes.sort();
    modes
}

#[test]
fn directories_are_0700_and_files_0600_whatever_the_umask() {
    use rustix::fs::Mode;
    reset("private");
    let old = rustix::process::umask(Mode::empty());
    assert_eq!(secret(1), "secret 1");
    assert_eq!(filed_secret(1), "secret 1");
    rustix::process::umask(old);
    let dir = secret.cache_dpath().unwrap();
    let function_dir = dir.parent().unwrap().to_path_buf();
    assert_eq!(mode(&scratch("private/root")), 0o700, "the cache root");
    assert_eq!(mode(&function_dir), 0o700, "the function directory");
    assert_eq!(mode(&dir), 0o700, "the directory of the function's code version");
    // Segments, entry files, the claims and the counters.
    assert!(modes(&dir).iter().any(|(name, _)| name.ends_with(".segment")));
    for dir in [dir.clone(), filed_secret.cache_dpath().unwrap()] {
        let files = modes(&dir);
        assert!(files.len() >= 2, "{files:?}");
        assert!(files.iter().all(|(_, mode)| *mode == 0o600), "{files:?}");
    }
    let entry = path_of(
        filed_secret.cache(),
        filed_secret.cache().key(&(1u64,)).unwrap(),
        "cachier",
    );
    assert_eq!(mode(&entry), 0o600);

    // A directory left 0755 by an older version is restricted on first use.
    fs::set_permissions(&function_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = FunctionCache::builder("hostile::secret")
        .cache_dir(scratch("private/root"))
        .build();
    assert_eq!(fresh.dpath().unwrap().parent(), Some(&*function_dir));
    let _ = fresh.core().get(&fresh.key(&1u64).unwrap());
    assert_eq!(mode(&function_dir), 0o700);
}

// 4. Poisoning: entries planted by another user are never served.

fn planted_dir(case: &str) -> PathBuf {
    scratch("planted").join(case)
}

/// One function per case, so that each opens its directory after the attack.
macro_rules! planted_fn {
    ($name:ident, $case:literal) => {
        #[cachier(cache_dir = planted_dir($case), segments = false)]
        fn $name(x: u64) -> String {
            format!("computed {x}")
        }
    };
}
planted_fn!(foreign_owner, "owner");
planted_fn!(world_writable, "writable");
planted_fn!(open_root, "root");
planted_fn!(sticky_root, "sticky");
planted_fn!(linked, "link");

/// Makes `dir` hold a valid entry that says "planted" for argument 1.
fn plant(cache: &FunctionCache, dir: &Path) {
    let _ = fs::remove_dir_all(dir.parent().unwrap());
    fs::create_dir_all(dir).unwrap();
    let key = cache.key(&(1u64,)).unwrap();
    fs::write(dir.join(format!("{key}.cachier")), valid_entry(key, &"planted")).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_function_directory_owned_by_another_user_is_not_trusted() {
    if !is_root() {
        eprintln!("skipped: making a directory of another owner needs root (CI runs as root)");
        return;
    }
    let cache = foreign_owner.cache();
    plant(cache, &cache.dpath().unwrap());
    std::os::unix::fs::chown(cache.dpath().unwrap(), Some(65534), Some(65534)).unwrap();
    survives(
        cache,
        || (foreign_owner(1), "computed 1".into()),
        &["untrusted", "owned by uid 65534"],
    );
    assert!(
        foreign_owner.clear_cache().is_err(),
        "nothing is removed in it either"
    );
}

#[test]
fn a_function_directory_others_can_write_is_not_trusted() {
    let cache = world_writable.cache();
    let dir = cache.dpath().unwrap();
    plant(cache, &dir);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    survives(
        cache,
        || (world_writable(1), "computed 1".into()),
        &["writable by other users", "chmod go-w"],
    );
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o777,
        "left for its owner to fix"
    );
}

#[test]
fn a_cache_root_others_can_write_is_not_trusted_unless_sticky() {
    let cache = open_root.cache();
    plant(cache, &cache.dpath().unwrap());
    fs::set_permissions(planted_dir("root"), fs::Permissions::from_mode(0o777)).unwrap();
    survives(
        cache,
        || (open_root(1), "computed 1".into()),
        &["untrusted", "writable by other users"],
    );

    // Like /tmp: others cannot replace what is ours in a sticky directory.
    let cache = sticky_root.cache();
    plant(cache, &cache.dpath().unwrap());
    fs::set_permissions(cache.dpath().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(planted_dir("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    let runs = sticky_root.cache_info().recalculations;
    assert_eq!(sticky_root(1), "planted", "a trusted directory is served");
    assert_eq!(sticky_root.cache_info().recalculations, runs);
}

#[test]
fn symlinks_are_never_followed_for_function_directories_and_lock_files() {
    let cache = linked.cache();
    let elsewhere = scratch("planted-target").join("dir");
    plant(cache, &elsewhere);
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let _ = fs::remove_dir_all(planted_dir("link"));
    fs::create_dir_all(cache.dpath().unwrap().parent().unwrap()).unwrap();
    symlink(&elsewhere, cache.dpath().unwrap()).unwrap();
    let before: Vec<_> = fs::read_dir(&elsewhere)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    survives(
        cache,
        || (linked(1), "computed 1".into()),
        &["untrusted", "symbolic link"],
    );
    linked(2);
    let after: Vec<_> = fs::read_dir(&elsewhere)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(before, after, "entries were written through the link");
}

#[cachier(cache_dir = scratch("lock-link"))]
fn locked(x: u64) -> u64 {
    x + 5
}

#[test]
fn a_claim_file_symlink_does_not_make_the_caller_create_its_target() {
    reset("lock-link");
    assert_eq!(locked(0), 5);
    let victim = scratch("lock-link").join("victim");
    let claims = claim_path(locked.cache(), locked.cache().key(&(1u64,)).unwrap());
    let _ = fs::remove_file(&claims);
    symlink(&victim, claims).unwrap();
    until_the_claims_file_is_looked_at_again();
    survives(
        locked.cache(),
        || (locked(1), 6),
        &["claiming a key", "symbolic link"],
    );
    assert!(!victim.exists(), "the link's target was created");
}

// 6. Distinct functions never share a directory.

#[cachier(cache_dir = scratch("accents"))]
fn café(x: u64) -> u64 {
    x + 1
}

#[cachier(cache_dir = scratch("accents"))]
fn cafè(x: u64) -> u64 {
    x + 2
}

#[test]
fn functions_whose_names_differ_in_one_accent_keep_their_own_directories() {
    reset("accents");
    assert_ne!(café.cache_dpath(), cafè.cache_dpath());
    assert_eq!((café(1), cafè(1)), (2, 3));
    café.clear_cache().unwrap();
    let runs = cafè.cache_info().recalculations;
    assert_eq!(cafè(1), 3);
    assert_eq!(
        cafè.cache_info().recalculations,
        runs,
        "the other's clear_cache deleted this entry"
    );
}

// 7. A re-entrant call runs like the uncached function.

thread_local! {
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[cachier(cache_dir = scratch("reentrant"))]
fn reentrant(x: u64) -> u64 {
    if DEPTH.get() > 0 {
        return x;
    }
    DEPTH.set(1);
    let inner = reentrant(x); // the same arguments, while this call computes them
    DEPTH.set(0);
    inner + 1
}

#[test]
fn a_reentrant_call_with_the_same_arguments_returns() {
    reset("reentrant");
    assert_eq!(returns(|| reentrant(41)), 42);
    assert_eq!(reentrant(41), 42, "the outer call's result is the one cached");
}

// 8. A failure does not release a herd.

/// Bodies running now, and the most that ever ran at once.
struct Concurrency {
    running: AtomicUsize,
    most: AtomicUsize,
    runs: AtomicUsize,
}

impl Concurrency {
    const fn new() -> Self {
        Concurrency {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
        }
    }

    fn body(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        // Long enough for a released herd to overlap.
        for _ in 0..2_000 {
            std::thread::yield_now();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

static FAILING: Concurrency = Concurrency::new();
static PANICKING: Concurrency = Concurrency::new();

#[cachier(cache_dir = scratch("herd"))]
fn api_down(_x: u64) -> Result<u64, String> {
    FAILING.body();
    Err("503".into())
}

#[cachier(cache_dir = scratch("herd"))]
fn crashing(_x: u64) -> u64 {
    PANICKING.body();
    panic!("the body failed");
}

/// Runs `call` on 16 threads released at once; how many returned `true`, and
/// how many panicked.
fn herd(call: fn() -> bool) -> (usize, usize) {
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                call()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    let count = |wanted: fn(&std::thread::Result<bool>) -> bool| results.iter().filter(|r| wanted(r)).count();
    (count(|r| matches!(r, Ok(true))), count(|r| r.is_err()))
}

#[test]
fn after_an_err_or_a_panic_one_computation_runs_at_a_time() {
    reset("herd");
    assert_eq!(
        herd(|| api_down(1).is_err()),
        (16, 0),
        "every caller gets an Err of its own computation"
    );
    assert_eq!(
        FAILING.most.load(Ordering::SeqCst),
        1,
        "bodies ran at the same time"
    );
    assert_eq!(FAILING.runs.load(Ordering::SeqCst), 16);

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = herd(|| {
        crashing(1);
        true
    });
    std::panic::set_hook(default_hook);
    assert_eq!(panicked, (0, 16), "every caller sees its own computation panic");
    assert_eq!(
        PANICKING.most.load(Ordering::SeqCst),
        1,
        "bodies ran at the same time"
    );
}

// 9. Files left by killed writers are reclaimed, and only those.

#[cachier(cache_dir = scratch("orphans"))]
fn stored(x: u64) -> u64 {
    x
}

#[test]
fn orphaned_temporary_and_lock_files_are_reclaimed_after_a_store() {
    reset("orphans");
    assert_eq!(stored(0), 0);
    stored.wait_for_background(); // the process's first reclaim
    let dir = stored.cache_dpath().unwrap();
    let hex = stored.cache().key(&(9u64,)).unwrap().to_string();
    let file = |name: &str, age: Duration| {
        let path = dir.join(name);
        let file = fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        (path, file)
    };
    let hour = Duration::from_secs(3600);
    let (orphan, _) = file(&format!("{hex}.4242-1.tmp"), hour);
    let (orphan_lock, _) = file(&format!("{hex}.lock"), hour);
    let (live, live_file) = file(&format!("{hex}.4242-2.tmp"), hour);
    live_file.lock().unwrap(); // a writer still writing it
    let (fresh, _) = file(&format!("{hex}.4242-3.tmp"), Duration::ZERO);
    let (foreign, _) = file("notes.tmp", hour);
    let (foreign_entry, _) = file(&format!("{hex}.cachier.bak"), hour);

    // The next reclaim is an hour away in this process; a core of another process does it.
    let other = FileCore::new(&dir);
    assert_eq!(other.reclaim().unwrap(), 2);
    assert!(!orphan.exists() && !orphan_lock.exists(), "orphans left behind");
    for kept in [&live, &fresh, &foreign, &foreign_entry] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    drop(live_file);

    // And a store in a fresh process reclaims by itself, in the background.
    let (orphan, _) = file(&format!("{hex}.4243-1.tmp"), hour);
    let again = FunctionCache::builder("hostile::stored")
        .core(FileCore::new(&dir))
        .build();
    again.call(&cachier::CallOptions::DEFAULT, again.key(&5u64), || {
        cachier::Plain(5u64)
    });
    again.wait_for_background();
    assert!(!orphan.exists(), "a store did not reclaim");
    assert!(
        !live.exists(),
        "released by its writer, it is an orphan like the others"
    );
    assert!(fresh.exists() && foreign.exists() && foreign_entry.exists());
}

// 10. The generation counters are untrusted too.

#[test]
fn a_generations_file_that_is_a_symlink_fifo_or_directory_only_costs_a_stat() {
    for attack in ["symlink", "fifo", "directory"] {
        reset("generations");
        let cache = FunctionCache::builder("hostile::counted")
            .cache_dir(scratch("generations"))
            .build();
        let dir = cache.dpath().unwrap();
        fs::create_dir_all(&dir).unwrap();
        let target = scratch("generations-target");
        let _ = fs::remove_file(&target);
        let at = dir.join("generations");
        match attack {
            "symlink" => symlink(&target, &at).unwrap(),
            "fifo" => mkfifo(&at),
            _ => fs::create_dir(&at).unwrap(),
        }
        let call = move |x: u64| {
            let opts = cachier::CallOptions::DEFAULT;
            cache.call(&opts, cache.key(&x), || cachier::Plain(x * 10)).0
        };
        let twice = move || (call(4), call(4), call(5));
        assert_eq!(returns(twice), (40, 40, 50), "{attack}");
        assert!(!target.exists(), "{attack}: a symlink was followed");
        assert!(!at.is_file(), "{attack}: replaced");
    }
}
