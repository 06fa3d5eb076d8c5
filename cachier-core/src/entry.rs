//! One stored result: the encoded value and when it was computed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A stored result as the cores see it: opaque value bytes plus the time the value
/// was computed. The engine encodes and decodes the bytes (bincode 2, standard
/// configuration); cores only keep them.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use cachier_core::Entry;
/// let entry = Entry::new(SystemTime::now() - Duration::from_secs(60), vec![1, 2, 3]);
/// assert!(entry.age(SystemTime::now()) >= Duration::from_secs(60));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When the value was computed.
    pub computed_at: SystemTime,
    /// The encoded value.
    pub value: Arc<[u8]>,
}

impl Entry {
    /// An entry holding `value`, computed at `computed_at`.
    #[must_use]
    pub fn new(computed_at: SystemTime, value: impl Into<Arc<[u8]>>) -> Self {
        Entry {
            computed_at,
            value: value.into(),
        }
    }

    /// How old the entry is at `now`; zero if it claims to come from the future
    /// (clock skew between machines).
    #[must_use]
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.computed_at).unwrap_or_default()
    }
}
