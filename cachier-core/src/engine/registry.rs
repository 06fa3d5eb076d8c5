//! Every [`FunctionCache`] of the process, for [`functions`] and the metrics.
//!
//! Held weakly: a cache dropped (one built for a while by hand) leaves the
//! list; the caches of `#[cachier]` functions are statics and stay.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::{FunctionCache, Inner};

static CACHES: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Adds a cache to the list, dropping the entries of caches that are gone.
pub(super) fn register(inner: &Arc<Inner>) {
    let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    caches.retain(|cache| cache.strong_count() > 0);
    caches.push(Arc::downgrade(inner));
}

/// The caches of every cached function of this process built so far (used,
/// or named by `cache_of!`), in the order they were built: for dashboards, and
/// for a process to report on itself.
///
/// ```
/// use cachier_core::{Backend, FunctionCache, functions};
/// let cache = FunctionCache::builder("doc::listed").backend(Backend::Memory).build();
/// assert!(functions().iter().any(|f| f.name() == "doc::listed"));
/// ```
#[must_use]
pub fn functions() -> Vec<FunctionCache> {
    let caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    caches
        .iter()
        .filter_map(Weak::upgrade)
        .map(|inner| FunctionCache { inner })
        .collect()
}
