//! The file core when its files or directory are broken: the function's own
//! result is always returned, the failure is counted and logged, and the entry
//! is replaced.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cachier::cachier;
use support::{counted, entries, logged};

fn scratch(name: &str) -> PathBuf {
    support::emptied_scratch("file_core", name)
}

/// The entry files in `dir`, for the tests that break or remove them by hand.
fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cachier"))
        .collect();
    files.sort();
    files
}

static SQUARES: AtomicU64 = AtomicU64::new(0);

#[cachier(cache_dir = scratch("square"), segments = false)]
fn square(x: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[test]
fn broken_entry_files_are_misses_that_get_replaced() {
    let dir = square.cache_dpath().unwrap();
    assert_eq!(square(3), 9);
    assert_eq!(square(4), 16);
    assert_eq!(entry_files(&dir).len(), 2, "one file per entry");
    let path_of = |x: u64| dir.join(format!("{}.cachier", square.cache().key(&(x,)).unwrap()));
    let (entry_of_3, entry_of_4) = (path_of(3), path_of(4));
    let good_bytes = std::fs::read(&entry_of_3).unwrap();

    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let damage: Vec<(&str, Damage)> = vec![
        (
            "garbage",
            Box::new(|p: &Path| std::fs::write(p, b"not an entry at all").unwrap()),
        ),
        (
            "truncated",
            Box::new(|p: &Path| std::fs::write(p, &good_bytes[..good_bytes.len() - 3]).unwrap()),
        ),
        ("empty", Box::new(|p: &Path| std::fs::write(p, b"").unwrap())),
        (
            "a flipped value byte",
            Box::new(|p: &Path| {
                let mut bytes = good_bytes.clone();
                bytes[47] ^= 0x40;
                std::fs::write(p, bytes).unwrap()
            }),
        ),
        // A valid entry of another key, under this key's name: must not be served as 3 * 3.
        (
            "foreign",
            Box::new(|p: &Path| std::fs::copy(&entry_of_4, p).map(drop).unwrap()),
        ),
    ];
    for (what, break_it) in damage {
        break_it(&entry_of_3);
        let (errors, runs) = (square.cache_info().cache_errors, SQUARES.load(Ordering::SeqCst));
        let log = logged(|| assert_eq!(square(3), 9, "{what}: wrong value"));
        assert_eq!(
            square.cache_info().cache_errors,
            errors + 1,
            "{what}: not counted"
        );
        assert_eq!(
            SQUARES.load(Ordering::SeqCst),
            runs + 1,
            "{what}: the body did not run"
        );
        assert!(
            log.contains("WARN") && log.contains("corrupt cache entry"),
            "{what}: no warning in {log:?}"
        );
        // Replaced (a hit here would keep the entry in memory, where the next
        // damage, made without cachier, would go unseen for a second).
        assert_eq!(
            std::fs::read(&entry_of_3).unwrap().len(),
            good_bytes.len(),
            "{what}: not replaced"
        );
    }
    // The replacement is a clean hit.
    let (errors, runs) = (square.cache_info().cache_errors, SQUARES.load(Ordering::SeqCst));
    assert_eq!(logged(|| assert_eq!(square(3), 9)), "");
    assert_eq!(
        (square.cache_info().cache_errors, SQUARES.load(Ordering::SeqCst)),
        (errors, runs)
    );
}

static UNWRITABLE_RUNS: AtomicU64 = AtomicU64::new(0);

/// The cache directory lies below a regular file, so it can never be created
/// (whoever runs the test, root included).
fn below_a_file() -> PathBuf {
    let file = scratch("not-a-dir");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"a file").unwrap();
    file.join("cache")
}

