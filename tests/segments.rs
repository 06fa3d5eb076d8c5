//! The file core packing small entries into segments (`FileCore::segments`):
//! what lands where, other processes' stores and clears, a writer killed
//! mid-append, corrupt and hostile segments, eviction order. The test binary
//! runs itself again as the other processes (see `support`).
#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cachier::{Budget, Core, Entry, Error, FileCore, Key};
use support::{Peer, counted, role, run, say, wait_for_parent};

fn scratch(name: &str) -> PathBuf {
    support::emptied_scratch("segments", name)
}

/// A core packing small entries, for the function directory `dir`.
fn packed(dir: &Path) -> FileCore {
    FileCore::new(dir).version("segments::f v1").segments(true)
}

/// A packing core in the emptied scratch directory `name`, holding keys
/// `0..keys`, each `len` bytes of its number.
fn filled(name: &str, keys: u64, len: usize) -> (PathBuf, FileCore) {
    let dir = scratch(name);
    let core = packed(&dir);
    for n in 0..keys {
        store(&core, n, vec![n as u8; len]);
    }
    (dir, core)
}

fn key(n: u64) -> Key {
    Key::new("segments::f", &n).unwrap()
}

fn value_of(core: &FileCore, n: u64) -> Option<Vec<u8>> {
    core.get(&key(n)).unwrap().map(|entry| entry.value.to_vec())
}

fn store(core: &FileCore, n: u64, value: Vec<u8>) {
    core.set(&key(n), &Entry::new(SystemTime::now(), value)).unwrap();
}

