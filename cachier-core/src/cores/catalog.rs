//! What a shared store (MongoDB, Redis, SQL) holds, read without any
//! function's code: every function's entries, for the `cachier` command and
//! other operators' tools. The file core's counterpart is
//! [`file::scan`](crate::file::scan).

use std::time::SystemTime;

use crate::error::Result;

/// One entry as a store holds it.
///
/// ```
/// let entry = cachier_core::catalog::Stored::new("app::report", "ab".repeat(20), 120, None);
/// assert_eq!(entry.function, "app::report");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// The function's name, as its cache was built with.
    pub function: String,
    /// The key: 40 hex digits.
    pub key: String,
    /// The bytes it takes in the store (Redis, SQL: the value with the
    /// header of the file format; MongoDB: the value).
    pub bytes: u64,
    /// When its value was computed, if the store says.
    pub computed_at: Option<SystemTime>,
}

impl Stored {
    /// An entry of `function` under `key`.
    #[must_use]
    pub fn new(
        function: impl Into<String>,
        key: impl Into<String>,
        bytes: u64,
        computed_at: Option<SystemTime>,
    ) -> Self {
        Stored {
            function: function.into(),
            key: key.into(),
            bytes,
            computed_at,
        }
    }
}

/// The entries of every function of one store. A core of a shared store is
/// its catalog too, whichever function it was made for.
///
/// ```no_run
/// use cachier_core::catalog::Catalog;
/// use cachier_core::{SqlCore, SqlParams};
/// let store = SqlCore::with_params("", &SqlParams::default());
/// let old: Vec<_> = store.entries(None)?.into_iter().filter(|e| e.bytes > 1 << 20).collect();
/// store.remove(&old)?;
/// # Ok::<(), cachier_core::Error>(())
/// ```
pub trait Catalog {
    /// Every entry holding a value (a claim alone is none), of `function`
    /// only if given.
    ///
    /// # Errors
    /// A failure of the store.
    fn entries(&self, function: Option<&str>) -> Result<Vec<Stored>>;

    /// Removes these entries, by function and key; returns how many went. An
    /// entry stored again since it was listed goes too.
    ///
    /// # Errors
    /// A failure of the store.
    fn remove(&self, entries: &[Stored]) -> Result<u64>;
}
