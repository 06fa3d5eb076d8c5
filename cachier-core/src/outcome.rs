//! Which results a function caches, by the shape of its return type.
//!
//! The `#[cachier]` macro wraps each result in one of these: [`OkOnly`] for
//! functions returning `Result`, [`SomeOnly`] for `Option`, [`Plain`] otherwise.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A function result together with the rule for what of it is stored.
///
/// ```
/// use cachier_core::{OkOnly, Outcome};
/// let ok: OkOnly<u8, String> = OkOnly(Ok(1));
/// let err: OkOnly<u8, String> = OkOnly(Err("boom".into()));
/// assert_eq!(ok.stored(false), Some(&1));
/// assert_eq!(err.stored(false), None);
/// ```
pub trait Outcome: Sized {
    /// What is written to the cache.
    type Stored: Serialize + DeserializeOwned;

    /// The part to store, or `None` if this result is not cached.
    fn stored(&self, allow_none: bool) -> Option<&Self::Stored>;

    /// Rebuilds a result from a stored value.
    fn from_stored(stored: Self::Stored) -> Self;
}

/// Any result; always cached.
#[derive(Debug)]
pub struct Plain<T>(pub T);

impl<T: Serialize + DeserializeOwned> Outcome for Plain<T> {
    type Stored = T;
    fn stored(&self, _: bool) -> Option<&T> {
        Some(&self.0)
    }
    fn from_stored(stored: T) -> Self {
        Plain(stored)
    }
}

/// A `Result`: `Ok` values are cached, errors never are.
#[derive(Debug)]
pub struct OkOnly<T, E>(pub Result<T, E>);

impl<T: Serialize + DeserializeOwned, E> Outcome for OkOnly<T, E> {
    type Stored = T;
    fn stored(&self, _: bool) -> Option<&T> {
        self.0.as_ref().ok()
    }
    fn from_stored(stored: T) -> Self {
        OkOnly(Ok(stored))
    }
}

/// An `Option`: `Some` values are cached, `None` only with `allow_none`.
#[derive(Debug)]
pub struct SomeOnly<T>(pub Option<T>);

impl<T: Serialize + DeserializeOwned> Outcome for SomeOnly<T> {
    type Stored = Option<T>;
    fn stored(&self, allow_none: bool) -> Option<&Option<T>> {
        (self.0.is_some() || allow_none).then_some(&self.0)
    }
    fn from_stored(stored: Option<T>) -> Self {
        SomeOnly(stored)
    }
}