/// The names in the version's directory ending in `ext`.
fn named(core: &FileCore, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(core.dpath().unwrap())
        .unwrap()
        .map(|file| file.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

/// The other processes' side of the tests below.
#[test]
#[ignore = "a helper: the other tests of this file run it as a child process"]
fn child() {
    let core = packed(Path::new(&run()));
    match role().as_str() {
        "store" => {
            store(&core, 1, b"child".to_vec());
            store(&core, 2, b"child".to_vec());
            say("stored");
            wait_for_parent();
            core.clear().unwrap();
            say("cleared");
        }
        "fill" => {
            for n in 0.. {
                store(&core, n, vec![n as u8; 1_000]);
                say(&format!("written {n}"));
            }
        }
        "churn" => {
            // Every value read must be the one stored for its key; a clear
            // may have taken it, never replaced it with another.
            let mut wrong = 0;
            for round in 0..4u64 {
                for n in 0..300 {
                    if (n + round).is_multiple_of(3) {
                        store(&core, n, churned(n));
                    }
                    for m in [n, n / 2, 299 - n] {
                        match core.get(&key(m)) {
                            Ok(Some(entry)) if entry.value.to_vec() != churned(m) => wrong += 1,
                            Ok(_) => {}
                            Err(error) => panic!("key {m}: {error}"),
                        }
                    }
                }
            }
            say(&format!("value={wrong}"));
        }
        "clearer" => {
            for n in 0..100u32 {
                if n.is_multiple_of(2) {
                    core.clear().unwrap();
                } else {
                    core.evict(Budget::new().max_entries(50)).unwrap();
                    core.reclaim().unwrap();
                }
            }
            say("value=done");
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// What the churning processes store for key `n`: its own bytes, of a
/// length of its own, some past the size packed.
fn churned(n: u64) -> Vec<u8> {
    let len = if n.is_multiple_of(50) {
        5_000
    } else {
        1 + n as usize % 700
    };
    vec![n as u8; len]
}

/// Two processes store and read while a third clears, evicts and compacts:
/// no read ever returns another key's value or fails.
#[test]
fn processes_storing_reading_clearing_and_compacting_at_once_read_only_their_values() {
    let dir = scratch("churn");
    let run = dir.to_str().unwrap();
    let peers = [
        Peer::start("churn", run),
        Peer::start("churn", run),
        Peer::start("clearer", run),
    ];
    for peer in peers {
        let value = peer.value();
        assert!(value == "0" || value == "done", "{value}");
    }
}

#[test]
fn small_entries_share_one_segment_and_large_ones_keep_their_files() {
    let (dir, core) = filled("where", 100, 100);
    store(&core, 100, vec![7; 8_192]);
    assert_eq!(named(&core, "segment").len(), 1);
    assert_eq!(named(&core, "cachier").len(), 1);
    for n in 0..100 {
        assert_eq!(value_of(&core, n), Some(vec![n as u8; 100]));
    }
    assert_eq!(value_of(&core, 100), Some(vec![7; 8_192]));

    // A key moving between the two is served its newest value, from either.
    store(&core, 0, vec![1; 8_192]);
    assert_eq!(value_of(&core, 0), Some(vec![1; 8_192]));
    assert_eq!(value_of(&packed(&dir), 0), Some(vec![1; 8_192]));
    store(&core, 0, vec![2; 10]);
    assert_eq!(
        named(&core, "cachier").len(),
        1,
        "the large entry's file is removed"
    );
    assert_eq!(value_of(&core, 0), Some(vec![2; 10]));
    assert_eq!(value_of(&packed(&dir), 0), Some(vec![2; 10]));
}

#[test]
fn another_processes_stores_and_clear_are_seen_at_the_next_call() {
    let dir = scratch("coherent");
    let core = packed(&dir);
    store(&core, 1, b"parent".to_vec());
    assert_eq!(value_of(&core, 1), Some(b"parent".to_vec()));
    assert_eq!(value_of(&core, 2), None);

    let mut peer = Peer::start("store", dir.to_str().unwrap());
    peer.expect("stored");
    assert_eq!(value_of(&core, 1), Some(b"child".to_vec()));
    assert_eq!(value_of(&core, 2), Some(b"child".to_vec()));
    peer.tell();
    peer.expect("cleared");
    assert_eq!(value_of(&core, 1), None);
    assert_eq!(value_of(&core, 2), None);
    peer.finish();
}

/// Threads sharing a core read packed entries while another thread stores
/// them through a core of its own: each store is seen by every reader's
/// next call once it returned, and no read returns another key's value.
#[test]
fn threads_reading_while_another_stores_see_each_store_at_their_next_call() {
    const KEYS: u64 = 64;
    let value = |n: u64, round: u64| [n.to_le_bytes(), round.to_le_bytes()].concat();
    let (dir, core) = filled("threads", 0, 0);
    (0..KEYS).for_each(|n| store(&core, n, value(n, 0)));
    // Another core on the directory: its stores reach the readers' core as
    // another process's do.
    let writer = packed(&dir);
    let (stored, readers): (Vec<_>, Vec<_>) = (0..2).map(|_| std::sync::mpsc::channel::<u64>()).unzip();
    std::thread::scope(|threads| {
        for rounds in readers {
            let core = &core;
            threads.spawn(move || {
                // The key and round of the value read for key `n`.
                let read = |n: u64| {
                    let read = value_of(core, n).expect("every key has an entry");
                    let word = |at: usize| u64::from_le_bytes(read[at..at + 8].try_into().unwrap());
                    (word(0), word(8))
                };
                while let Ok(round) = rounds.recv() {
                    // The store of this round, or a later one of the same key.
                    let (n, stored) = read(round % KEYS);
                    assert!(
                        n == round % KEYS && stored >= round,
                        "round {round}: read round {stored}"
                    );
                    // While the next stores go on.
                    for m in 0..KEYS {
                        assert_eq!(read(m).0, m, "key {m} read another key's value");
                    }
                }
            });
        }
        for round in 1..=300 {
            let n = round % KEYS;
            store(&writer, n, value(n, round));
            stored.iter().for_each(|reader| reader.send(round).unwrap());
        }
        drop(stored);
    });
}

#[test]
fn a_writer_killed_mid_append_loses_no_other_record() {
    let dir = scratch("killed");
    let peer = Peer::start("fill", dir.to_str().unwrap());
    peer.expect("written 200");
    peer.kill();
    let core = packed(&dir);
    let segments = named(&core, "segment");
    assert_eq!(segments.len(), 1);
    // What a kill in the middle of a `write` leaves: part of a record.
    let torn = {
        let bytes = std::fs::read(&segments[0]).unwrap();
        bytes[..bytes.len().min(700)].to_vec()
    };
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segments[0])
        .unwrap()
        .write_all(&torn[..500])
        .unwrap();
    for n in 0..=200 {
        assert_eq!(value_of(&core, n), Some(vec![n as u8; 1_000]), "key {n}");
    }

    // The next writer takes the dead one's segment, cuts the torn record
    // off, and appends after it: a process starting later reads it all.
    store(&core, 5_000, b"after".to_vec());
    assert_eq!(
        named(&core, "segment"),
        segments,
        "the dead writer's segment is taken"
    );
    let later = packed(&dir);
    assert_eq!(value_of(&later, 5_000), Some(b"after".to_vec()));
    for n in 0..=200 {
        assert_eq!(value_of(&later, n), Some(vec![n as u8; 1_000]), "key {n}");
    }
}

/// Records of `n` bytes of value each, keys 0..10, in one segment.
fn ten_records(name: &str, n: usize) -> (PathBuf, PathBuf) {
    let (dir, core) = filled(name, 10, n);
    let segment = named(&core, "segment").remove(0);
    (dir, segment)
}

#[test]
fn a_flipped_bit_makes_its_key_a_miss_and_no_other() {
    let (dir, segment) = ten_records("flipped", 100);
    let record = 150;
    let mut bytes = std::fs::read(&segment).unwrap();
    assert_eq!(bytes.len(), 10 * record);
    bytes[5 * record + 60] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let core = packed(&dir);
    for k in 0..10 {
        match core.get(&key(k)) {
            Err(Error::Corrupt { .. }) if k == 5 => {}
            Ok(Some(entry)) if k != 5 => assert_eq!(&*entry.value, &[k as u8; 100][..]),
            other => panic!("key {k}: {other:?}"),
        }
    }
    // Stored again, the key is served its new entry.
    store(&core, 5, vec![55; 100]);
    assert_eq!(value_of(&core, 5), Some(vec![55; 100]));
    assert_eq!(value_of(&packed(&dir), 5), Some(vec![55; 100]));
}

#[test]
fn a_record_declaring_a_huge_value_is_refused_unread() {
    let (dir, segment) = ten_records("huge", 100);
    let record = 150;
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[7 * record + 38..7 * record + 46].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&segment, &bytes).unwrap();

    let core = packed(&dir);
    for k in 0..7 {
        assert_eq!(value_of(&core, k), Some(vec![k as u8; 100]));
    }
    // Nothing after it can be found: those keys are misses, stored again.
    for k in 7..10 {
        assert_eq!(value_of(&core, k), None);
    }
    store(&core, 8, vec![88; 100]);
    assert_eq!(value_of(&packed(&dir), 8), Some(vec![88; 100]));
}

#[test]
fn segments_that_are_links_fifos_or_truncated_never_hang_or_fool_a_reader() {
    let (dir, segment) = ten_records("hostile", 100);
    let version = segment.parent().unwrap().to_owned();
    std::os::unix::fs::symlink(&segment, version.join("8-8.segment")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        version.join("9-9.segment"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let core = packed(&dir);
    for k in 0..10 {
        assert_eq!(value_of(&core, k), Some(vec![k as u8; 100]));
    }
    // Cut short: its records past the cut are misses, never wrong values.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(150 * 5)
        .unwrap();
    let fresh = packed(&dir);
    for k in 0..10 {
        let expected = (k < 5).then(|| vec![k as u8; 100]);
        assert_eq!(value_of(&fresh, k), expected, "key {k}");
    }
    assert!(version.join("9-9.segment").exists() && version.join("8-8.segment").is_symlink());
}

#[test]
fn evictions_take_the_least_recently_used_entries_first() {
    let dir = scratch("evict");
    let core = packed(&dir);
    let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(h * 3_600);
    for (n, computed) in [(1, 3), (2, 2), (3, 1)] {
        core.set(&key(n), &Entry::new(hours_ago(computed), vec![n as u8; 10]))
            .unwrap();
    }
    // Reading the oldest marks it used now.
    assert!(value_of(&core, 1).is_some());
    assert_eq!(core.evict(Budget::new().max_entries(2)).unwrap(), Some(1));
    let fresh = packed(&dir);
    assert!(value_of(&fresh, 1).is_some());
    assert_eq!(value_of(&fresh, 2), None);
    assert!(value_of(&fresh, 3).is_some());
}

/// A process reusing a dead one's pid names its segments as that one did:
/// a reader that had the dead one's segment open reads the new file under
/// that name from its start, and serves what it holds.
#[test]
fn a_segment_whose_name_is_taken_again_is_read_anew() {
    let dir = scratch("name-taken");
    let (reader, dead) = (packed(&dir), packed(&dir));
    store(&dead, 1, b"old".to_vec());
    assert_eq!(value_of(&reader, 1), Some(b"old".to_vec()));
    let [old] = named(&dead, "segment").try_into().unwrap();
    drop(dead);
    std::fs::remove_file(&old).unwrap();
    // A writer's new segment, then named as the dead one's was.
    let writer = packed(&dir);
    store(&writer, 1, b"new".to_vec());
    let [new] = named(&writer, "segment").try_into().unwrap();
    std::fs::rename(&new, &old).unwrap();
    assert_eq!(value_of(&reader, 1), Some(b"new".to_vec()));
}

#[test]
fn packing_is_part_of_the_version() {
    let dir = scratch("apart");
    let files = FileCore::new(&dir).version("segments::f v1");
    let core = packed(&dir);
    assert_ne!(files.dpath(), core.dpath());
    store(&files, 1, b"in a file".to_vec());
    store(&core, 1, b"packed".to_vec());
    assert_eq!(value_of(&files, 1), Some(b"in a file".to_vec()));
    assert_eq!(value_of(&core, 1), Some(b"packed".to_vec()));
    assert_eq!(named(&files, "cachier").len(), 1);
    assert_eq!(named(&core, "cachier").len(), 0);
}

/// Where the functions below keep their entries.
static ROOT: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| scratch("attribute"));

#[cachier::cachier(cache_dir = ROOT.clone())]
fn packed_square(x: u64) -> u64 {
    x * x
}

#[cachier::cachier(cache_dir = ROOT.clone(), segments = false)]
fn filed_square(x: u64) -> u64 {
    x * x
}

#[test]
fn functions_pack_by_default_and_segments_false_keeps_a_file_each() {
    for x in 0..3 {
        assert_eq!((packed_square(x), filed_square(x)), (x * x, x * x));
    }
    assert_eq!(
        counted(&packed_square.cache_dpath().unwrap(), ["segment", "cachier"]),
        [1, 0]
    );
    assert_eq!(
        counted(&filed_square.cache_dpath().unwrap(), ["segment", "cachier"]),
        [0, 3]
    );
    assert_eq!(packed_square(2), 4);
    assert_eq!(packed_square.cache_info().hits, 1);
}

/// Stores every key of `keys` three times, 1,000 bytes of the round's
/// number each: two thirds of the bytes the segments then hold are replaced.
fn three_rounds(core: &FileCore, keys: std::ops::Range<u64>) {
    for round in 0..3u8 {
        for n in keys.clone() {
            store(core, n, vec![round; 1_000]);
        }
    }
}

/// The bytes of the segments in the version's directory.
fn segment_bytes(core: &FileCore) -> u64 {
    let sizes = named(core, "segment")
        .into_iter()
        .map(|path| std::fs::metadata(path).unwrap().len());
    sizes.sum()
}

#[test]
fn compaction_frees_the_bytes_of_replaced_entries_under_readers() {
    let dir = scratch("compact");
    let core = packed(&dir);
    three_rounds(&core, 0..1_000);
    let reader = packed(&dir);
    assert_eq!(value_of(&reader, 7), Some(vec![2; 1_000]));
    let before = segment_bytes(&core);
    core.reclaim().unwrap();
    let after = segment_bytes(&core);
    assert_eq!(after, 1_000 * 1_050, "{before} bytes before");
    let fresh = packed(&dir);
    for n in 0..1_000 {
        assert_eq!(value_of(&reader, n), Some(vec![2; 1_000]), "key {n}");
        assert_eq!(value_of(&fresh, n), Some(vec![2; 1_000]), "key {n}");
    }
    // The compacted segment is the one this process appends to next.
    store(&core, 5_000, b"after".to_vec());
    assert_eq!(named(&core, "segment").len(), 1);
    assert_eq!(value_of(&packed(&dir), 5_000), Some(b"after".to_vec()));
}

#[test]
fn compaction_drops_evicted_entries_and_their_marks() {
    let (dir, core) = filled("compact-evict", 2_000, 1_000);
    assert_eq!(core.evict(Budget::new().max_entries(100)).unwrap(), Some(1_900));
    assert_eq!(segment_bytes(&core), 100 * 1_050, "no removal mark is kept");
    let fresh = packed(&dir);
    let kept = (0..2_000).filter(|&n| value_of(&fresh, n).is_some()).count();
    assert_eq!(kept, 100);
}

#[test]
fn compaction_leaves_the_segments_of_live_writers_alone() {
    let dir = scratch("compact-live");
    let core = packed(&dir);
    three_rounds(&core, 100..1_100);
    let mut peer = Peer::start("store", dir.to_str().unwrap());
    peer.expect("stored");
    core.reclaim().unwrap();
    assert_eq!(
        named(&core, "segment").len(),
        2,
        "the child's and the compacted one"
    );
    assert!(segment_bytes(&core) < 1_100 * 1_050);
    assert_eq!(value_of(&core, 1), Some(b"child".to_vec()));
    assert_eq!(value_of(&core, 500), Some(vec![2; 1_000]));
    peer.tell();
    peer.expect("cleared");
    peer.finish();
}
