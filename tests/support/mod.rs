//! Running this test binary again as other processes, and talking to them
//! through lines on pipes. A test file that uses it defines an ignored test
//! named `child` that acts by [`role`].

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROLE: &str = "CACHIER_TEST_ROLE";
const RUN: &str = "CACHIER_TEST_RUN";
/// A safety net against a broken build hanging the suite, never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Runs `f` with a tracing subscriber that records every event; returns the log.
pub fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

/// Runs `f` on another thread and returns its result, or panics if it has not
/// returned within [`PATIENCE`] (a call that would hang forever fails the test
/// instead of hanging the suite; never a timing assertion).
/// The thread reports to the caller's tracing subscriber.
pub fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::spawn(move || {
        let _ = send.send(tracing::dispatcher::with_default(&dispatch, f));
    });
    match receive.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the call never returned"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the call panicked"),
    }
}

/// Runs `command` to its end, checks that it succeeded, and returns its stdout.
pub fn stdout_of(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An empty directory for a test's caches: `<area>/<name>` in the test
/// target's scratch space, emptied of what an earlier run left there.
pub fn emptied_scratch(area: &str, name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(area)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// What this process was started to do (empty in the test process itself).
pub fn role() -> String {
    std::env::var(ROLE).unwrap_or_default()
}

/// The run id the parent passed to this child.
pub fn run() -> String {
    std::env::var(RUN).unwrap_or_default()
}

/// Prints a line for the parent at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Blocks until the parent writes a line (or closes our stdin).
pub fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// A child process and the lines it prints.
pub struct Peer {
    pub child: Child,
    lines: Receiver<(Stream, String)>,
}

impl Peer {
    /// Runs this binary's `child` test in a new process with `role` and `run`.
    pub fn start(role: &str, run: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(RUN, run)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (stream, pipe) in [(Stream::Out, stdout), (Stream::Err, stderr)] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let _ = send.send((stream, line.unwrap()));
                }
            });
        }
        Peer { child, lines }
    }

    /// Waits for the first line that contains one of `wanted`'s texts on its
    /// stream; returns which one. (libtest may print `test child ... ` before
    /// the child's first line, hence "contains".)
    pub fn first_of(&self, wanted: &[(Stream, &str)]) -> usize {
        loop {
            let (stream, line) = self.lines.recv_timeout(PATIENCE).expect("the child said nothing");
            if let Some(i) = wanted
                .iter()
                .position(|&(s, text)| s == stream && line.contains(text))
            {
                return i;
            }
        }
    }

    /// Waits for a stdout line containing `text`.
    pub fn expect(&self, text: &str) {
        self.first_of(&[(Stream::Out, text)]);
    }

    /// Writes a line to the child's stdin.
    pub fn tell(&mut self) {
        let _ = writeln!(self.child.stdin.as_mut().unwrap(), "go");
    }

    /// Waits for the child to succeed; returns what followed `value=` on
    /// stdout. A child that failed fails the test with what it printed.
    pub fn value(mut self) -> String {
        let status = self.child.wait().unwrap();
        let lines: Vec<(Stream, String)> = self.lines.iter().collect();
        let said = || {
            lines
                .iter()
                .map(|(_, line)| line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(status.success(), "a child process failed:\n{}", said());
        lines
            .iter()
            .find_map(|(stream, line)| {
                let value = line.split_once("value=").map(|(_, value)| value.to_owned());
                value.filter(|_| *stream == Stream::Out)
            })
            .unwrap_or_else(|| panic!("no value= line in:\n{}", said()))
    }

    /// Waits for the child to succeed.
    pub fn finish(mut self) {
        assert!(self.child.wait().unwrap().success(), "a child process failed");
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Starts `processes` children with `role`, whose cached call must print
/// `computing` (stdout) in its body and runs verbose (so waiting shows on
/// stderr). Checks that exactly one computes while the others wait for it,
/// lets it finish, and returns every child's value, all equal.
pub fn race(role: &str, run: &str, processes: usize) -> String {
    let mut peers: Vec<Peer> = (0..processes).map(|_| Peer::start(role, run)).collect();
    let events = [
        (Stream::Out, "computing"),
        (Stream::Err, "waiting for another process"),
    ];
    let computing: Vec<usize> = (0..peers.len())
        .filter(|&i| peers[i].first_of(&events) == 0)
        .collect();
    assert_eq!(computing.len(), 1, "processes {computing:?} all computed");
    peers.iter_mut().for_each(Peer::tell);
    let values: Vec<String> = peers.into_iter().map(Peer::value).collect();
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
    values[0].clone()
}

/// A function name no other core of any run uses, for a fresh core of the
/// contract suite on a lasting store.
pub fn fresh_function() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("contract-{}-{n}", std::process::id())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server process of a test's own, stopped with `kill -<signal>` when dropped.
pub struct OwnServer {
    process: Child,
    signal: &'static str,
}

impl OwnServer {
    /// Runs `command` (its output discarded) and waits until `answers` says
    /// the server does (a failure after [`PATIENCE`]).
    pub fn start(mut command: Command, signal: &'static str, answers: impl Fn() -> bool) -> OwnServer {
        let process = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = OwnServer { process, signal };
        let deadline = Instant::now() + PATIENCE;
        while !answers() {
            assert!(Instant::now() < deadline, "the test server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let pid = self.process.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{}", self.signal), &pid])
            .status();
        let _ = self.process.wait();
    }
}

/// A function cached on a server of the test's own survives the server going
/// away: while it is down, calls return the function's own results and count
/// the failures; once it is back (and `retry_after` has passed), caching
/// resumes. `start` starts the server; dropping what it returns stops it.
pub fn survives_an_outage<S>(
    start: impl Fn() -> S,
    f: fn(u64) -> u64,
    cache: &cachier::FunctionCache,
    retry_after: Duration,
) {
    let server = start();
    assert_eq!(f(1), 10);
    assert_eq!(f(1), 10);
    assert_eq!(cache.info().hits, 1);

    drop(server);
    let errors = cache.info().cache_errors;
    assert_eq!(f(2), 20, "the function's own result while the server is down");
    assert_eq!(f(3), 30);
    let info = cache.info();
    assert!(
        info.cache_errors >= errors + 2,
        "every failure is counted: {info:?}"
    );

    let _server = start();
    // The core skips the server for retry_after after a failure: let that pass.
    std::thread::sleep(retry_after);
    assert_eq!(f(4), 40);
    let hits = cache.info().hits;
    assert_eq!(f(4), 40);
    assert_eq!(
        cache.info().hits,
        hits + 1,
        "caching resumes once the server is back"
    );
}

/// The tests every core on a server passes, with processes of this binary as
/// the other clients: three processes compute one key once, a killed claim
/// holder is taken over after its lease, another process's store and clear
/// are seen; and a value over the size limit is returned, not stored. The test file defines `init()`, which points the backend at its
/// server with a short lease, and gets the ignored test `child` these
/// processes run.
#[allow(unused_macros)] // each test binary uses its own part of this
macro_rules! shared_store_tests {
    ($backend:literal) => {
        #[cachier::cachier(backend = $backend)]
        fn race(run: &str) -> String {
            $crate::support::say("computing");
            $crate::support::wait_for_parent();
            format!("{run} computed by {}", std::process::id())
        }

        #[cachier::cachier(backend = $backend)]
        fn held(run: &str) -> String {
            if $crate::support::role() == "hold" {
                $crate::support::say("computing");
                $crate::support::wait_for_parent();
            }
            format!("{run} computed by {}", std::process::id())
        }

        #[cachier::cachier(backend = $backend, stale_after = "1h")]
        fn shared(run: &str) -> String {
            format!("{run} computed by {}", std::process::id())
        }

        #[cachier::cachier(backend = $backend, entry_size_limit = "1KB")]
        fn large(run: &str, n: usize) -> Vec<u8> {
            vec![run.len() as u8; n]
        }

        #[cfg(feature = "async")]
        static ASYNC_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

        #[cfg(feature = "async")]
        #[cachier::cachier(backend = $backend)]
        async fn fetched(run: &str) -> String {
            ASYNC_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
            format!("{run} fetched")
        }

        /// The core's blocking calls run off the executor, whose tasks share one computation.
        #[cfg(feature = "async")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn async_functions_share_one_computation() {
            init();
            let run = run_id("async");
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let run = run.clone();
                    tokio::spawn(async move { fetched(&run).await })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), format!("{run} fetched"));
            }
            assert_eq!(fetched(&run).await, format!("{run} fetched"));
            assert_eq!(ASYNC_RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
            assert!(fetched.cache_info().hits >= 1);
        }

        #[test]
        fn a_value_over_the_limit_is_returned_and_not_stored() {
            init();
            let run = run_id("large");
            let big = vec![run.len() as u8; 4096];
            assert_eq!(large(&run, 4096), big);
            assert_eq!(large(&run, 4096), big);
            assert_eq!(large.cache_info().hits, 0, "not stored, so never a hit");
            assert_eq!(large(&run, 10), big[..10]);
            assert_eq!(large(&run, 10), big[..10]);
            assert_eq!(large.cache_info().hits, 1);
        }

        /// The other processes' side of the tests below. Arguments arrive in `CACHIER_TEST_RUN`.
        #[test]
        #[ignore = "a helper: the other tests of this file run it as a child process"]
        fn child() {
            init();
            let run = $crate::support::run();
            match $crate::support::role().as_str() {
                "race" => $crate::support::say(&format!("value={}", race.verbose_cache(&run))),
                "hold" => $crate::support::say(&format!("value={}", held(&run))),
                "store" => $crate::support::say(&format!("value={}", shared(&run))),
                "clear" => shared.clear_cache().unwrap(),
                other => panic!("unknown role {other:?}"),
            }
        }

        /// A run id, so that tests never see entries of earlier runs against a lasting server.
        fn run_id(test: &str) -> String {
            format!(
                "{test}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            )
        }

        #[test]
        fn processes_sharing_a_key_compute_once() {
            init();
            let run = run_id("race");
            let value = $crate::support::race("race", &run, 3);
            assert_eq!(race(&run), value, "this process reads the shared value");
            assert_eq!(race.cache_info().recalculations, 0);
        }

        #[test]
        fn a_claim_of_a_killed_process_is_taken_over_after_its_lease() {
            init();
            let run = run_id("held");
            let peer = $crate::support::Peer::start("hold", &run);
            peer.expect("computing");
            let key = held.cache().key(&(run.as_str(),)).unwrap();
            assert!(
                held.cache().core().try_claim(&key).unwrap().is_none(),
                "the child's claim should be live"
            );
            peer.kill();
            // No wait_for_calc_timeout: only the expiring lease lets this call through.
            let ours = held(&run);
            assert_eq!(ours, format!("{run} computed by {}", std::process::id()));
            assert_eq!(held.cache_info().recalculations, 1);
        }

        #[test]
        fn values_and_clears_of_other_processes_are_seen() {
            init();
            let run = run_id("shared");
            let theirs = $crate::support::Peer::start("store", &run).value();
            assert_eq!(
                shared(&run),
                theirs,
                "a value stored by another process must be served"
            );
            $crate::support::Peer::start("clear", &run).finish();
            assert_eq!(
                shared(&run),
                format!("{run} computed by {}", std::process::id()),
                "their clear must be seen"
            );
        }
    };
}
#[allow(unused_imports)]
pub(crate) use shared_store_tests;

