//! The error type of every fallible cache operation.

use std::path::PathBuf;

/// `Result` with [`enum@Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong inside the cache.
///
/// A cached call never returns these: when the cache fails, the function's own
/// result is returned and the error is logged and counted in
/// [`CacheInfo::cache_errors`](crate::CacheInfo::cache_errors). They surface only from
/// explicit operations such as `clear_cache()` or `precache_value(..)`.
///
/// ```
/// use cachier_core::Error;
/// let err = Error::NotCacheable;
/// assert!(err.to_string().contains("not cached"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation of the file core failed.
    #[error("cache I/O on {path}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A stored entry failed its integrity checks (bad magic, version, length,
    /// checksum, or key); it is treated as absent and replaced.
    #[error("corrupt cache entry {what}: {reason}")]
    Corrupt {
        /// Which entry (a path, or a key for non-file cores).
        what: String,
        /// Which check failed.
        reason: String,
    },
    /// A cache directory that other users could have written (not owned by
    /// this user, or writable by others) or that is a symbolic link: its
    /// entries are not served and nothing is stored in it.
    #[error("untrusted cache directory {path}: {reason}")]
    Untrusted {
        /// The directory.
        path: PathBuf,
        /// What makes it untrusted, and how to fix it.
        reason: String,
    },
    /// An argument's `Serialize` implementation failed while building the key.
    #[error("cannot build the cache key: {0}")]
    Key(String),
    /// A value could not be encoded or decoded with bincode.
    #[error("cannot encode or decode the cached value: {0}")]
    Codec(String),
    /// The value is of a kind this function does not cache (an `Err`, or `None`
    /// without `allow_none`).
    #[error("this value is not cached by this function (an Err, or None without allow_none)")]
    NotCacheable,
    /// A backend-specific failure, such as a database error.
    #[error("cache backend: {0}")]
    Backend(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A directory whose entries are not served, and why.
    pub(crate) fn untrusted(path: impl Into<PathBuf>, reason: String) -> Self {
        Error::Untrusted {
            path: path.into(),
            reason,
        }
    }
}
