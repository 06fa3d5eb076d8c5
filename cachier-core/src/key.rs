//! Cache keys: SHA-1 digests of a canonical encoding of a function's identity and
//! its arguments.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::LazyLock;

use serde::Serialize;
use sha1::{Digest, Sha1};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::canonical;
use crate::error::Result;

/// The 20-byte key of one cached call.
///
/// `SHA-1(SHA-1(canonical(function)) ‖ canonical(args))`, with the encoding of
/// [`canonical`](crate::canonical): the same in every process, build and machine,
/// and two functions never share a key. Hashing the function's 20-byte digest
/// rather than its name keeps small argument lists within one SHA-1 block.
/// The memory core, whose entries die with the process, uses faster keys
/// that mean nothing elsewhere (see [`KeySpace::local`]).
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
        KeySpace::new(function).key(args)
    }

    /// Wraps a digest computed elsewhere (for example one read back from a store).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 20]) -> Key {
        Key(bytes)
    }

    /// The key `hex` spells in lower-case hex (as [`Key::hex`] writes it).
    pub(crate) fn from_hex(hex: &str) -> Option<Key> {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0; 20];
        if hex.len() != 40 {
            return None;
        }
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Key(bytes))
    }

    /// The `index`th eight bytes of the digest (0 or 1) as a little-endian
    /// number: uniform, for whatever needs a number drawn from the key.
    pub(crate) fn word(&self, index: usize) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(&self.0[8 * index..8 * index + 8]);
        u64::from_le_bytes(word)
    }

    /// The raw digest.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lower-case hex, without going through `fmt` (the file core names a file
    /// with it on every call).
    ///
    /// ```
    /// let key = cachier_core::Key::from_bytes([0xab; 20]);
    /// assert_eq!(key.hex().as_str(), key.to_string());
    /// ```
    #[must_use]
    pub fn hex(&self) -> HexKey {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0; 40];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        HexKey(out)
    }
}

/// A key in lower-case hex; see [`Key::hex`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexKey([u8; 40]);

impl HexKey {
    /// The 40 hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl fmt::Debug for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keys of one function: stable ones (its digest, computed once), or
/// ones valid only in this process.
///
/// ```
/// use cachier_core::{Key, KeySpace};
/// let space = KeySpace::new("app::add");
/// assert_eq!(space.key(&(1u64, 2u64)).unwrap(), Key::new("app::add", &(1u64, 2u64)).unwrap());
/// let local = KeySpace::local();
/// assert_eq!(local.key(&(1u64, 2u64)).unwrap(), local.key(&(1u64, 2u64)).unwrap());
/// assert_ne!(local.key(&(1u64, 2u64)).unwrap(), local.key(&(2u64, 1u64)).unwrap());
/// assert_eq!(format!("{local:?}"), "KeySpace(Local)"); // its secret stays secret
/// ```
#[derive(Clone, Debug)]
pub struct KeySpace(Hashing);

#[derive(Clone)]
enum Hashing {
    /// SHA-1, after the function's digest.
    Stable { function_digest: [u8; 20] },
    /// SipHash-1-3-128 under a random secret of this key space (two
    /// little-endian words).
    Local { secret: [u8; 16] },
}

/// Never prints a local key space's secret: whoever knows it can make
/// arguments collide.
impl fmt::Debug for Hashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hashing::Stable { function_digest } => f
                .debug_struct("Stable")
                .field("function_digest", function_digest)
                .finish(),
            Hashing::Local { .. } => f.write_str("Local"),
        }
    }
}

impl Hashing {
    /// What a key's bytes start with: the function's digest, or the local
    /// space's secret. It sets apart the keys of different spaces for the
    /// same arguments in a thread's [`Memo`] (a secret drawn at random
    /// equals the start of a digest with a chance of 2^-128).
    fn prefix(&self) -> &[u8] {
        match self {
            Hashing::Stable { function_digest } => function_digest,
            Hashing::Local { secret } => secret,
        }
    }

    /// The key of `bytes`, which start with [`prefix`](Self::prefix).
    fn derive(&self, bytes: &[u8]) -> Key {
        match self {
            Hashing::Stable { .. } => Key(Sha1::digest(bytes).into()),
            Hashing::Local { secret } => {
                let word = |at: usize| u64::from_le_bytes(secret[at..at + 8].try_into().expect("8 bytes"));
                let args = &bytes[secret.len()..];
                let mut hasher = SipHasher13::new_with_keys(word(0), word(8));
                hasher.write(args);
                let (hash, mut key) = (hasher.finish128(), [0; 20]);
                key[..8].copy_from_slice(&hash.h1.to_le_bytes());
                key[8..16].copy_from_slice(&hash.h2.to_le_bytes());
                // Lengths over 4 GiB wrap: the length only narrows collisions further.
                key[16..].copy_from_slice(&(args.len() as u32).to_le_bytes());
                Key(key)
            }
        }
    }
}

impl KeySpace {
    /// The key space of the function identified by `function`: the same
    /// keys in every process, build and machine (see [`Key`]).
    #[must_use]
    pub fn new(function: &str) -> KeySpace {
        let encoded = canonical::encode(function).expect("strings always encode");
        KeySpace(Hashing::Stable {
            function_digest: Sha1::digest(&encoded).into(),
        })
    }

