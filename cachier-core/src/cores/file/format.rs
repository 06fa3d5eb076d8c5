//! The on-disk layout of one entry file (format version 1).
//!
//! ```text
//! offset  size  field
//!      0     8  magic "CACHIER\0"
//!      8     2  format version, u16 little-endian (1)
//!     10    20  the entry's key (SHA-1), so a file under the wrong name is rejected
//!     30     8  computed at: nanoseconds since the Unix epoch, u64 little-endian
//!     38     8  value length n, u64 little-endian
//!     46     n  value (bincode 2, standard configuration)
//!   46+n     4  CRC-32 of bytes 0..46+n, little-endian
//! ```
//! A file is accepted only if every field checks out and its size is exactly
//! `50 + n`; anything else (truncated, foreign, bit-flipped) is corrupt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::entry::Entry;
use crate::key::Key;

/// The first bytes of every entry file.
pub const MAGIC: [u8; 8] = *b"CACHIER\0";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the value.
pub const HEADER_LEN: usize = 46;
const CHECKSUM_LEN: usize = 4;

/// Encodes `entry`, stored under `key`, as the bytes of an entry file.
pub fn encode(key: &Key, entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + entry.value.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&unix_nanos(entry.computed_at).to_le_bytes());
    out.extend_from_slice(&(entry.value.len() as u64).to_le_bytes());
    out.extend_from_slice(&entry.value);
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// The size of the entry file of a value of `value_len` bytes.
#[must_use]
pub const fn file_len(value_len: usize) -> usize {
    HEADER_LEN + value_len + CHECKSUM_LEN
}

/// Checks the header of an entry file that must belong to `key` (magic,
/// version, key, a value length within [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN))
/// and returns the value length it declares, so that a reader knows the file's
/// size before reading more than the header.
pub fn declared_len(key: &Key, header: &[u8]) -> Result<usize, String> {
    let header = header
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("truncated: {} bytes, header needs {HEADER_LEN}", header.len()))?;
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err("not a cachier entry (bad magic)".into());
    }
    let (version, rest) = rest.split_at(2);
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != VERSION {
        return Err(format!("format version {version}, this build reads {VERSION}"));
    }
    let (stored_key, rest) = rest.split_at(20);
    if stored_key != key.as_bytes() {
        return Err("the entry belongs to another key".into());
    }
    usize::try_from(u64_le(&rest[8..16]))
        .ok()
        .filter(|&len| len <= crate::MAX_VALUE_LEN)
        .ok_or_else(|| "the declared value length is over the maximum".into())
}

/// Decodes an entry file that must belong to `key`; `Err` says which check failed.
pub fn decode(key: &Key, bytes: &[u8]) -> Result<Entry, String> {
    let expected = file_len(declared_len(key, bytes)?);
    if bytes.len() != expected {
        return Err(format!("size {} bytes, header says {expected}", bytes.len()));
    }
    let (body, checksum) = bytes.split_at(expected - CHECKSUM_LEN);
    if crc32fast::hash(body) != u32::from_le_bytes([checksum[0], checksum[1], checksum[2], checksum[3]]) {
        return Err("checksum mismatch".into());
    }
    let computed_at = u64_le(&body[30..38]);
    Ok(Entry::new(
        UNIX_EPOCH + Duration::from_nanos(computed_at),
        &body[HEADER_LEN..],
    ))
}

/// Reads the `computed at` field of an entry file's header, without checking the rest.
pub fn computed_at(header: &[u8]) -> Option<SystemTime> {
    let field = header.get(30..38)?;
    (header.get(..8)? == MAGIC).then(|| UNIX_EPOCH + Duration::from_nanos(u64_le(field)))
}

fn u64_le(bytes: &[u8]) -> u64 {
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}

fn unix_nanos(time: SystemTime) -> u64 {
    let nanos = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Key, Entry) {
        let key = Key::new("format::test", &42u8).unwrap();
        (
            key,
            Entry::new(
                UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
                vec![9, 8, 7],
            ),
        )
    }

    #[test]
    fn round_trips() {
        let (key, entry) = sample();
        assert_eq!(decode(&key, &encode(&key, &entry)).unwrap(), entry);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let (key, entry) = sample();
        let bytes = encode(&key, &entry);
        for len in 0..bytes.len() {
            assert!(
                decode(&key, &bytes[..len]).is_err(),
                "accepted a file cut to {len} bytes"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let (key, entry) = sample();
        let bytes = encode(&key, &entry);
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(decode(&key, &flipped).is_err(), "accepted bit {i} flipped");
        }
    }

    #[test]
    fn a_declared_length_over_the_maximum_is_rejected_from_the_header_alone() {
        let (key, entry) = sample();
        let mut header = encode(&key, &entry)[..HEADER_LEN].to_vec();
        header[38..46].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(declared_len(&key, &header).is_err());
        header[38..46].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(declared_len(&key, &header), Ok(3));
    }

    #[test]
    fn an_entry_of_another_key_is_rejected() {
        let (key, entry) = sample();
        let other = Key::new("format::test", &43u8).unwrap();
        let err = decode(&other, &encode(&key, &entry)).unwrap_err();
        assert!(err.contains("another key"), "{err}");
    }
}
