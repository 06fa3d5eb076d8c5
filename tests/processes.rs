//! The file core shared by several processes. The test binary runs itself again
//! as the other processes (the ignored test `child`, given a role through the
//! environment); events between processes are ordered by lines on pipes.

mod support;

use std::path::PathBuf;

use cachier::cachier;
use support::{Peer, role, say, wait_for_parent};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("processes")
        .join(name)
}

#[cachier(cache_dir = scratch("race"))]
fn race() -> String {
    say("computing");
    wait_for_parent();
    format!("computed by {}", std::process::id())
}

#[cachier(cache_dir = scratch("kill"))]
fn big(_slot: u8) -> Vec<u8> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    vec![(n % 251) as u8; 8 << 20]
}

#[cachier(cache_dir = scratch("fill"))]
fn filled(slot: u8) -> Vec<u8> {
    vec![slot; 8 << 20]
}

#[cachier(cache_dir = scratch("held"))]
fn held() -> u64 {
    if role() == "hold" {
        say("computing");
        wait_for_parent();
    }
    7
}

#[cachier(cache_dir = scratch("coherent"))]
fn shared(x: u64) -> String {
    format!("{x} computed by {}", std::process::id())
}

#[cachier(cache_dir = scratch("probed"))]
fn probed(x: u64) -> String {
    format!("{x} computed by {}", std::process::id())
}

#[cachier(cache_dir = scratch("replaced"))]
fn replaced(x: u64) -> String {
    format!("{x} computed by {}", std::process::id())
}

#[cachier(cache_dir = scratch("clearing"))]
fn doubled(x: u64) -> u64 {
    x * 2
}

/// The other processes' side of the tests below.
#[test]
#[ignore = "a helper: the other tests of this file run it as a child process"]
fn child() {
    match role().as_str() {
        "race" => say(&format!("value={}", race.verbose_cache())),
        "rewrite" => loop {
            big.overwrite_cache(0);
            say("written");
        },
        "fill" => {
            for slot in 0..=u8::MAX {
                filled(slot);
                say("written");
            }
        }
        "hold" => {
            held();
        }
        "store" => say(&format!("value={}", shared(1))),
        "overwrite" => say(&format!("value={}", shared.overwrite_cache(1))),
        "probe" => say(&format!("value={}", probed(1))),
        "replace" => say(&format!("value={}", replaced.overwrite_cache(1))),
        "clear" => shared.clear_cache().unwrap(),
        "clearer" => {
            say("clearing");
            for _ in 0..300 {
                doubled.clear_cache().unwrap();
            }
        }
        "writer" => {
            wait_for_parent();
            for x in 0..300 {
                assert_eq!(doubled(x), x * 2);
                assert_eq!(doubled(x), x * 2);
            }
            say(&format!("value={}", doubled.cache_info().cache_errors));
        }
        other => panic!("unknown role {other:?}"),
    }
}

#[test]
fn processes_racing_on_a_cold_key_compute_once() {
    race.clear_cache().unwrap();
    support::race("race", "", 4);
}

#[test]
fn a_process_killed_mid_write_leaves_a_whole_entry() {
    big.clear_cache().unwrap();
    let peer = Peer::start("rewrite", "");
    // Let it complete a few writes, then kill it while it keeps rewriting.
    for _ in 0..3 {
        peer.expect("written");
    }
    peer.kill();
    let value = big(0);
    assert_eq!(value.len(), 8 << 20);
    assert!(value.iter().all(|&b| b == value[0]), "a torn entry was served");
    let info = big.cache_info();
    assert_eq!((info.hits, info.cache_errors), (1, 0), "{info:?}");
}