#[cachier(cache_dir = below_a_file())]
fn unwritable(x: u64) -> u64 {
    UNWRITABLE_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[test]
fn an_unwritable_cache_directory_never_fails_the_caller() {
    let log = logged(|| {
        assert_eq!(unwritable(1), 2);
        assert_eq!(unwritable(1), 2);
    });
    assert_eq!(
        UNWRITABLE_RUNS.load(Ordering::SeqCst),
        2,
        "nothing can be cached, so the body runs each time"
    );
    let info = unwritable.cache_info();
    assert!(info.cache_errors >= 2, "{info:?}");
    assert!(
        log.contains("WARN") && log.contains("storing the result"),
        "{log}"
    );
    assert!(
        unwritable.clear_cache().is_err(),
        "explicit operations report the failure"
    );
}

#[test]
fn leftover_lock_files_block_nobody() {
    // A lock file left behind (say, by a crash) is not a held lock.
    let dir = scratch("leftover");
    #[cachier(cache_dir = scratch("leftover"))]
    fn plus_one(x: u64) -> u64 {
        x + 1
    }
    let key = plus_one.cache().key(&(1u64,)).unwrap();
    std::fs::create_dir_all(dir.join("file_core.plus_one")).unwrap();
    std::fs::write(dir.join("file_core.plus_one").join(format!("{key}.lock")), b"").unwrap();
    assert_eq!(plus_one(1), 2);
    assert_eq!(plus_one.cache_info().recalculations, 1);
}

/// A clear of claims by one process sends the next claim of another, which
/// had the old claims file open, to the new file, where every process sees it.
#[test]
fn a_claim_after_another_process_cleared_claims_is_seen_by_all() {
    use cachier::{Core, FileCore, Key};
    let dir = scratch("claims_cleared");
    let (first, clearing, third) = (FileCore::new(&dir), FileCore::new(&dir), FileCore::new(&dir));
    let key = |n: u64| Key::new("file_core::claimed", &n).unwrap();
    drop(first.try_claim(&key(1)).unwrap().expect("a free key"));
    clearing.clear_claims().unwrap();
    let held = first.try_claim(&key(2)).unwrap().expect("a free key");
    assert!(
        third.try_claim(&key(2)).unwrap().is_none(),
        "the claim went to the removed file, which no other process sees"
    );
    drop(held);
    assert!(third.try_claim(&key(2)).unwrap().is_some());
}

/// A build of `app::report` whose code has `version`, in the shared `dir`,
/// with the default layout.
fn build_of(dir: &Path, version: &str) -> cachier::FunctionCache {
    builder_of(dir, version).build()
}

/// The builder of [`build_of`], for a test that chooses the layout.
fn builder_of(dir: &Path, version: &str) -> cachier::FunctionCacheBuilder {
    cachier::FunctionCache::builder("app::report")
        .code_version(version)
        .cache_dir(dir)
}

/// Calls `cache` for `x`, returning what it served or computed as `computed`.
fn report(cache: &cachier::FunctionCache, x: u64, computed: &str) -> String {
    let opts = cachier::CallOptions::DEFAULT;
    cache
        .call(&opts, cache.key(&x), || cachier::Plain(computed.to_owned()))
        .0
}

#[test]
fn two_builds_sharing_a_directory_see_only_their_own_entries() {
    let dir = scratch("deploy");
    let (old, new) = (build_of(&dir, "body 1"), build_of(&dir, "body 2"));
    assert_eq!(report(&old, 1, "old"), "old");
    assert_eq!(report(&new, 1, "new"), "new", "never the old build's result");
    assert_eq!(report(&old, 1, "recomputed"), "old", "each build keeps its own");
    assert_eq!(report(&new, 1, "recomputed"), "new");
    assert_eq!(old.dpath().unwrap().parent(), new.dpath().unwrap().parent());
    assert_ne!(old.dpath(), new.dpath());
}

/// Makes the version directory `dir` look last used a day and a minute ago.
fn unused_for_a_day(dir: &Path) {
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600 + 60);
    std::fs::File::open(dir).unwrap().set_modified(day_ago).unwrap();
}

#[test]
fn other_versions_are_reclaimed_once_no_process_uses_them() {
    let dir = scratch("versions");
    let old = build_of(&dir, "body 1");
    report(&old, 1, "old");
    let old_dir = old.dpath().unwrap();
    let new = build_of(&dir, "body 2");
    report(&new, 1, "new");
    // The reclaim that follows a first store runs now, while the old build runs.
    new.wait_for_background();

    // The old build still runs: its directory is held, and kept.
    assert_eq!(new.reclaim().unwrap(), 0);
    new.clear().unwrap();
    assert_eq!(
        entries(&old_dir).len(),
        1,
        "an entry of a build in use was deleted"
    );
    // What that clear left to delete goes now, not in the counts below.
    new.reclaim().unwrap();

    // The old build exits: its entries stay for a day, in case it runs again.
    report(&new, 1, "new");
    old.wait_for_background();
    drop(old);
    assert_eq!(new.reclaim().unwrap(), 0, "a version used today was reclaimed");
    assert_eq!(entries(&old_dir).len(), 1);

    // A day later, the next reclaim or cleanup removes them.
    unused_for_a_day(&old_dir);
    assert_eq!(new.reclaim().unwrap(), 1, "the old version's one file of entries");
    assert!(!old_dir.exists(), "the old version's directory is left");
    assert_eq!(
        report(&new, 1, "recomputed"),
        "new",
        "the current version's entries stay"
    );
}

