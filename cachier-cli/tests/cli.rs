//! The built `cachier` binary on a cache directory that real cached functions
//! filled, with a corrupt entry, a file a killed writer left, and another
//! program's file in it. Those functions keep one file per entry
//! (`segments = false`), for the broken files planted among them; the
//! entries of `cli::packed` are packed into segments, as by default.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use cachier::cachier;
use serde_json::Value;

/// Every test of this file works on one directory, in turn.
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());
static TURN: Mutex<()> = Mutex::new(());
static SQUARES: AtomicU64 = AtomicU64::new(0);

fn dir() -> PathBuf {
    DIR.path().to_owned()
}

#[cachier(cache_dir = dir(), segments = false)]
fn square(x: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[cachier(cache_dir = dir(), segments = false)]
fn greet(name: &str) -> String {
    format!("hello {name}")
}

/// Fills the directory afresh: 3 entries of `square`, 1 of `greet`, then a
/// corrupt entry and a killed writer's temporary file next to `square`'s, and
/// a file of another program.
fn fill() -> MutexGuard<'static, ()> {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    square.clear_cache().unwrap();
    greet.clear_cache().unwrap();
    for x in 1..=3 {
        square(x);
    }
    greet("ada");
    // The reclaim a process runs after its first store would take the
    // killed writer's file planted below.
    square.wait_for_background();
    greet.wait_for_background();
    let version = square.cache_dpath().unwrap();
    std::fs::write(
        version.join(format!("{}.cachier", "ab".repeat(20))),
        b"not an entry",
    )
    .unwrap();
    let temp = version.join(format!("{}.4242-7.tmp", "cd".repeat(20)));
    std::fs::write(&temp, b"half written").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    std::fs::write(version.join("notes.txt"), b"mine").unwrap();
    turn
}

fn cachier(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachier"))
        .arg("--dir")
        .arg(dir())
        .args(args)
        .env_remove("CACHIER_SHARING")
        .output()
        .unwrap()
}

/// Runs `cachier args..`, which must succeed, and parses its JSON output.
fn json(args: &[&str]) -> Value {
    let output = cachier(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn row<'a>(listing: &'a Value, function: &str) -> &'a Value {
    listing
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["function"] == function)
        .unwrap_or_else(|| panic!("no row for {function} in {listing}"))
}

#[test]
fn ls_lists_each_function_with_its_entries() {
    let _turn = fill();
    let listing = json(&["ls", "--json"]);
    let squares = row(&listing, "cli::square");
    assert_eq!(squares["entries"], 3);
    assert_eq!(squares["corrupt"], 1);
    assert_eq!(squares["temp"], 1);
    assert_eq!(squares["foreign"], 1);
    assert!(squares["bytes"].as_u64().unwrap() > 0);
    assert!(squares["oldest"].as_f64().unwrap() <= squares["newest"].as_f64().unwrap());
    assert_eq!(row(&listing, "cli::greet")["entries"], 1);

    let human = String::from_utf8(cachier(&["ls"]).stdout).unwrap();
    let header = human.lines().next().unwrap();
    assert!(header.contains("FUNCTION") && header.contains("ENTRIES") && header.contains("SIZE"));
    let line = human.lines().find(|l| l.contains("cli::square")).unwrap();
    assert!(
        line.contains(" 3 ") && line.contains("B ") && line.contains("ago"),
        "{line}"
    );
}

#[test]
fn show_lists_a_functions_entries() {
    let _turn = fill();
    let rows = json(&["show", "cli::square", "--json"]);
    let rows = rows.as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "entry").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "corrupt").count(), 1);
    assert!(rows.iter().all(|r| r["key"].as_str().unwrap().len() == 40));
    assert!(
        rows.iter()
            .all(|r| r["version"].as_str().unwrap().starts_with("code-"))
    );
}

#[test]
fn stats_finds_corrupt_and_orphaned_files() {
    let _turn = fill();
    let totals = json(&["stats", "--json"]);
    assert_eq!(totals["functions"], 2);
    assert_eq!(totals["entries"], 4);
    assert_eq!(
        (
            totals["corrupt"].clone(),
            totals["temp"].clone(),
            totals["foreign"].clone()
        ),
        (1.into(), 1.into(), 1.into())
    );
}

