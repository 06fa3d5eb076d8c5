//! The engine under async callers (`FunctionCache::call_async`, feature
//! `async`), on tokio's current-thread and multi-thread runtimes: single-flight
//! without blocking the executor, cancellation, `next_time` refreshes as tasks,
//! and across processes.
#![cfg(feature = "async")]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cachier::{Backend, CallOptions, FunctionCache, Plain, TaskJob};
use support::{role, say, wait_for_parent};
use tokio::sync::{Notify, oneshot};

fn scratch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("async_engine")
        .join(name)
}

fn memory(name: &str) -> FunctionCache {
    FunctionCache::builder(format!("async_engine::{name}"))
        .backend(Backend::Memory)
        .build()
}

/// A body that counts its runs and waits for `gate` before returning `value`.
async fn gated(runs: &AtomicU64, gate: &Notify, value: u64) -> Plain<u64> {
    runs.fetch_add(1, Ordering::SeqCst);
    gate.notified().await;
    Plain(value)
}

async fn call(cache: &FunctionCache, arg: u64, body: impl Future<Output = Plain<u64>>) -> u64 {
    cache
        .call_async(&CallOptions::DEFAULT, cache.key(&arg), body)
        .await
        .0
}

#[test]
fn callers_on_one_thread_share_one_computation_without_blocking_it() {
    // A waiter that blocked its thread would deadlock this runtime: the
    // computing task could never be polled again.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (cache, runs, gate) = (memory("one_thread"), AtomicU64::new(0), Notify::new());
    let values = runtime.block_on(async {
        let open = async {
            // Runs once the three callers are parked: opens the gate.
            tokio::task::yield_now().await;
            gate.notify_waiters();
        };
        let (a, b, c, ()) = tokio::join!(
            call(&cache, 1, gated(&runs, &gate, 10)),
            call(&cache, 1, gated(&runs, &gate, 20)),
            call(&cache, 1, gated(&runs, &gate, 30)),
            open,
        );
        [a, b, c]
    });
    assert_eq!(values, [10, 10, 10]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.info().recalculations, 1);
}

#[test]
fn tasks_on_many_threads_share_one_computation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let cache = Arc::new(memory("many_threads"));
    let runs = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Notify::new());
    let values = runtime.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (cache, runs, gate) = (Arc::clone(&cache), Arc::clone(&runs), Arc::clone(&gate));
                // Spawned: the cached future is Send.
                tokio::spawn(async move { call(&cache, 7, gated(&runs, &gate, i)).await })
            })
            .collect();
        // Opens the gate for the one computation, whenever it starts.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_cancelled_computation_hands_the_key_to_a_waiter() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cache = Arc::new(
        FunctionCache::builder("async_engine::cancelled")
            .cache_dir(scratch("cancelled"))
            .build(),
    );
    cache.clear().unwrap();
    let value = runtime.block_on(async {
        let (started, is_started) = oneshot::channel();
        let first = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let body = async move {
                    let _ = started.send(());
                    std::future::pending::<Plain<u64>>().await // never finishes
                };
                call(&cache, 1, body).await
            })
        };
        is_started.await.unwrap();
        let second = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { call(&cache, 1, async { Plain(2) }).await })
        };
        tokio::task::yield_now().await; // the second caller waits for the first
        first.abort();
        second.await.unwrap()
    });
    assert_eq!(value, 2, "the waiter computed after the first caller was dropped");
    assert_eq!(cache.info().recalculations, 2);
    let key = cache.key(&1u64).unwrap();
    assert!(
        cache.core().try_claim(&key).unwrap().is_some(),
        "the dropped caller's claim leaked"
    );
}

#[test]
fn next_time_serves_stale_values_and_refreshes_as_a_task() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cache = FunctionCache::builder("async_engine::next_time")
        .backend(Backend::Memory)
        .stale_after(Duration::ZERO)
        .next_time(true)
        .build();
    let runs = Arc::new(AtomicU64::new(0));
    let refreshable = |runs: &Arc<AtomicU64>| {
        let runs = Arc::clone(runs);
        move || -> TaskJob<Plain<u64>> {
            Box::pin(async move { Plain(runs.fetch_add(1, Ordering::SeqCst) + 1) })
        }
    };
    let (first, second) = runtime.block_on(async {
        let first = cache
            .call_refreshable_async(&CallOptions::DEFAULT, cache.key(&1u64), refreshable(&runs))
            .await
            .0;
        let second = cache
            .call_refreshable_async(&CallOptions::DEFAULT, cache.key(&1u64), refreshable(&runs))
            .await
            .0;
        cache.wait_for_background_async().await;
        (first, second)
    });
    assert_eq!((first, second), (1, 1), "the stale value is returned at once");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one refresh ran in the background"
    );
    assert_eq!(cache.info().stale_hits, 1);
}

/// An async call of the file core in a child process: it prints `computing`
/// in its body and waits for the parent before finishing.
fn race_cache() -> FunctionCache {
    FunctionCache::builder("async_engine::race")
        .cache_dir(scratch("race"))
        .build()
}

#[test]
#[ignore = "a helper: the process test runs it as a child process"]
fn child() {
    assert_eq!(role(), "race");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cache = race_cache();
    let value = runtime.block_on(async {
        let opts = CallOptions::new().verbose(true);
        let body = async {
            say("computing");
            tokio::task::spawn_blocking(wait_for_parent).await.unwrap();
            Plain(std::process::id())
        };
        cache.call_async(&opts, cache.key(&()), body).await.0
    });
    say(&format!("value={value}"));
}

#[test]
fn async_callers_in_several_processes_compute_once() {
    race_cache().clear().unwrap();
    support::race("race", "", 3);
}

#[test]
fn outside_a_tokio_runtime_async_calls_still_work() {
    // Another executor (here cachier's own test of one: a plain thread
    // polling): no tokio timer, no blocking pool, no panic.
    let cache = FunctionCache::builder("async_engine::no_runtime")
        .backend(Backend::Memory)
        .wait_for_calc_timeout(Duration::from_secs(60))
        .build();
    let value = poll_on_this_thread(call(&cache, 1, async { Plain(5) }));
    assert_eq!(value, 5);
    assert_eq!(poll_on_this_thread(call(&cache, 1, async { Plain(6) })), 5);
}

/// Polls `future` on this thread until it is ready, parking between polls.
fn poll_on_this_thread<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        std::thread::park();
    }
}
