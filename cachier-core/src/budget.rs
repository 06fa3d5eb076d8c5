//! Size budgets: how many entries, and how many bytes, one function's store
//! may hold before its least recently used entries are evicted.

/// The most one function's store may hold. When a store leaves more, the
/// least recently used entries are evicted until the rest fit (see
/// [`Core::evict`](crate::Core::evict) for what "used" means to each core).
///
/// ```
/// use cachier_core::Budget;
/// let budget = Budget::new().max_entries(2).max_bytes(1_000);
/// assert!(!budget.exceeded_by(2, 1_000));
/// assert!(budget.exceeded_by(3, 10));
/// assert!(budget.exceeded_by(1, 1_001));
/// assert!(Budget::new().is_unlimited());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Most entries; `None`: no limit.
    pub max_entries: Option<u64>,
    /// Most bytes, counted as the store counts them (the file core: the
    /// sizes of its entry files; the memory core: the encoded values);
    /// `None`: no limit.
    pub max_bytes: Option<u64>,
}

impl Budget {
    /// No limit.
    #[must_use]
    pub const fn new() -> Self {
        Budget {
            max_entries: None,
            max_bytes: None,
        }
    }

    /// Sets [`Budget::max_entries`].
    #[must_use]
    pub const fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = Some(entries);
        self
    }

    /// Sets [`Budget::max_bytes`].
    #[must_use]
    pub const fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Whether it limits nothing.
    #[must_use]
    pub const fn is_unlimited(&self) -> bool {
        self.max_entries.is_none() && self.max_bytes.is_none()
    }

    /// Whether `entries` entries of `bytes` bytes in all are more than it allows.
    #[must_use]
    pub fn exceeded_by(&self, entries: u64, bytes: u64) -> bool {
        self.max_entries.is_some_and(|max| entries > max) || self.max_bytes.is_some_and(|max| bytes > max)
    }

    /// Which of `entries` (each: when it was last used, its size, and what
    /// names it) to evict so that the rest fit: the least recently used first.
    /// The one eviction order of the built-in cores and the `cachier` command.
    ///
    /// ```
    /// use cachier_core::Budget;
    /// let entries = vec![(30, 100, "c"), (10, 100, "a"), (20, 100, "b")];
    /// assert_eq!(Budget::new().max_bytes(150).victims(entries), ["a", "b"]);
    /// ```
    #[must_use]
    pub fn victims<U: Ord, T>(&self, mut entries: Vec<(U, u64, T)>) -> Vec<T> {
        let mut count = entries.len() as u64;
        let mut bytes = entries.iter().map(|(_, size, _)| size).sum::<u64>();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut victims = Vec::new();
        for (_, size, id) in entries {
            if !self.exceeded_by(count, bytes) {
                break;
            }
            count -= 1;
            bytes -= size;
            victims.push(id);
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_until_the_rest_fit() {
        let entries = vec![(3, 10, 'c'), (1, 10, 'a'), (4, 500, 'd'), (2, 10, 'b')];
        assert_eq!(Budget::new().max_entries(2).victims(entries.clone()), ['a', 'b']);
        assert_eq!(Budget::new().max_bytes(520).victims(entries.clone()), ['a']);
        assert_eq!(
            Budget::new().max_bytes(100).victims(entries.clone()),
            ['a', 'b', 'c', 'd']
        );
        assert!(Budget::new().victims(entries).is_empty());
    }
}