/// The SQL core's suite on the database `url()` (a function the test file
/// defines): the `Core` contract, and [`shared_store_tests`].
#[allow(unused_macros)] // each test binary uses its own part of this
macro_rules! sql_suite {
    () => {
        /// Short enough that the takeover test is quick, long enough to be renewed in time.
        const LEASE: std::time::Duration = std::time::Duration::from_secs(2);
        const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

        fn params() -> cachier::SqlParams {
            let mut params = cachier::SqlParams::default();
            params.url = Some(url());
            params.table = "cachier_test".into();
            params.lease = LEASE;
            params.retry_after = RETRY_AFTER;
            params
        }

        /// Every process of this binary uses the test database and a short lease.
        fn init() {
            static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
            ONCE.get_or_init(|| cachier::set_global_params(cachier::global_params().sql(params())));
        }

        mod contract {
            /// A fresh core: a function name no other core uses.
            fn fresh() -> Box<dyn cachier::Core> {
                let function = $crate::support::fresh_function();
                Box::new(cachier::SqlCore::with_params(&function, &super::params()))
            }

            cachier_core::core_contract!(fresh);
        }

        $crate::support::shared_store_tests!("sql");

        /// A table of this process's own, dropped behind the core's back.
        fn vanishing_table() -> String {
            format!("cachier_vanishing_{}", std::process::id())
        }

        fn vanishing_core() -> cachier::SqlCore {
            let mut params = params();
            params.table = vanishing_table();
            cachier::SqlCore::with_params("sql::on_vanishing_table", &params)
        }

        #[cachier::cachier(core = vanishing_core())]
        fn on_vanishing_table(x: u64) -> u64 {
            x * 3
        }

        #[test]
        fn a_dropped_table_is_made_again() {
            assert_eq!(on_vanishing_table(1), 3);
            assert_eq!(on_vanishing_table(1), 3);
            assert_eq!(on_vanishing_table.cache_info().hits, 1);
            let drop_table = || {
                let (sql, url) = (format!("DROP TABLE {}", vanishing_table()), url());
                match url.strip_prefix("sqlite://") {
                    Some(path) => drop(
                        rusqlite::Connection::open(path)
                            .unwrap()
                            .execute(&sql, [])
                            .unwrap(),
                    ),
                    None => drop(
                        postgres::Client::connect(&url, postgres::NoTls)
                            .unwrap()
                            .execute(&sql, &[])
                            .unwrap(),
                    ),
                }
            };
            drop_table();
            assert_eq!(on_vanishing_table(1), 3);
            assert_eq!(on_vanishing_table(1), 3);
            let info = on_vanishing_table.cache_info();
            assert_eq!(
                (info.hits, info.recalculations, info.cache_errors),
                (2, 2, 0),
                "{info:?}"
            );
            drop_table();
        }
    };
}
#[allow(unused_imports)]
pub(crate) use sql_suite;

/// How many files in `dir` have each of `exts` as their extension
/// (`cachier`: entry files, `segment`: segments).
pub fn counted<const N: usize>(dir: &std::path::Path, exts: [&str; N]) -> [usize; N] {
    let names: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|file| file.unwrap().path())
        .collect();
    exts.map(|ext| {
        names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .count()
    })
}

/// The entries a file-core function keeps in its version's directory
/// `dpath`, whatever the layout: entry files and entries packed in
/// segments, each as its key in hex (entry files: their name) and size.
pub fn entries(dpath: &std::path::Path) -> Vec<(String, u64)> {
    use cachier::file::scan::{self, Depth};
    let function = dpath
        .parent()
        .expect("a version's directory is in its function's");
    let Some(function) = scan::function(function, cachier::Sharing::Private, Depth::Header).unwrap() else {
        return Vec::new();
    };
    let mut entries: Vec<_> = function
        .entries()
        .filter(|entry| entry.dir == dpath)
        .map(|entry| (entry.name.clone(), entry.bytes))
        .collect();
    entries.sort();
    entries
}
