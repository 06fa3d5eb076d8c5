//! One call as the engine handles it: its key and the options in force,
//! resolved once from the call's, the function's and the process's options.

use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::config;
use crate::key::Key;
use crate::options::CallOptions;

/// A function's own options, as its attribute or builder set them; unset
/// ones fall back to the [`GlobalParams`](crate::GlobalParams) at each call.
///
/// ```
/// use cachier_core::{Backend, FunctionCache};
/// let cache = FunctionCache::builder("doc::opts").backend(Backend::Memory).max_entries(10).build();
/// assert_eq!(cache.options().max_entries, Some(10));
/// assert_eq!(cache.options().stale_after, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionOptions {
    /// Entries older than this are stale.
    pub stale_after: Option<Duration>,
    /// Stale entries are served at once and refreshed in the background.
    pub next_time: bool,
    /// How long a caller waits for another computing the same key.
    pub wait_for_calc_timeout: Option<Duration>,
    /// Whether `None` results are cached.
    pub allow_none: Option<bool>,
    /// Results encoded larger than this are not stored.
    pub entry_size_limit: Option<usize>,
    /// Stale entries are deleted in the background.
    pub cleanup_stale: bool,
    /// How often `cleanup_stale` runs.
    pub cleanup_interval: Option<Duration>,
    /// Most entries kept (see [`Budget`]).
    pub max_entries: Option<u64>,
    /// Most bytes kept (see [`Budget`]).
    pub max_bytes: Option<u64>,
}

/// The options in force for one call.
#[derive(Clone, Copy)]
pub(super) struct Settings {
    pub stale_after: Option<Duration>,
    pub wait_for_calc_timeout: Option<Duration>,
    pub allow_none: bool,
    pub entry_size_limit: Option<usize>,
    pub cleanup_interval: Duration,
    pub budget: Budget,
    /// Entries this old or older are stale: the smaller of `stale_after` and the call's `max_age`.
    pub stale_limit: Option<Duration>,
    pub verbose: bool,
}

impl Settings {
    /// What is in force for a call with `opts` to a function with `own` options.
    pub fn resolve(own: &FunctionOptions, opts: &CallOptions) -> Settings {
        config::read(|global| {
            let stale_after = own.stale_after.or(global.stale_after);
            Settings {
                stale_after,
                wait_for_calc_timeout: own.wait_for_calc_timeout.or(global.wait_for_calc_timeout),
                allow_none: own.allow_none.unwrap_or(global.allow_none),
                entry_size_limit: own.entry_size_limit.or(global.entry_size_limit),
                cleanup_interval: own.cleanup_interval.unwrap_or(global.cleanup_interval),
                budget: Budget {
                    max_entries: own.max_entries.or(global.max_entries),
                    max_bytes: own.max_bytes.or(global.max_bytes),
                },
                stale_limit: [stale_after, opts.max_age].into_iter().flatten().min(),
                verbose: opts.verbose,
            }
        })
    }
}

/// The context every step of one call shares.
#[derive(Clone, Copy)]
pub(super) struct Call {
    pub key: Key,
    pub settings: Settings,
    /// When the call began, if it is one whose hit is timed.
    pub started: Option<Instant>,
}
