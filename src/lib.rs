//! Persistent, stale-aware, cross-process memoization with one attribute.
//!
//! ```
//! use cachier::cachier;
//!
//! #[cachier(backend = "memory")]
//! fn slow_add(a: u64, b: u64) -> u64 {
//!     a + b // imagine seconds of work here
//! }
//!
//! assert_eq!(slow_add(1, 2), 3); // computes and stores
//! assert_eq!(slow_add(1, 2), 3); // served from the cache
//! assert_eq!(slow_add.cache_info().hits, 1);
//! slow_add.clear_cache()?;
//! # Ok::<(), cachier::Error>(())
//! ```
//!
//! See the README for every option and control.

// docs.rs shows which feature enables each gated item.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use cachier_core::*;
pub use cachier_macros::cachier;

/// The [`FunctionCache`] of a cached function, from its path: its counters,
/// its directory, `clear()`. It works before the function's first call (so a
/// cache can be cleared at start-up), for sync and async functions alike.
///
/// ```
/// use cachier::{cachier, cache_of};
///
/// #[cachier(backend = "memory")]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// cache_of!(double).clear()?;
/// assert_eq!(double(21), 42);
/// assert_eq!(cache_of!(double).info().recalculations, 1);
/// # Ok::<(), cachier::Error>(())
/// ```
#[macro_export]
macro_rules! cache_of {
    ($($function:ident)::+) => {
        $($function)::+.cache()
    };
}

/// Used by the code `#[cachier]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use std::sync::LazyLock;

    /// Marks an argument as part of the cache key. Its only job is a clear error
    /// for arguments that cannot be.
    #[diagnostic::on_unimplemented(
        message = "cachier: argument of type `{Self}` cannot be part of the cache key",
        label = "this argument is not `serde::Serialize`",
        note = "derive or implement `serde::Serialize` for it, or give `#[cachier(hash_func = ...)]` to key the call yourself"
    )]
    pub trait KeyArg {}

    impl<T: ?Sized + serde::Serialize> KeyArg for T {}

    /// Passes `arg` through, requiring it to be a [`KeyArg`].
    pub fn key_arg<T: ?Sized + KeyArg>(arg: &T) -> &T {
        arg
    }

    /// Marks a type as one a cache can store. Its only job is a clear error
    /// for results that cannot be.
    #[diagnostic::on_unimplemented(
        message = "cachier: results of type `{Self}` cannot be stored in the cache",
        label = "this type is not `serde::Serialize + serde::de::DeserializeOwned`",
        note = "derive `serde::Serialize` and `serde::Deserialize` for it (for `Result<T, E>` and `Option<T>`, only `T` is stored)"
    )]
    pub trait Storable {}

    impl<T: serde::Serialize + serde::de::DeserializeOwned> Storable for T {}

    /// Requires `T` to be [`Storable`].
    pub fn stored<T: Storable>() {}

    /// Passes the future of a cached `async fn` called as `f(..)` through,
    /// requiring it to be `Send`; rustc's error then names this function, and
    /// so the fix: a body whose future is not `Send` needs `#[cachier(local)]`.
    pub fn require_send_or_write_cachier_local<F: core::future::Future + Send>(future: F) -> F {
        future
    }
}
