//! The file core shared by several processes. The test binary runs itself again
//! as the other processes (the ignored test `child`, given a role through the
//! environment); events between processes are ordered by lines on pipes.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use cachier::cachier;

const ROLE: &str = "CACHIER_TEST_ROLE";
/// A safety net against a broken build hanging the suite, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("processes")
        .join(name)
}

fn role() -> String {
    std::env::var(ROLE).unwrap_or_default()
}

/// Blocks until the parent writes a line (or closes our stdin).
fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
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
        "hold" => {
            held();
        }
        "store" => say(&format!("value={}", shared(1))),
        "clear" => shared.clear_cache().unwrap(),
        other => panic!("unknown role {other:?}"),
    }
}

/// A child process and the lines it prints, tagged by stream.
struct Peer {
    child: Child,
    lines: Receiver<(Stream, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

impl Peer {
    fn start(role: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        for (stream, pipe) in [
            (
                Stream::Out,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (Stream::Err, Box::new(child.stderr.take().unwrap())),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let _ = send.send((stream, line.unwrap()));
                }
            });
        }
        Peer { child, lines }
    }

    /// Waits for a line of `stream` containing `text`.
    fn expect(&self, stream: Stream, text: &str) {
        loop {
            let (from, line) = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no {text:?} line"));
            if from == stream && line.contains(text) {
                return;
            }
        }
    }

    fn tell(&mut self) {
        let _ = writeln!(self.child.stdin.as_mut().unwrap(), "go");
    }

    /// Waits for the child to exit successfully; returns its `value=` line.
    fn value(mut self) -> String {
        assert!(self.child.wait().unwrap().success(), "a child process failed");
        self.lines
            .iter()
            .find_map(|(stream, line)| {
                // libtest may print `test child ... ` on the same line first.
                let value = line.split_once("value=").map(|(_, value)| value.to_owned());
                value.filter(|_| stream == Stream::Out)
            })
            .expect("a value= line")
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[test]
fn processes_racing_on_a_cold_key_compute_once() {
    race.clear_cache().unwrap();
    let mut peers: Vec<Peer> = (0..4).map(|_| Peer::start("race")).collect();
    // Every process reports either computing or waiting for the one that does.
    let mut computing = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        loop {
            let (stream, line) = peer.lines.recv_timeout(PATIENCE).expect("the child said nothing");
            if stream == Stream::Out && line.ends_with("computing") {
                computing.push(i);
                break;
            }
            if stream == Stream::Err && line.contains("waiting for another process") {
                break;
            }
        }
    }
    assert_eq!(computing.len(), 1, "processes {computing:?} all computed");
    peers.iter_mut().for_each(Peer::tell);
    let values: Vec<String> = peers.into_iter().map(Peer::value).collect();
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
}

#[test]
fn a_process_killed_mid_write_leaves_a_whole_entry() {
    big.clear_cache().unwrap();
    let peer = Peer::start("rewrite");
    // Let it complete a few writes, then kill it while it keeps rewriting.
    for _ in 0..3 {
        peer.expect(Stream::Out, "written");
    }
    peer.kill();
    let value = big(0);
    assert_eq!(value.len(), 8 << 20);
    assert!(value.iter().all(|&b| b == value[0]), "a torn entry was served");
    let info = big.cache_info();
    assert_eq!((info.hits, info.cache_errors), (1, 0), "{info:?}");
}

#[test]
fn a_killed_process_leaves_no_marker_behind() {
    held.clear_cache().unwrap();
    let key = held.cache().key(&()).unwrap();
    let peer = Peer::start("hold");
    peer.expect(Stream::Out, "computing");
    assert!(
        held.cache().core().try_claim(&key).unwrap().is_none(),
        "the child should hold the marker"
    );
    peer.kill();
    let claim = held.cache().core().try_claim(&key).unwrap();
    assert!(claim.is_some(), "the dead process's marker survived");
    drop(claim);
    assert_eq!(held(), 7);
    assert_eq!(held.cache_info().recalculations, 1);
}

#[test]
fn values_and_clears_of_other_processes_are_seen_at_once() {
    shared.clear_cache().unwrap();
    let theirs = Peer::start("store").value();
    assert_eq!(
        shared(1),
        theirs,
        "a value stored by another process must be served"
    );
    assert_eq!(shared.cache_info().recalculations, 0);
    assert!(Peer::start("clear").child.wait().unwrap().success());
    let ours = shared(1);
    assert_eq!(
        ours,
        format!("1 computed by {}", std::process::id()),
        "a clear by another process must be seen"
    );
}
