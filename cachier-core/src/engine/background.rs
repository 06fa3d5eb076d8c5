//! Work a call leaves behind: `next_time` refreshes, stale-entry cleanups and
//! reclaims run on threads of their own, counted so that they can be waited for.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The background work of one function.
#[derive(Default)]
pub(super) struct Background {
    running: Mutex<usize>,
    idle: Condvar,
}

/// Counts one background task as finished when dropped, even if it panicked
/// or its thread never started.
struct Running(Arc<Background>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        if *running == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Background {
    /// Runs `work` on a new thread of its own.
    pub fn spawn(self: &Arc<Self>, function: &str, work: impl FnOnce() + Send + 'static) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let running = Running(Arc::clone(self));
        let spawned = thread::Builder::new()
            .name("cachier-background".into())
            .spawn(move || {
                let _running = running;
                work();
            });
        if let Err(e) = spawned {
            tracing::warn!(function, error = %e, "cachier: cannot start a background thread");
        }
    }

    /// Blocks until no work of this function runs.
    pub fn wait_idle(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        drop(
            self.idle
                .wait_while(running, |n| *n > 0)
                .unwrap_or_else(PoisonError::into_inner),
        );
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