/// Upgrading to packing (the default) or leaving it starts a fresh cache:
/// the other layout's entries are never served, and go like an old
/// version's, a day after a process last used them.
#[test]
fn entries_of_the_other_layout_are_never_served_and_go_a_day_after_their_last_use() {
    let dir = scratch("layouts");
    let filed = builder_of(&dir, "body 1").segments(false).build();
    report(&filed, 1, "filed");
    let filed_dir = filed.dpath().unwrap();
    filed.wait_for_background();
    drop(filed);
    let packed = build_of(&dir, "body 1");
    assert_ne!(packed.dpath().unwrap(), filed_dir);
    assert_eq!(report(&packed, 1, "packed"), "packed", "an entry file was served");
    packed.wait_for_background();
    assert_eq!(packed.reclaim().unwrap(), 0, "entries used today were reclaimed");
    assert_eq!(entries(&filed_dir).len(), 1);

    unused_for_a_day(&filed_dir);
    assert_eq!(packed.reclaim().unwrap(), 1, "the entry file");
    assert!(!filed_dir.exists());
    assert_eq!(
        report(&packed, 1, "recomputed"),
        "packed",
        "the packed entries stay"
    );
}

#[test]
fn clear_removes_the_other_versions_no_process_holds_at_once() {
    let dir = scratch("cleared-versions");
    let old = build_of(&dir, "body 1");
    report(&old, 1, "old");
    let old_dir = old.dpath().unwrap();
    old.wait_for_background();
    drop(old);
    let new = build_of(&dir, "body 2");
    report(&new, 1, "new");
    new.clear().unwrap();
    assert!(
        !old_dir.exists(),
        "clear left an unheld version, used a moment ago"
    );
}

/// The directories of the function directory `function` that clears retired.
fn retired_dirs(function: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(function)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("retired-"))
        .collect()
}

#[test]
fn a_clear_takes_every_entry_out_of_view_at_once_and_deletes_the_files_after() {
    let dir = scratch("retire");
    let cache = build_of(&dir, "body 1");
    (0..100).for_each(|x| drop(report(&cache, x, "first")));
    let version = cache.dpath().unwrap();
    cache.clear().unwrap();
    assert!(!version.exists(), "the entries stayed in view");
    assert_eq!(
        report(&cache, 1, "second"),
        "second",
        "a cleared entry was served"
    );
    assert_eq!(entries(&version).len(), 1, "stored in a directory of its own");
    // Their files go on a thread of the clearing process, with nothing to wait on.
    let function = version.parent().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !retired_dirs(function).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleared files were never deleted"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_reclaim_after_a_clear_frees_the_disk_before_it_returns() {
    let dir = scratch("retire-now");
    let cache = build_of(&dir, "body 1");
    (0..100).for_each(|x| drop(report(&cache, x, "first")));
    let function = cache.dpath().unwrap().parent().unwrap().to_owned();
    cache.clear().unwrap();
    cache.reclaim().unwrap();
    assert_eq!(retired_dirs(&function), Vec::<PathBuf>::new());
}

#[test]
fn a_cleared_directory_that_a_dead_process_left_goes_at_the_next_reclaim_not_clear() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("retired-left");
    let cache = builder_of(&dir, "body 1").segments(false).build();
    report(&cache, 1, "first");
    // The reclaim a first store starts would take what is planted below.
    cache.wait_for_background();
    let version = cache.dpath().unwrap();
    // What a process killed while deleting a directory it cleared leaves.
    let left = version
        .parent()
        .unwrap()
        .join("retired-code-0123456789abcdef-1-1");
    std::fs::create_dir(&left).unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o700)).unwrap();
    let entry = entry_files(&version).remove(0);
    std::fs::copy(&entry, left.join(entry.file_name().unwrap())).unwrap();
    // A clear leaves it (it may be a live process's, deleting it) ...
    cache.clear().unwrap();
    assert!(
        left.exists(),
        "a clear deleted a retired directory before returning"
    );
    // ... to the next reclaim.
    assert_eq!(report(&cache, 1, "second"), "second");
    // Its one entry (and that clear's, if its thread has not deleted it yet).
    assert!(cache.reclaim().unwrap() >= 1);
    assert!(!left.exists());
    assert_eq!(report(&cache, 1, "third"), "second", "the current entries stay");
}

