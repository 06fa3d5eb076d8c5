//! The version of a function's code that its entries were computed by: part
//! of the function's identity, so that entries of other code are never read.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

/// A function's code as its cache sees it: its own version (a digest of its
/// body's tokens, `"body 3f2a…"`, or a version given by hand, `"version 2"`,
/// or nothing) and the code of the functions it depends on (`deps = [..]`).
///
/// `#[cachier]` and `#[cachier::track]` make one per function.
///
/// ```
/// use cachier_core::Code;
/// const TOKENIZE: Code = Code { own: "body 1111", deps: &[] };
/// const FEATURES: Code = Code { own: "body 2222", deps: &[&TOKENIZE] };
/// assert_eq!(TOKENIZE.version(), "body 1111");
/// assert!(FEATURES.version().starts_with("body 2222 deps "));
/// ```
#[derive(Debug)]
pub struct Code {
    /// The function's own version.
    pub own: &'static str,
    /// The code of the functions it depends on.
    pub deps: &'static [&'static Code],
}

impl Code {
    /// The version that goes into the function's identity: its own, and a
    /// digest of its dependencies' versions (transitively) if it has any.
    pub fn version(&self) -> String {
        if self.deps.is_empty() {
            return self.own.to_owned();
        }
        let mut deps = Sha1::new();
        for dep in self.deps {
            deps.update(dep.version().as_bytes());
            deps.update([0]);
        }
        let mut version = format!("{} deps ", self.own).trim_start().to_owned();
        for byte in deps.finalize() {
            let _ = write!(version, "{byte:02x}");
        }
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_pinned() {
        // A change here invalidates every cache with `deps`: say so in CHANGELOG.md.
        // Checked with Python: sha1(b"body aa\0"), then sha1(mid + b"\0" + b"body aa\0").
        const LEAF: Code = Code {
            own: "body aa",
            deps: &[],
        };
        const MID: Code = Code {
            own: "version 2",
            deps: &[&LEAF],
        };
        const TOP: Code = Code {
            own: "",
            deps: &[&MID, &LEAF],
        };
        assert_eq!(LEAF.version(), "body aa");
        assert_eq!(
            MID.version(),
            "version 2 deps 4474390b495152d4c5a0d4df26c894388e3818c2"
        );
        assert_eq!(TOP.version(), "deps 2cf64e5173f60bc0718bc336c6774a9d88e8587c");
    }

    #[test]
    fn a_change_anywhere_below_changes_the_version() {
        const A: Code = Code {
            own: "body 1",
            deps: &[],
        };
        const B: Code = Code {
            own: "body 2",
            deps: &[],
        };
        const UP_A: Code = Code {
            own: "body 0",
            deps: &[&A],
        };
        const UP_B: Code = Code {
            own: "body 0",
            deps: &[&B],
        };
        const TOP_A: Code = Code {
            own: "body 9",
            deps: &[&UP_A],
        };
        const TOP_B: Code = Code {
            own: "body 9",
            deps: &[&UP_B],
        };
        assert_ne!(TOP_A.version(), TOP_B.version());
    }
}
