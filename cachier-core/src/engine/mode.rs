//! How a caller waits: the one thing a sync call and an async call do
//! differently. The decision tree of a call is written once, as `async` code
//! generic over a [`Mode`]; a sync call drives it with [`block_on`] in the
//! [`Blocking`] mode, whose waits block the thread, so its future is ready at
//! the first poll.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use event_listener::{EventListener, Listener};

use crate::cores::Core;

/// What waiting means for one kind of caller.
pub(crate) trait Mode {
    /// The caller computing a key (a thread, or a task), for re-entrancy.
    fn caller() -> u64;

    /// Pauses the caller for `pause`.
    fn sleep(pause: Duration) -> impl Future<Output = ()> + Send;

    /// Waits until `listener` is notified (`true`) or `deadline` passes (`false`).
    fn listen(listener: EventListener, deadline: Option<Instant>) -> impl Future<Output = bool> + Send;

    /// Runs one operation of `core`: inline, or away from the caller's executor
    /// when the core waits on the network.
    fn io<T: Send + 'static>(
        core: &Arc<dyn Core>,
        op: impl FnOnce(&dyn Core) -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send;
}

/// Sync callers: every wait blocks the calling thread.
pub(crate) struct Blocking;

impl Mode for Blocking {
    fn caller() -> u64 {
        thread_number()
    }

    async fn sleep(pause: Duration) {
        thread::sleep(pause);
    }

    async fn listen(listener: EventListener, deadline: Option<Instant>) -> bool {
        match deadline {
            None => {
                listener.wait();
                true
            }
            Some(deadline) => listener.wait_deadline(deadline).is_some(),
        }
    }

    async fn io<T: Send + 'static>(
        core: &Arc<dyn Core>,
        op: impl FnOnce(&dyn Core) -> T + Send + 'static,
    ) -> T {
        op(&**core)
    }
}

/// A number for the calling thread, unique in the process and never zero.
pub(crate) fn thread_number() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: Cell<u64> = const { Cell::new(0) };
    }
    NUMBER.with(|number| {
        if number.get() == 0 {
            number.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        number.get()
    })
}

/// Runs `future` to completion on this thread. A future of the [`Blocking`]
/// mode is ready at its first poll, which costs no allocation; any other
/// future parks the thread until it is woken.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return output;
    }
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_drives_a_future_that_is_not_ready_at_once() {
        let (send, receive) = std::sync::mpsc::channel::<()>();
        let event = Arc::new(event_listener::Event::new());
        let listener = event.listen();
        let notifier = {
            let event = Arc::clone(&event);
            thread::spawn(move || {
                receive.recv().unwrap();
                event.notify(1);
            })
        };
        send.send(()).unwrap();
        // `EventListener` as a future returns Pending until notified.
        block_on(listener);
        notifier.join().unwrap();
    }

    #[test]
    fn thread_numbers_differ_between_threads() {
        let here = thread_number();
        assert_eq!(here, thread_number());
        assert_ne!(thread::spawn(thread_number).join().unwrap(), here);
    }
}
