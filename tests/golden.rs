//! Pins what must never change by accident: key digests, the entry file
//! format and the segment format. A change here makes every existing cache unreadable (or, worse,
//! readable as something else); when it is deliberate, bump
//! `cachier_core::file::format::VERSION` and regenerate with `CACHIER_BLESS=1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use cachier::file::format;
use cachier::{Core, Entry, FileCore, Key};
use serde::Serialize;

#[derive(Serialize)]
struct Query {
    region: &'static str,
    limits: HashMap<String, u64>,
    kind: Kind,
}

#[derive(Serialize)]
enum Kind {
    Daily { days: u16 },
}

#[test]
fn key_digests_are_pinned() {
    let query = Query {
        region: "EMEA",
        limits: [("rows".to_string(), 10), ("cols".to_string(), 3)].into(),
        kind: Kind::Daily { days: 7 },
    };
    // The first two digests were checked against hand-assembled bytes:
    // SHA-1(SHA-1(0x23 + u64 length + "app::f") + 0x32 + u64 count 2
    //       + (0x1b + 8 little-endian bytes) per element).
    let cases = [
        (
            Key::new("app::f", &(1u64, 23u64)).unwrap(),
            "4c7c990a9c763724fc9c2f7ea074e99fc6d45622",
        ),
        (
            Key::new("app::f", &(12u64, 3u64)).unwrap(),
            "85c9150e3d3c80ded4a67b31e2810579baf08c30",
        ),
        (
            Key::new("app::report", &("2026-01-01", &query)).unwrap(),
            "1d66e071b90da268e6b0ec5ccaca9410f5622ee3",
        ),
    ];
    let got: Vec<String> = cases.iter().map(|(key, _)| key.to_string()).collect();
    let pinned: Vec<&str> = cases.iter().map(|(_, hex)| *hex).collect();
    assert_eq!(got, pinned);
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/entry-v1.cachier")
}

#[test]
fn the_entry_file_format_is_pinned() {
    let key = Key::new("golden::f", &(7u64, "seven")).unwrap();
    // The value is what the engine stores: bincode 2, standard configuration.
    let value =
        bincode::serde::encode_to_vec(("seven", 7u32, vec![1.5f64]), bincode::config::standard()).unwrap();
    let entry = Entry::new(
        UNIX_EPOCH + Duration::from_nanos(1_790_000_000_123_456_789),
        value,
    );
    let bytes = format::encode(&key, &entry);
    if std::env::var_os("CACHIER_BLESS").is_some() {
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let golden = std::fs::read(golden_path()).expect("tests/golden/entry-v1.cachier");
    assert_eq!(bytes, golden, "the entry file format changed");

    // And this build reads the golden file back through the file core.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("golden");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(golden_path(), dir.join(format!("{key}.cachier"))).unwrap();
    assert_eq!(FileCore::new(&dir).get(&key).unwrap(), Some(entry));
}

#[test]
fn the_generations_file_layout_is_pinned() {
    // 512 little-endian u64: slot 0 counts removals in the directory (its
    // top bit marks a directory a clear retired: see generations.rs), slot
    // 1 + (first 8 key bytes, little-endian) % 511 the stores of that key.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let core = FileCore::new(dir.path().join("app.f"));
    let key = Key::from_bytes([0x11; 20]);
    let slot = 1 + (u64::from_le_bytes([0x11; 8]) % 511) as usize;
    core.set(&key, &Entry::new(UNIX_EPOCH, vec![1])).unwrap();
    core.set(&key, &Entry::new(UNIX_EPOCH, vec![2])).unwrap();
    core.clear().unwrap();
    let bytes = std::fs::read(dir.path().join("app.f").join("generations")).unwrap();
    let slots: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(slots.len(), 512);
    let mut pinned = vec![0; 512];
    (pinned[0], pinned[slot]) = (1, 2);
    assert_eq!(slots, pinned);
}

fn golden_segment_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/segment-v2.segment")
}

#[test]
fn the_segment_format_is_pinned() {
    // A segment of three records: an entry (format version 1, as an entry
    // file holds it), a removal mark of another key and a use mark of the
    // entry's (format version 2).
    let key = Key::new("golden::f", &(7u64, "seven")).unwrap();
    let removed = Key::new("golden::f", &(8u64, "eight")).unwrap();
    let entry = Entry::new(
        UNIX_EPOCH + Duration::from_nanos(1_790_000_000_123_456_789),
        vec![1, 2, 3],
    );
    let mut bytes = format::encode(&key, &entry);
    let at = |nanos| UNIX_EPOCH + Duration::from_nanos(nanos);
    bytes.extend(format::encode_mark(
        format::Mark::Removed,
        &removed,
        at(1_790_000_001_000_000_000),
    ));
    bytes.extend(format::encode_mark(
        format::Mark::Used,
        &key,
        at(1_790_000_002_000_000_000),
    ));
    if std::env::var_os("CACHIER_BLESS").is_some() {
        std::fs::write(golden_segment_path(), &bytes).unwrap();
    }
    let golden = std::fs::read(golden_segment_path()).expect("tests/golden/segment-v2.segment");
    assert_eq!(bytes, golden, "the segment format changed");

    // And this build reads it back through a core packing entries.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let packed = || {
        FileCore::new(dir.path().join("golden.f"))
            .version("golden v1")
            .segments(true)
    };
    packed().set(&removed, &entry).unwrap();
    std::fs::copy(
        golden_segment_path(),
        packed().dpath().unwrap().join("1-1.segment"),
    )
    .unwrap();
    let reader = packed();
    assert_eq!(reader.get(&key).unwrap(), Some(entry.clone()));
    assert_eq!(reader.get(&removed).unwrap(), None, "the removal mark is newer");
}
