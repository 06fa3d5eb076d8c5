//! Work a call leaves behind: `next_time` refreshes, stale-entry cleanups and
//! reclaims run on threads of their own (or, for async functions, as tasks of
//! the caller's tokio runtime), counted so that they can be waited for.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
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

/// Something done at most once per interval, by whichever caller asks first
/// once it is due. Asking costs one load while it is not due: callers on
/// every thread ask on their hot paths without writing memory they share.
#[derive(Default)]
pub(super) struct Every {
    /// When it is due next, in nanoseconds after [`EPOCH`] (0: at once;
    /// instants before the epoch count as the epoch).
    next: AtomicU64,
}

/// What [`Every`] counts time from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Every {
    /// Whether it is due at `now`; if so, the caller does it, and it is
    /// next due `interval` later. Of callers asking at once, one is told yes.
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = nanos(now.saturating_duration_since(*EPOCH));
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(nanos(interval)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_interval_to_one_caller() {
        let (every, hour) = (Every::default(), Duration::from_secs(3600));
        LazyLock::force(&EPOCH); // so that `start` is not before it
        let start = Instant::now();
        assert!(every.due(start, hour), "due at the first ask");
        assert!(!every.due(start, hour), "one caller is told yes");
        assert!(!every.due(start + hour / 2, hour));
        assert!(every.due(start + hour, hour), "due again an interval later");
        assert!(!every.due(start + hour, hour));
    }
}
