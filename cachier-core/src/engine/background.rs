//! Work a call leaves behind: `next_time` refreshes, stale-entry cleanups and
//! reclaims run on threads of their own (or, for async functions, as tasks of
//! the caller's tokio runtime), counted so that they can be waited for.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use event_listener::Event;

use super::mode::{Mode, block_on};

/// The background work of one function.
#[derive(Default)]
pub(super) struct Background {
    running: AtomicUsize,
    idle: Event,
}

/// Counts one piece of work as finished when dropped, even if it panicked or
/// never started.
struct Running(Arc<Background>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

impl Background {
    fn start(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(self))
    }

    /// Runs the future `make` returns on a new thread of its own (the future
    /// is made there, so it need not be `Send`).
    pub fn spawn_thread<F: Future<Output = ()>>(
        self: &Arc<Self>,
        function: &str,
        make: impl FnOnce() -> F + Send + 'static,
    ) {
        let running = self.start();
        let spawned = thread::Builder::new()
            .name("cachier-background".into())
            .spawn(move || {
                let _running = running;
                block_on(make());
            });
        if let Err(e) = spawned {
            tracing::warn!(function, error = %e, "cachier: cannot start a background thread");
        }
    }

    /// Runs `work` as a task of the caller's tokio runtime, or on a thread of
    /// its own outside one.
    #[cfg(feature = "async")]
    pub fn spawn_task(self: &Arc<Self>, function: &str, work: impl Future<Output = ()> + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let running = self.start();
                runtime.spawn(async move {
                    let _running = running;
                    work.await;
                });
            }
            Err(_) => self.spawn_thread(function, move || work),
        }
    }

    /// Waits, as `M` waits, until no work of this function runs.
    pub async fn idle<M: Mode>(&self) {
        while self.running.load(Ordering::Acquire) > 0 {
            let listener = self.idle.listen();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            M::listen(listener, None).await;
        }
    }
}

/// Whether the time kept in `last` is `interval` ago or more (or unset); if so,
/// sets it to now. Several threads may ask at once: one is told yes.
pub(super) fn once_per(last: &Mutex<Option<Instant>>, interval: Duration) -> bool {
    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
    if last.is_some_and(|last| last.elapsed() < interval) {
        return false;
    }
    *last = Some(Instant::now());
    true
}
