//! Cache keys: SHA-1 digests of a canonical encoding of a function's identity and
//! its arguments.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::canonical;
use crate::error::Result;

/// The 20-byte key of one cached call.
///
/// Built from the function's identity and a canonical encoding of its arguments
/// (see [`canonical`](crate::canonical)), so it is the same in every process, build
/// and machine, and two functions never share a key.
///
/// ```
/// use cachier_core::Key;
/// let a = Key::new("app::add", &(1u64, 23u64)).unwrap();
/// let b = Key::new("app::add", &(12u64, 3u64)).unwrap();
/// assert_ne!(a, b);
/// assert_eq!(a.to_string().len(), 40);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key([u8; 20]);

impl Key {
    /// Computes the key of `args` for the function identified by `function`.
    ///
    /// # Errors
    /// [`Error::Key`](crate::Error::Key) when an argument's `Serialize` impl fails.
    pub fn new<A: Serialize + ?Sized>(function: &str, args: &A) -> Result<Key> {
        let mut buf = Vec::with_capacity(128);
        canonical::encode_into(&mut buf, function)?;
        canonical::encode_into(&mut buf, args)?;
        Ok(Key(Sha1::digest(&buf).into()))
    }

    /// Wraps a digest computed elsewhere (for example one read back from a store).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 20]) -> Key {
        Key(bytes)
    }

    /// The raw digest.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Key {
    /// Lower-case hex, 40 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl Hash for Key {
    /// A key is already a uniform digest: its first eight bytes are the hash.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

/// A `HashMap` keyed by [`Key`] that uses the digest as the hash instead of
/// hashing it again.
pub type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

/// The pass-through hasher behind [`KeyMap`].
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Key`'s `write_u64` is expected; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