    /// A key space whose keys mean nothing outside this value and its
    /// clones, for a store whose entries die with the process (the memory
    /// core): a SipHash-1-3-128 of the canonical encoding of the arguments,
    /// under a secret drawn at random for this key space, then the
    /// encoding's length (4 bytes). Several times faster than SHA-1, and no
    /// more likely to collide, whatever arguments an adversary chooses.
    #[must_use]
    pub fn local() -> KeySpace {
        let mut secret = [0; 16];
        secret[..8].copy_from_slice(&random().to_le_bytes());
        secret[8..].copy_from_slice(&random().to_le_bytes());
        KeySpace(Hashing::Local { secret })
    }

    /// The key of `args` in this space.
    ///
    /// # Errors
    /// [`Error::Key`](crate::Error::Key) when an argument's `Serialize` impl fails.
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<Key> {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = const {
                RefCell::new(Scratch { buffer: Vec::new(), memo: Memo([Remembered::EMPTY; MEMO_SLOTS]) })
            };
        }
        let encode = |buffer: &mut Vec<u8>| {
            buffer.clear();
            buffer.extend_from_slice(self.0.prefix());
            canonical::encode_into(buffer, args)
        };
        let derive = |bytes: &[u8]| self.0.derive(bytes);
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let Scratch { buffer, memo } = &mut *scratch;
                // Reserved in full at first use: buffers grown from
                // nothing are small heap blocks that two threads' buffers
                // can share a cache line in, and every key then waits for
                // the other thread's writes (a key cost 4x as much on two
                // threads).
                if buffer.capacity() == 0 {
                    buffer.reserve(1024);
                }
                encode(buffer)?;
                Ok(memo.remembered(buffer, derive))
            }
            // A Serialize impl that itself calls a cached function finds
            // the scratch taken, and uses a buffer of its own, no memo.
            Err(_) => {
                let mut buffer = Vec::new();
                encode(&mut buffer)?;
                Ok(derive(&buffer))
            }
        })
    }
}

/// What a thread keeps to make keys: the buffer arguments are encoded
/// into, and the memo of the keys it made last (one thread-local for
/// both: a memory hit pays for each one it reaches).
struct Scratch {
    buffer: Vec<u8>,
    memo: Memo,
}

/// The keys a thread computed last, each under the bytes it derived it
/// from (its space's [`prefix`](Hashing::prefix), then its arguments'
/// encoding): a key asked for again skips its hash (a SHA-1 is half the
/// cost of a file-core hit). A key comes back only for the very same
/// bytes, so the memo changes no key; bytes longer than a memo slot holds
/// are hashed each time.
struct Memo([Remembered; MEMO_SLOTS]);

/// Slots in a memo; a key's slot is the top three bits of a hash of its bytes.
const MEMO_SLOTS: usize = 8;
/// Most bytes a memo slot holds: one SHA-1 block's worth.
const MEMO_BYTES: usize = 64;

#[derive(Clone, Copy)]
struct Remembered {
    /// The hash of its bytes that chose its slot, compared first.
    hash: u64,
    /// How many of `bytes` are taken (0: an empty slot, which no bytes
    /// asked for match).
    len: u8,
    bytes: [u8; MEMO_BYTES],
    key: Key,
}

impl Remembered {
    const EMPTY: Remembered = Remembered {
        hash: 0,
        len: 0,
        bytes: [0; MEMO_BYTES],
        key: Key([0; 20]),
    };
}