#[test]
fn a_verbose_call_is_told_once_that_another_versions_entries_exist() {
    let dir = scratch("told");
    let old = build_of(&dir, "body 1");
    report(&old, 1, "old");
    let new = build_of(&dir, "body 2");
    let verbose = cachier::CallOptions::new().verbose(true);
    let log = logged(|| {
        for x in [1, 2] {
            new.call(&verbose, new.key(&x), || cachier::Plain(x));
        }
    });
    let told = "entries from another version of this function exist";
    assert_eq!(log.matches(told).count(), 1, "{log}");
}

#[test]
fn an_entry_file_removed_by_hand_is_a_miss_within_a_second() {
    let dir = scratch("by-hand");
    let cache = builder_of(&dir, "body 1").segments(false).build();
    assert_eq!(report(&cache, 1, "first"), "first");
    assert_eq!(report(&cache, 1, "second"), "first", "served from memory");
    for file in entry_files(&cache.dpath().unwrap()) {
        std::fs::remove_file(file).unwrap();
    }
    // What cachier removes is seen at once (tests/processes.rs); what is removed
    // without it, once the entry held in memory is a second old.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(report(&cache, 1, "second"), "second");
}

#[test]
fn a_directory_removed_by_hand_is_made_again_within_a_second() {
    let dir = scratch("dir-by-hand");
    let cache = build_of(&dir, "body 1");
    assert_eq!(report(&cache, 1, "first"), "first");
    let dpath = cache.dpath().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Seen, like files removed by hand, once the last look is a second old.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(report(&cache, 2, "second"), "second");
    assert_eq!(entries(&dpath).len(), 1, "stored in the directory made again");
    assert_eq!(report(&cache, 2, "third"), "second");
}

#[test]
fn group_shared_directories_keep_no_generation_counters() {
    use cachier::{Core, Entry, FileCore, Key, Sharing};
    let dir = scratch("group");
    let (private, group) = (dir.join("private.f"), dir.join("group.f"));
    let key = Key::new("app::f", &1u8).unwrap();
    let entry = Entry::new(std::time::SystemTime::now(), vec![1]);
    FileCore::new(&private).set(&key, &entry).unwrap();
    let shared = FileCore::new(&group).sharing(Sharing::Group);
    shared.set(&key, &entry).unwrap();
    assert_eq!(&*shared.get(&key).unwrap().unwrap().value, &[1]);
    // Group members could truncate a mapped file under each other (SIGBUS).
    assert!(
        private.join("generations").is_file(),
        "no counters on a local disk"
    );
    assert!(!group.join("generations").exists());
}

/// The names in `dir` that are not entry files or segments, and how many
/// of each of those there are.
fn files_of(dir: &Path) -> (Vec<String>, [usize; 2]) {
    const KINDS: [&str; 2] = ["cachier", "segment"];
    let mut others: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|file| file.unwrap().path())
        .filter(|path| {
            !path
                .extension()
                .is_some_and(|ext| KINDS.iter().any(|kind| ext == *kind))
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    others.sort();
    (others, counted(dir, KINDS))
}

#[test]
fn a_miss_creates_its_entry_and_no_other_file() {
    let dir = scratch("one-file");
    let filed = builder_of(&dir.join("filed"), "body 1").segments(false).build();
    let packed = builder_of(&dir.join("packed"), "body 1").segments(true).build();
    for x in 0..5 {
        report(&filed, x, "computed");
        report(&packed, x, "computed");
    }
    // Claims are byte locks in one shared file (Linux), or lock files removed on release.
    let shared: Vec<String> = match cfg!(target_os = "linux") {
        true => vec!["claims".into(), "generations".into()],
        false => vec!["generations".into()],
    };
    assert_eq!(files_of(&filed.dpath().unwrap()), (shared.clone(), [5, 0]));
    // One segment for this process, where generation counters are (Linux).
    let packed_files = match cfg!(target_os = "linux") {
        true => [0, 1],
        false => [5, 0],
    };
    assert_eq!(files_of(&packed.dpath().unwrap()), (shared, packed_files));
}
