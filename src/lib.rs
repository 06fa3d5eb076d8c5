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
pub use cachier_macros::{cachier, track};

/// The [`FunctionCache`] of a cached function, from its path: its counters,
/// its directory, `clear()`. It works before the function's first call (so a
/// cache can be cleared at start-up), for every shape of cached function:
///
/// | function                        | its cache                                |
/// |---------------------------------|------------------------------------------|
/// | `fn fetch(..)`, `async fn`      | `cache_of!(fetch)` (or `fetch.cache()`)  |
/// | method `Model::features`        | `cache_of!(Model::features)`             |
/// | trait impl method               | `cache_of!(<Model as Scorer>::score)`    |
/// | generic `fn summarize<T>`       | `cache_of!(summarize::<u32>)`            |
///
/// A generic function has one cache for all its type arguments (they are
/// part of each key), reached through any of them; rustc needs one named.
///
/// ```
/// use cachier::{cachier, cache_of};
///
/// #[cachier(backend = "memory")]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// struct Model;
/// impl Model {
///     #[cachier(backend = "memory", ignore = [self])]
///     fn triple(&self, x: u64) -> u64 {
///         x * 3
///     }
/// }
///
/// cache_of!(double).clear()?;
/// cache_of!(Model::triple).clear()?; // before its first call
/// assert_eq!(double(21), 42);
/// assert_eq!(Model.triple(2), 6);
/// assert_eq!(cache_of!(double).info().recalculations, 1);
/// assert_eq!(cache_of!(Model::triple).info().recalculations, 1);
/// # Ok::<(), cachier::Error>(())
/// ```
///
/// # Panics
/// For a path that is not a `#[cachier]` function.
#[macro_export]
macro_rules! cache_of {
    ($($function:tt)+) => {{
        // A free function's constant has `cache()` of its own; a method or
        // generic function is found through the name of its item type.
        #[allow(unused_imports)]
        use $crate::__private::ItemCache as _;
        ($($function)+).cache()
    }};
}

/// Used by the code `#[cachier]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use std::sync::LazyLock;

    /// `cache()` for every value, for `cache_of!`: a method's or generic
    /// function's cache, found by the name rustc gives its item type.
    pub trait ItemCache {
        fn cache(&self) -> &'static crate::FunctionCache;
    }

    impl<F> ItemCache for F {
        fn cache(&self) -> &'static crate::FunctionCache {
            let item = core::any::type_name::<F>();
            crate::site::find(item)
                .unwrap_or_else(|| panic!("cachier: `{item}` is not a #[cachier] function"))
        }
    }

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

    /// Marks a method's receiver as part of the cache key. Its only job is a
    /// clear error for receivers that cannot be.
    #[diagnostic::on_unimplemented(
        message = "cachier: `self` of type `{Self}` cannot be part of the cache key",
        label = "`self` is part of the key, but `{Self}` is not `serde::Serialize`",
        note = "leave `self` out of the key with `#[cachier(ignore = [self])]` (a client, a connection pool), \
                derive `serde::Serialize` for it, or key the call yourself with `hash_func`"
    )]
    pub trait KeySelf {}

    impl<T: ?Sized + serde::Serialize> KeySelf for T {}

    /// Passes the receiver through, requiring it to be a [`KeySelf`].
    pub fn key_self<T: ?Sized + KeySelf>(receiver: &T) -> &T {
        receiver
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