impl Memo {
    /// The key `derive` makes of `bytes`: remembered, or derived (and
    /// remembered, in the slot `bytes` choose, if they fit one).
    fn remembered(&mut self, bytes: &[u8], derive: impl Fn(&[u8]) -> Key) -> Key {
        if bytes.is_empty() || bytes.len() > MEMO_BYTES {
            return derive(bytes);
        }
        // Every byte, cheaply (the last eight again, overlapping, if the
        // length is not a multiple of eight): any spread will do, a poor
        // one only means more keys hashed again.
        let (words, _) = bytes.as_chunks::<8>();
        let last = bytes.last_chunk::<8>().copied().unwrap_or_else(|| {
            let mut word = [0; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            word
        });
        let folded = words
            .iter()
            .chain([&last])
            .fold(bytes.len() as u64, |folded, word| {
                folded.rotate_left(23) ^ u64::from_le_bytes(*word)
            })
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.0[(folded >> 61) as usize];
        if slot.hash == folded && slot.bytes.get(..usize::from(slot.len)) == Some(bytes) {
            return slot.key;
        }
        let key = derive(bytes);
        slot.hash = folded;
        slot.len = bytes.len() as u8;
        slot.bytes[..bytes.len()].copy_from_slice(bytes);
        slot.key = key;
        key
    }
}

impl fmt::Display for Key {
    /// Lower-case hex, 40 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl Hash for Key {
    /// All twenty bytes, folded into eight under a secret of this process
    /// with two multiplies (as `foldhash` does): a digest is uniform already,
    /// but keys made by hand ([`Key::from_bytes`]) that differ in a few bytes
    /// must spread too (a map indexed by the low bits of identical hashes
    /// piles them up, and papaya's grows until memory runs out), and nobody
    /// outside the process can choose arguments whose keys pile up.
    fn hash<H: Hasher>(&self, state: &mut H) {
        static SECRET: LazyLock<(u64, u64)> = LazyLock::new(|| (random(), random()));
        let (s0, s1) = *SECRET;
        let tail = u64::from(u32::from_le_bytes([
            self.0[16], self.0[17], self.0[18], self.0[19],
        ]));
        let fold = |a: u64, b: u64| {
            let product = u128::from(a) * u128::from(b);
            product as u64 ^ (product >> 64) as u64
        };
        let mixed = fold(self.word(0) ^ s0, self.word(1) ^ tail.rotate_left(32) ^ s1);
        state.write_u64(fold(mixed, 0x9E37_79B9_7F4A_7C15));
    }
}

/// A number no other process can guess.
fn random() -> u64 {
    std::hash::BuildHasher::build_hasher(&std::hash::RandomState::new()).finish()
}

/// A `HashMap` keyed by [`Key`] that folds the key into its hash with two
/// multiplies (see [`Key`]'s `Hash`) instead of hashing it again.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &Key) -> u64 {
        let mut hasher = KeyHasher::default();
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// Keys made by hand that differ only in two adjacent bytes, wherever
    /// they are, spread over the low bits of their hashes (where maps take
    /// their index) as random ones would: 4,096 keys into 4,096 slots fill
    /// about 2,590.
    #[test]
    fn keys_differing_in_any_two_adjacent_bytes_spread_over_the_low_bits() {
        for byte in 0..20 {
            let slots: std::collections::HashSet<u64> = (0..4096u16)
                .map(|i| {
                    let mut bytes = [7; 20];
                    bytes[byte] = i as u8;
                    bytes[(byte + 1) % 20] = (i >> 8) as u8;
                    hash(&Key::from_bytes(bytes)) & 4095
                })
                .collect();
            assert!(slots.len() > 2_400, "byte {byte}: {} slots", slots.len());
        }
    }

    /// The key of `args` in `space`, derived without the thread's memo.
    fn unremembered<A: Serialize + ?Sized>(space: &KeySpace, args: &A) -> Key {
        let mut bytes = space.0.prefix().to_vec();
        bytes.extend(canonical::encode(args).unwrap());
        space.0.derive(&bytes)
    }

    /// An argument whose `Serialize` impl makes a key itself (as one that
    /// calls a cached function does) finds the thread's scratch taken: both
    /// keys are still those of their own space and bytes, however often
    /// they are asked for.
    #[test]
    fn keys_made_while_an_argument_serializes_are_right() {
        struct Raw<'a>(&'a [u8]);
        impl Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        struct Nested<'a>(&'a KeySpace);
        impl Serialize for Nested<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                let inner = self.0.key(&7u64).map_err(serde::ser::Error::custom)?;
                Raw(inner.as_bytes()).serialize(serializer)
            }
        }
        let (outer, inner) = (KeySpace::local(), KeySpace::new("nested::inner"));
        let inner_key = unremembered(&inner, &7u64);
        let outer_key = unremembered(&outer, &Raw(inner_key.as_bytes()));
        for _ in 0..3 {
            assert_eq!(inner.key(&7u64).unwrap(), inner_key);
            assert_eq!(outer.key(&Nested(&inner)).unwrap(), outer_key);
        }
    }

    /// A key asked for again, on the same thread, is the key of its own
    /// space and arguments, whether the memo held it, held another's in its
    /// slot, or could not hold it (arguments too long): stable spaces of
    /// two functions and two local spaces, asked in turns for the same
    /// arguments, never get each other's keys.
    #[test]
    fn remembered_keys_are_those_of_the_same_space_and_arguments() {
        let stable = |function: &str, args: &(u64, String)| {
            let mut bytes = Sha1::digest(canonical::encode(function).unwrap()).to_vec();
            bytes.extend(canonical::encode(args).unwrap());
            Key(Sha1::digest(&bytes).into())
        };
        let functions = ["memo::a", "memo::b"];
        let spaces = [
            KeySpace::new(functions[0]),
            KeySpace::new(functions[1]),
            KeySpace::local(),
            KeySpace::local(),
        ];
        let mut seen = std::collections::HashMap::new();
        for _round in 0..3 {
            for (i, space) in spaces.iter().enumerate() {
                for n in 0..40 {
                    for len in [0, 20, 30, 60] {
                        let args = (n, "x".repeat(len));
                        let key = space.key(&args).unwrap();
                        assert_eq!(key, unremembered(space, &args), "space {i}, {n} {len}");
                        if let Some(function) = functions.get(i) {
                            assert_eq!(key, stable(function, &args), "{function} {n} {len}");
                        }
                        let owner = *seen.entry(key).or_insert(i);
                        assert_eq!(owner, i, "spaces {owner} and {i} share a key for {n} {len}");
                    }
                }
            }
        }
    }
}
