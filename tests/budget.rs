//! Size budgets: `max_entries` and `max_bytes` evict the least recently used
//! entries, on the memory core, on the file core, and under several processes
//! storing at once (the test binary runs itself again as the other processes).

mod support;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cachier::cachier;
use support::{Peer, entries, role, run, say, wait_for_parent};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("budget")
        .join(name)
}

static REMEMBERED: AtomicU64 = AtomicU64::new(0);

#[cachier(backend = "memory", max_entries = 2)]
fn remembered(x: u64) -> u64 {
    REMEMBERED.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn the_memory_core_evicts_the_least_recently_used() {
    remembered(1);
    remembered(2);
    remembered(1); // a hit: 1 is now used after 2
    remembered(3); // over budget: 2 goes
    assert_eq!(remembered.cache_info().evictions, 1);
    let before = REMEMBERED.load(Ordering::SeqCst);
    remembered(1);
    remembered(3);
    assert_eq!(REMEMBERED.load(Ordering::SeqCst), before, "1 and 3 were kept");
    remembered(2);
    assert_eq!(REMEMBERED.load(Ordering::SeqCst), before + 1, "2 was evicted");
}

static FILED: AtomicU64 = AtomicU64::new(0);

/// One file per entry, whose times the test sets as other processes' uses.
#[cachier(cache_dir = scratch("lru"), max_entries = 2, segments = false)]
fn filed(x: u64) -> u64 {
    FILED.fetch_add(1, Ordering::SeqCst);
    x
}

/// Makes the entry of `filed(x)` look last used `ago` in the past.
fn used_ago(x: u64, ago: Duration) {
    let path = filed
        .cache_dpath()
        .unwrap()
        .join(format!("{}.cachier", filed.cache().key(&(x,)).unwrap()));
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn the_file_core_evicts_the_least_recently_used_across_processes() {
    filed.clear_cache().unwrap();
    filed(1);
    filed(2);
    // Uses as any process would have left them: 1 long ago, 2 more recently.
    used_ago(1, Duration::from_secs(100));
    used_ago(2, Duration::from_secs(50));
    filed(1); // a hit, which marks 1 used now
    filed(3); // over budget: 2 is the least recently used
    assert_eq!(entries(&filed.cache_dpath().unwrap()).len(), 2);
    let before = FILED.load(Ordering::SeqCst);
    filed(1);
    filed(3);
    assert_eq!(FILED.load(Ordering::SeqCst), before, "1 and 3 were kept");
    filed(2);
    assert_eq!(FILED.load(Ordering::SeqCst), before + 1, "2 was evicted");
    assert!(filed.cache_info().evictions >= 2);
}

#[cachier(cache_dir = scratch("marked"), max_entries = 10, segments = false)]
fn marked(x: u64) -> u64 {
    x
}

/// Stores `x` with the cached `f` afresh (`cache` is its cache), then sets the
/// times of its entry file as `times` says; returns the file's path.
fn stored_with_times(
    cache: &cachier::FunctionCache,
    f: fn(u64) -> u64,
    x: u64,
    times: std::fs::FileTimes,
) -> PathBuf {
    cache.clear().unwrap();
    f(x);
    let path = cache
        .dpath()
        .unwrap()
        .join(format!("{}.cachier", cache.key(&(x,)).unwrap()));
    let file = File::options().write(true).open(&path).unwrap();
    file.set_times(times).unwrap();
    path
}

#[test]
fn a_read_marks_a_file_entry_used_at_most_once_a_minute() {
    let half_a_minute_ago = SystemTime::now() - Duration::from_secs(30);
    let times = std::fs::FileTimes::new().set_modified(half_a_minute_ago);
    let path = stored_with_times(marked.cache(), *marked, 1, times);
    assert_eq!(marked(1), 1);
    assert_eq!(marked.cache_info().hits, 1);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert_eq!(
        modified, half_a_minute_ago,
        "a read wrote the file of an entry used 30 s ago"
    );
}

#[cachier(cache_dir = scratch("unread"), segments = false)]
fn unread(x: u64) -> u64 {
    x
}

/// Without `O_NOATIME`, a read would write the file's inode back: on a
/// `relatime` mount (the default) whenever its access time is not after its
/// modification time, as it is not after a store or a mark of use.
#[cfg(target_os = "linux")]
#[test]
fn a_read_of_a_file_entry_leaves_its_access_time() {
    // Accessed an hour before it was last used, a second ago (no mark of use).
    let used = SystemTime::now() - Duration::from_secs(1);
    let an_hour_before = used - Duration::from_secs(3600);
    let times = std::fs::FileTimes::new()
        .set_accessed(an_hour_before)
        .set_modified(used);
    let path = stored_with_times(unread.cache(), *unread, 1, times);
    assert_eq!(unread(1), 1);
    assert_eq!(unread.cache_info().hits, 1);
    let accessed = std::fs::metadata(&path).unwrap().accessed().unwrap();
    assert_eq!(
        accessed, an_hour_before,
        "a read wrote the entry file's access time"
    );
}

#[cachier(cache_dir = scratch("bytes"), max_bytes = "5KB")]
fn blob(x: u64, len: usize) -> Vec<u8> {
    vec![x as u8; len]
}

#[test]
fn max_bytes_bounds_the_entries_and_refuses_larger_values() {
    blob.clear_cache().unwrap();
    for x in 0..20 {
        assert_eq!(blob(x, 1_000).len(), 1_000);
    }
    let kept = entries(&blob.cache_dpath().unwrap());
    let bytes: u64 = kept.iter().map(|(_, len)| len).sum();
    assert!(bytes <= 5_000, "{bytes} bytes in {} entries", kept.len());
    assert!(kept.len() >= 3, "the most recent entries stay: {kept:?}");

    let recalculations = blob.cache_info().recalculations;
    assert_eq!(blob(99, 6_000).len(), 6_000);
    assert_eq!(blob(99, 6_000).len(), 6_000);
    assert_eq!(
        blob.cache_info().recalculations,
        recalculations + 2,
        "a value larger than the whole budget is returned, not stored"
    );
}

/// 64 entries at most: each process rounds after every 4 of its stores.
#[cachier(cache_dir = scratch("shared"), max_entries = 64)]
fn crowded(x: u64) -> u64 {
    x
}

/// The other processes' side of the test below.
#[test]
#[ignore = "a helper: the other tests of this file run it as a child process"]
fn child() {
    match role().as_str() {
        "writer" => {
            let first: u64 = run().parse().unwrap();
            say("ready");
            wait_for_parent();
            for x in first..first + 200 {
                assert_eq!(crowded(x), x);
            }
            say(&format!("value={}", crowded.cache_info().evictions));
        }
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn several_processes_storing_at_once_overshoot_the_budget_by_a_bounded_amount() {
    crowded.clear_cache().unwrap();
    let mut writers: Vec<Peer> = (0..3)
        .map(|i| Peer::start("writer", &(i * 1_000).to_string()))
        .collect();
    writers.iter().for_each(|w| w.expect("ready"));
    writers.iter_mut().for_each(Peer::tell);
    for writer in writers {
        let evictions: u64 = writer.value().parse().unwrap();
        assert!(evictions > 0, "every writer evicted");
    }
    let dir = crowded.cache_dpath().unwrap();
    let left = entries(&dir).len();
    // 64, plus at most a sixteenth of it for each of the three processes.
    assert!((1..=64 + 3 * 4).contains(&left), "{left} entries");
    // This process's first store starts a round, which restores the budget.
    crowded(1_000_000);
    assert!(entries(&dir).len() <= 64);
}