#[test]
fn gc_removes_what_is_broken_and_never_a_file_it_does_not_know() {
    let _turn = fill();
    let before = json(&["stats", "--json"]);
    let planned = json(&["gc", "--dry-run", "--json"]);
    assert_eq!(planned["corrupt"], 1);
    assert_eq!(json(&["stats", "--json"]), before, "a dry run removes nothing");

    let done = json(&["gc", "--older-than", "1h", "--json"]);
    assert_eq!(
        (
            done["corrupt"].clone(),
            done["old"].clone(),
            done["abandoned_files"].clone()
        ),
        (1.into(), 0.into(), 1.into())
    );
    let after = json(&["stats", "--json"]);
    assert_eq!(
        (
            after["entries"].clone(),
            after["corrupt"].clone(),
            after["temp"].clone()
        ),
        (4.into(), 0.into(), 0.into())
    );
    assert!(
        square.cache_dpath().unwrap().join("notes.txt").exists(),
        "another program's file stays"
    );

    let runs = SQUARES.load(Ordering::SeqCst);
    assert_eq!(square(2), 4);
    assert_eq!(
        SQUARES.load(Ordering::SeqCst),
        runs,
        "entries under the budget are still served"
    );
}

/// Makes every entry file in `dir` look last used `ago` in the past.
fn used_ago(dir: PathBuf, ago: Duration) {
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "cachier") {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(SystemTime::now() - ago).unwrap();
        }
    }
}

#[test]
fn gc_keeps_a_size_budget_by_removing_the_least_recently_used() {
    let _turn = fill();
    // square(1), computed first, is the one used last.
    used_ago(square.cache_dpath().unwrap(), Duration::from_secs(7200));
    used_ago(greet.cache_dpath().unwrap(), Duration::from_secs(3600));
    assert_eq!(square(1), 1);
    let runs = SQUARES.load(Ordering::SeqCst);
    let entries = json(&["show", "cli::square", "--json"]);
    let key = square.cache().key(&(1u64,)).unwrap().to_string();
    let used = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == *key)
        .unwrap();
    let budget = format!("{}B", used["bytes"]);
    let done = json(&["gc", "--max-bytes", &budget, "--json"]);
    assert_eq!(done["over_budget"], 3, "four entries, room for one");
    let listing = json(&["ls", "--json"]);
    assert_eq!(
        (
            row(&listing, "cli::greet")["entries"].clone(),
            row(&listing, "cli::square")["entries"].clone()
        ),
        (0.into(), 1.into())
    );
    assert_eq!(square(1), 1);
    assert_eq!(
        SQUARES.load(Ordering::SeqCst),
        runs,
        "the entry used last was kept"
    );
}

#[test]
fn clear_empties_a_function_as_its_clear_cache_does() {
    let _turn = fill();
    assert_eq!(square(3), 9);
    let runs = SQUARES.load(Ordering::SeqCst);
    let output = cachier(&["clear", "cli::square"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("removed 4 entries"));
    assert_eq!(square(3), 9);
    assert_eq!(
        SQUARES.load(Ordering::SeqCst),
        runs + 1,
        "this process sees the clear at once"
    );
    assert_eq!(
        row(&json(&["ls", "--json"]), "cli::greet")["entries"],
        1,
        "other functions keep theirs"
    );
    assert!(square.cache_dpath().unwrap().join("notes.txt").exists());
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let _turn = fill();
    let missing = cachier(&["show", "cli::nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no cache of cli::nothing"));
    assert_eq!(cachier(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        cachier(&["clear"]).status.code(),
        Some(2),
        "clear needs functions or --all"
    );
    assert_eq!(cachier(&["gc", "--older-than", "soon"]).status.code(), Some(2));
}

/// A core of `cli::packed` packing its entries into segments (`FileCore::segments`).
fn packed_core() -> cachier::FileCore {
    let function = cachier::FileCore::function_dir_name("cli::packed");
    cachier::FileCore::new(dir().join(function))
        .version("cli::packed v1")
        .segments(true)
}

/// Entries packed into segments (`FileCore::segments`) are listed and shown
/// one by one, and go with a clear.
#[test]
fn clear_removes_packed_entries_too() {
    use cachier::{Core, Entry, Key};
    let _turn = fill();
    let key = Key::new("cli::packed", &1u8).unwrap();
    packed_core()
        .set(&key, &Entry::new(SystemTime::now(), vec![1]))
        .unwrap();
    let rows = json(&["show", "cli::packed", "--json"]);
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["packed"]);
    let shown = cachier(&["show", "cli::packed"]).stdout;
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains(" B ") && !shown.contains("corrupt"), "{shown}");
    assert_eq!(row(&json(&["ls", "--json"]), "cli::packed")["entries"], 1);
    let output = cachier(&["clear", "cli::packed"]);
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("cli::packed: removed 1 segment of packed entries\n"),
        "{said}"
    );
    assert_eq!(packed_core().get(&key).unwrap(), None);
    // The other tests count the functions here.
    std::fs::remove_dir_all(dir().join("cli.packed")).unwrap();
}

