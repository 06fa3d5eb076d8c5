//! How a caller waits: the one thing a sync call and an async call do
//! differently. The decision tree of a call is written once, as `async` code
//! generic over a [`Mode`]; a sync call drives it with [`block_on`] in the
//! [`Blocking`] mode, whose waits block the thread, so its future is ready at
//! the first poll. An async call awaits it in the `Tokio` mode (feature
//! `async`), whose waits yield to the executor.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use event_listener::{EventListener, Listener};

use crate::budget::Budget;
use crate::cores::{Claim, Core};
use crate::entry::Entry;
use crate::error::Result;
use crate::key::Key;

/// What waiting means for one kind of caller.
pub(crate) trait Mode {
    /// Pauses the caller for `pause`.
    fn sleep(pause: Duration) -> impl Future<Output = ()> + Send;

    /// Waits until `listener` is notified (`true`) or `deadline` passes (`false`).
    fn listen(listener: EventListener, deadline: Option<Instant>) -> impl Future<Output = bool> + Send;

    // The operations of a core a call makes: inline, or away from the caller's
    // executor when the core waits on the network.

    /// [`Core::get`].
    fn get(core: &Arc<dyn Core>, key: Key) -> impl Future<Output = Result<Option<Entry>>> + Send;

    /// [`Core::set`].
    fn set(core: &Arc<dyn Core>, key: Key, entry: Entry) -> impl Future<Output = Result<()>> + Send;

    /// [`Core::try_claim`].
    fn try_claim(core: &Arc<dyn Core>, key: Key) -> impl Future<Output = Result<Option<Claim>>> + Send;

    /// [`Core::evict`].
    fn evict(core: &Arc<dyn Core>, budget: Budget) -> impl Future<Output = Result<Option<u64>>> + Send;
}

/// Sync callers: every wait blocks the calling thread.
pub(crate) struct Blocking;

impl Mode for Blocking {
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

    async fn get(core: &Arc<dyn Core>, key: Key) -> Result<Option<Entry>> {
        core.get(&key)
    }

    async fn set(core: &Arc<dyn Core>, key: Key, entry: Entry) -> Result<()> {
        core.set(&key, &entry)
    }

    async fn try_claim(core: &Arc<dyn Core>, key: Key) -> Result<Option<Claim>> {
        core.try_claim(&key)
    }

    async fn evict(core: &Arc<dyn Core>, budget: Budget) -> Result<Option<u64>> {
        core.evict(budget)
    }
}

/// Async callers on a tokio runtime: waits yield to the executor, and the
/// operations of cores that wait on the network run on tokio's blocking pool.
/// Outside a runtime (another executor), what needs tokio's timer (claim polls,
/// a `wait_for_calc_timeout` deadline) blocks the thread instead of panicking.
#[cfg(feature = "async")]
pub(crate) struct Tokio;

#[cfg(feature = "async")]
impl Mode for Tokio {
    async fn sleep(pause: Duration) {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(pause).await;
        } else {
            Blocking::sleep(pause).await;
        }
    }

    async fn listen(listener: EventListener, deadline: Option<Instant>) -> bool {
        match deadline {
            None => {
                listener.await;
                true
            }
            Some(deadline) if tokio::runtime::Handle::try_current().is_ok() => {
                tokio::time::timeout_at(deadline.into(), listener).await.is_ok()
            }
            // Another executor has no tokio timer: the deadline blocks the thread.
            deadline => Blocking::listen(listener, deadline).await,
        }
    }

    async fn get(core: &Arc<dyn Core>, key: Key) -> Result<Option<Entry>> {
        offload(core, move |core| core.get(&key)).await
    }

    async fn set(core: &Arc<dyn Core>, key: Key, entry: Entry) -> Result<()> {
        offload(core, move |core| core.set(&key, &entry)).await
    }

    async fn try_claim(core: &Arc<dyn Core>, key: Key) -> Result<Option<Claim>> {
        offload(core, move |core| core.try_claim(&key)).await
    }

    async fn evict(core: &Arc<dyn Core>, budget: Budget) -> Result<Option<u64>> {
        offload(core, move |core| core.evict(budget)).await
    }
}

/// Runs `op` on `core` inline, or on tokio's blocking pool when the core waits
/// on the network and a runtime is there.
#[cfg(feature = "async")]
async fn offload<T: Send + 'static>(
    core: &Arc<dyn Core>,
    op: impl FnOnce(&dyn Core) -> T + Send + 'static,
) -> T {
    if !core.waits_on_network() || tokio::runtime::Handle::try_current().is_err() {
        return op(&**core);
    }
    let core = Arc::clone(core);
    match tokio::task::spawn_blocking(move || op(&*core)).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Runs `future` to completion on this thread. A future of the [`Blocking`]
/// mode is ready at its first poll, which costs no allocation; any other
/// future parks the thread until it is woken.
///
/// Always inlined, so that a call's future (about 1.5 KB on a miss) is
/// built where it is polled instead of copied into this function's frame.
#[inline(always)]
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
}
