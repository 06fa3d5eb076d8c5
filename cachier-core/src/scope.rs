//! Per-call options for a stretch of code: the way to give [`CallOptions`] to
//! cached methods and generic functions, which have no `call_with` of their own.
//!
//! The options apply to the cached calls the scoped code makes itself, and
//! only to those: the bodies of the functions it runs make their calls
//! unscoped, so `overwrite_cache` refreshes the function called, not every
//! cached function below it. A call with explicit options (`foo.call_with`)
//! keeps its own.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use crate::options::CallOptions;

thread_local! {
    /// The options of the scope running on this thread, if any.
    static SCOPE: Cell<Option<CallOptions>> = const { Cell::new(None) };
}

/// Runs `f` with `opts` in force for every cached call it makes.
///
/// Runs on the calling thread: a future that `f` returns takes no options
/// with it; give a future its options with [`with_options_async`].
///
/// ```
/// use cachier_core::{Backend, CallOptions, FunctionCache, Plain, with_options};
/// let cache = FunctionCache::builder("doc::scoped").backend(Backend::Memory).build();
/// let double = |x: u32| cache.call(&CallOptions::DEFAULT, cache.key(&x), || Plain(2 * x)).0;
/// double(4);
/// with_options(&CallOptions::new().overwrite_cache(true), || double(4));
/// assert_eq!(cache.info().recalculations, 2); // the scoped call recomputed
/// ```
pub fn with_options<R>(opts: &CallOptions, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(SCOPE.replace(Some(*opts)));
    f()
}

/// `future`, with `opts` in force for every cached call it makes, across its
/// `.await`s: the options are set while the future is polled, on whichever
/// thread polls it.
///
/// ```
/// # #[cfg(feature = "async")]
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use cachier_core::{Backend, CallOptions, FunctionCache, Plain, with_options_async};
/// let cache = FunctionCache::builder("doc::scoped_async").backend(Backend::Memory).build();
/// let double = |x: u32| cache.call_async(&CallOptions::DEFAULT, cache.key(&x), async move { Plain(2 * x) });
/// double(4).await;
/// let fresh = with_options_async(CallOptions::new().overwrite_cache(true), async { double(4).await.0 });
/// assert_eq!(fresh.await, 8);
/// assert_eq!(cache.info().recalculations, 2);
/// # });
/// ```
pub fn with_options_async<F: Future>(opts: CallOptions, future: F) -> Scoped<F> {
    Scoped {
        opts,
        future: Box::pin(future),
    }
}

/// A future with call options in force while it is polled: see
/// [`with_options_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Scoped<F> {
    opts: CallOptions,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let opts = self.opts;
        poll_in(Some(opts), self.future.as_mut(), cx)
    }
}

/// The options of the scope this call was made in, if any.
pub(crate) fn current() -> Option<CallOptions> {
    SCOPE.get()
}

/// `body`, run with no scope: what a function computes does not depend on
/// the options its caller was given.
pub(crate) async fn outside<F: Future>(body: F) -> F::Output {
    let mut body = pin!(body);
    poll_fn(|cx| poll_in(None, body.as_mut(), cx)).await
}

/// Polls `future` with `scope` in force, then puts back the scope before.
fn poll_in<F: Future>(
    scope: Option<CallOptions>,
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let _restore = Restore(SCOPE.replace(scope));
    future.poll(cx)
}

/// Puts back the scope that was in force, when dropped (even by a panic).
struct Restore(Option<CallOptions>);

impl Drop for Restore {
    fn drop(&mut self) {
        SCOPE.set(self.0);
    }
}