/// On Linux an entry is written as a file with no name, linked in place
/// once whole: a store never shows a temporary file, a writer killed
/// mid-store leaves none, and every entry file linked is served.
#[test]
#[cfg(target_os = "linux")]
fn stores_show_no_temporary_file_even_when_killed() {
    filled.clear_cache().unwrap();
    let peer = Peer::start("fill", "");
    peer.expect("written");
    let dir = filled.cache_dpath().unwrap();
    let names = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|file| file.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let is_temp = |name: &String| name.ends_with(".tmp");
    // Watch the directory while the child writes 8 MiB entries, then kill it mid-store.
    let mut temps_seen = std::collections::BTreeSet::new();
    loop {
        let now = names();
        temps_seen.extend(now.iter().filter(|name| is_temp(name)).cloned());
        if now.iter().filter(|name| name.ends_with(".cachier")).count() >= 4 {
            break;
        }
    }
    peer.kill();
    assert!(temps_seen.is_empty(), "{temps_seen:?}");
    let left = names();
    assert!(!left.iter().any(is_temp), "{left:?}");
    for slot in 0..4 {
        assert_eq!(filled(slot), vec![slot; 8 << 20]);
    }
    let info = filled.cache_info();
    assert_eq!((info.hits, info.cache_errors), (4, 0), "{info:?}");
}

#[test]
fn a_killed_process_leaves_no_claim_behind() {
    held.clear_cache().unwrap();
    let key = held.cache().key(&()).unwrap();
    let peer = Peer::start("hold", "");
    peer.expect("computing");
    assert!(
        held.cache().core().try_claim(&key).unwrap().is_none(),
        "the child should hold the claim"
    );
    peer.kill();
    let claim = held.cache().core().try_claim(&key).unwrap();
    assert!(claim.is_some(), "the dead process's claim survived");
    drop(claim);
    assert_eq!(held(), 7);
    assert_eq!(held.cache_info().recalculations, 1);
}

#[test]
fn values_and_clears_of_other_processes_are_seen_at_once() {
    shared.clear_cache().unwrap();
    let theirs = Peer::start("store", "").value();
    assert_eq!(
        shared(1),
        theirs,
        "a value stored by another process must be served"
    );
    assert_eq!(shared.cache_info().recalculations, 0);
    Peer::start("clear", "").finish();
    let ours = shared(1);
    assert_eq!(
        ours,
        format!("1 computed by {}", std::process::id()),
        "a clear by another process must be seen"
    );
}

#[test]
fn a_key_this_process_found_missing_is_served_once_another_process_stores_it() {
    probed.clear_cache().unwrap();
    let key = probed.cache().key(&(1u64,)).unwrap();
    // Found missing, and remembered so (a second lookup costs no syscall) ...
    assert!(probed.cache().core().get(&key).unwrap().is_none());
    assert!(probed.cache().core().get(&key).unwrap().is_none());
    // ... until another process stores it.
    let theirs = Peer::start("probe", "").value();
    assert_eq!(probed(1), theirs);
    assert_eq!(probed.cache_info().recalculations, 0);
}

#[test]
fn a_store_by_another_process_replaces_an_entry_this_one_serves_from_memory() {
    replaced.clear_cache().unwrap();
    let ours = replaced(1);
    assert_eq!(replaced(1), ours);
    assert_eq!(replaced(1), ours, "served from memory by now");
    let theirs = Peer::start("replace", "").value();
    assert_ne!(theirs, ours);
    assert_eq!(
        replaced(1),
        theirs,
        "the entry this process held was served after another's store"
    );
}

#[test]
fn clearing_while_another_process_writes_loses_only_the_cleared_entries() {
    doubled.clear_cache().unwrap();
    let mut writer = Peer::start("writer", "");
    let clearer = Peer::start("clearer", "");
    clearer.expect("clearing");
    writer.tell();
    assert_eq!(
        writer.value(),
        "0",
        "the writer saw cache errors while another process cleared"
    );
    clearer.finish();
    // Entries stored once the clearing is over stay.
    doubled.clear_cache().unwrap();
    (0..10).for_each(|x| assert_eq!(doubled(x), x * 2));
    (0..10).for_each(|x| assert_eq!(doubled(x), x * 2));
    let info = doubled.cache_info();
    assert_eq!((info.hits, info.cache_errors), (10, 0), "{info:?}");
}
