//! Per-call options.

use std::time::Duration;

/// How one call uses the cache.
///
/// ```
/// use std::time::Duration;
/// use cachier_core::CallOptions;
/// let opts = CallOptions::new().max_age(Duration::from_secs(60)).verbose(true);
/// assert_eq!(opts.max_age, Some(Duration::from_secs(60)));
/// assert!(!opts.ignore_cache);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Run the body; neither read nor write the cache.
    pub ignore_cache: bool,
    /// Run the body and store its result, replacing any entry.
    pub overwrite_cache: bool,
    /// Report every decision through `tracing` (info level) and on stderr.
    pub verbose: bool,
    /// Treat entries older than this as stale for this call.
    pub max_age: Option<Duration>,
}

impl CallOptions {
    /// A normal call.
    pub const DEFAULT: CallOptions = CallOptions::new();

    /// A normal call.
    #[must_use]
    pub const fn new() -> Self {
        CallOptions {
            ignore_cache: false,
            overwrite_cache: false,
            verbose: false,
            max_age: None,
        }
    }

    /// Sets [`CallOptions::ignore_cache`].
    #[must_use]
    pub const fn ignore_cache(mut self, yes: bool) -> Self {
        self.ignore_cache = yes;
        self
    }

    /// Sets [`CallOptions::overwrite_cache`].
    #[must_use]
    pub const fn overwrite_cache(mut self, yes: bool) -> Self {
        self.overwrite_cache = yes;
        self
    }

    /// Sets [`CallOptions::verbose`].
    #[must_use]
    pub const fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }

    /// Sets [`CallOptions::max_age`].
    #[must_use]
    pub const fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }
}
