//! One call as the engine handles it: its key and the options in force,
//! resolved once from the call's, the function's and the process's options.

use std::cell::RefCell;
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
    /// What is in force for a call with `opts` to the function numbered
    /// `function` (see `Inner::number`), whose own options are `own`.
    ///
    /// Each thread remembers what it resolved last in one of a few slots
    /// (chosen by the function's number), and resolves anew only for
    /// another function, other call options, or after
    /// [`set_global_params`](crate::set_global_params): resolving costs
    /// about an eighth of a memory hit, and a hot function resolves the
    /// same settings at every call.
    pub fn resolve(function: u64, own: &FunctionOptions, opts: &CallOptions) -> Settings {
        thread_local! {
            static RESOLVED: [RefCell<(Source, Settings)>; RESOLVED_SLOTS] =
                const { [const { RefCell::new((Source::NONE, Settings::NONE)) }; RESOLVED_SLOTS] };
        }
        // Read before the defaults: settings resolved from defaults changed
        // in between are remembered under the generation before, and
        // resolved again at the next call.
        let source = Source {
            function,
            generation: config::generation(),
            opts: *opts,
        };
        RESOLVED.with(|slots| {
            let mut slot = slots[function as usize % RESOLVED_SLOTS].borrow_mut();
            if slot.0 != source {
                *slot = (source, Self::merge(own, opts));
            }
            slot.1
        })
    }

    /// What an empty slot holds, under [`Source::NONE`].
    const NONE: Settings = Settings {
        stale_after: None,
        wait_for_calc_timeout: None,
        allow_none: false,
        entry_size_limit: None,
        cleanup_interval: Duration::ZERO,
        budget: Budget {
            max_entries: None,
            max_bytes: None,
        },
        stale_limit: None,
        verbose: false,
    };

    /// The call's options over the function's over the process's.
    fn merge(own: &FunctionOptions, opts: &CallOptions) -> Settings {
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

/// Slots of a thread's resolved settings.
const RESOLVED_SLOTS: usize = 8;

/// What a call's settings are resolved from (a function's own options
/// never change: its number stands for them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Source {
    function: u64,
    generation: u64,
    opts: CallOptions,
}

impl Source {
    /// Of no call: no generation is 0.
    const NONE: Source = Source {
        function: 0,
        generation: 0,
        opts: CallOptions::DEFAULT,
    };
}

/// The context every step of one call shares.
#[derive(Clone, Copy)]
pub(super) struct Call {
    pub key: Key,
    pub settings: Settings,
    /// When the call began, if it is one whose hit is timed.
    pub started: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings remembered for one function, or for one call's options,
    /// are never served to another function sharing the slot, or to a call
    /// with other options.
    #[test]
    fn settings_are_those_of_their_own_function_and_options() {
        let aging = |secs| FunctionOptions {
            stale_after: Some(Duration::from_secs(secs)),
            ..FunctionOptions::default()
        };
        let (one, other) = (aging(1), aging(9));
        // Functions 1 and 1 + RESOLVED_SLOTS share a slot.
        let sharing = 1 + RESOLVED_SLOTS as u64;
        let young = CallOptions::new().max_age(Duration::from_millis(5));
        let limit = |function, own, opts| Settings::resolve(function, own, opts).stale_limit;
        for _ in 0..2 {
            assert_eq!(
                limit(1, &one, &CallOptions::DEFAULT),
                Some(Duration::from_secs(1))
            );
            assert_eq!(
                limit(sharing, &other, &CallOptions::DEFAULT),
                Some(Duration::from_secs(9))
            );
            assert_eq!(limit(1, &one, &young), Some(Duration::from_millis(5)));
        }
    }
}