/// The bytes of the segments in `dir`.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    let files = std::fs::read_dir(dir).unwrap().map(|file| file.unwrap());
    let segments = files.filter(|file| file.file_name().to_string_lossy().ends_with(".segment"));
    segments.map(|file| file.metadata().unwrap().len()).sum()
}

/// `cachier gc` compacts segments no process holds: the bytes of replaced
/// packed entries come back, and the newest entries stay.
#[test]
fn gc_compacts_segments() {
    use cachier::{Core, Entry, Key};
    let _turn = fill();
    let key = |n: u64| Key::new("cli::packed", &n).unwrap();
    let writer = packed_core();
    for round in 0..3u8 {
        for n in 0..1_000 {
            writer
                .set(&key(n), &Entry::new(SystemTime::now(), vec![round; 1_000]))
                .unwrap();
        }
    }
    let path = writer.dpath().unwrap();
    assert_eq!(segment_bytes(&path), 3 * 1_000 * 1_050);
    // Let go of its segment, for gc to take.
    drop(writer);
    assert!(cachier(&["gc"]).status.success());
    assert_eq!(segment_bytes(&path), 1_000 * 1_050);
    let reader = packed_core();
    for n in 0..1_000 {
        assert_eq!(
            reader.get(&key(n)).unwrap().map(|e| e.value.to_vec()),
            Some(vec![2; 1_000])
        );
    }
    std::fs::remove_dir_all(dir().join("cli.packed")).unwrap();
}

/// `cachier gc` removes packed entries by age and past a size budget (the
/// least recently used first) as it removes entry files, and gives their
/// bytes back at once.
#[test]
fn gc_removes_packed_entries_by_age_and_budget() {
    use cachier::{Core, Entry, Key};
    let _turn = fill();
    // The budget is the whole directory's: only packed entries here.
    square.clear_cache().unwrap();
    greet.clear_cache().unwrap();
    let key = |n: u64| Key::new("cli::packed", &n).unwrap();
    let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(h * 3600);
    let writer = packed_core();
    // Keys 0..4 computed 5 to 2 hours ago, keys 4..8 within the last hour:
    // a new record's last use is when it was computed.
    for n in 0..8 {
        let computed = hours_ago(5 - n.min(4)) + Duration::from_secs(60 * n);
        writer
            .set(&key(n), &Entry::new(computed, vec![n as u8; 100]))
            .unwrap();
    }
    let path = writer.dpath().unwrap();
    let record = segment_bytes(&path) / 8;
    drop(writer);

    let done = json(&["gc", "--older-than", "90m", "--json"]);
    assert_eq!(
        (done["old"].clone(), done["over_budget"].clone()),
        (4.into(), 0.into())
    );
    assert_eq!(segment_bytes(&path), 4 * record, "compacted at once");
    let budget = format!("{}B", 2 * record);
    let done = json(&["gc", "--max-bytes", &budget, "--json"]);
    assert_eq!(done["over_budget"], 2);
    assert_eq!(segment_bytes(&path), 2 * record);

    let reader = packed_core();
    let kept: Vec<u64> = (0..8)
        .filter(|&n| reader.get(&key(n)).unwrap().is_some())
        .collect();
    assert_eq!(kept, [6, 7], "the two used last");
    assert_eq!(row(&json(&["ls", "--json"]), "cli::packed")["entries"], 2);
    std::fs::remove_dir_all(dir().join("cli.packed")).unwrap();
}
