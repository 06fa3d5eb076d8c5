//! The on-disk layout of one entry (format version 1), as an entry file or
//! as a record of a segment (see `segments`), and of the marks segments
//! also hold (format version 2).
//!
//! An entry, version 1:
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
//!
//! A mark, version 2 (segments only): the key's entry was removed, or used,
//! at a time.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "CACHIER\0"
//!      8     2  format version, u16 little-endian (2)
//!     10     1  kind: 1 removed (the key's entry records before it are
//!               gone), 2 used (the key's entry was read at the time below)
//!     11    20  the key
//!     31     8  time: nanoseconds since the Unix epoch, u64 little-endian
//!     39     4  CRC-32 of bytes 0..39, little-endian
//! ```
//!
//! A segment is records one after the other, each whole as above.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::entry::Entry;
use crate::key::Key;

/// The first bytes of every entry file.
pub const MAGIC: [u8; 8] = *b"CACHIER\0";
/// The format version of entries, which this build writes and reads.
pub const VERSION: u16 = 1;
/// The format version of marks.
pub const MARK_VERSION: u16 = 2;
/// The size of a mark.
pub const MARK_LEN: usize = 43;
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

/// What a mark says of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Its entry is gone, however stored.
    Removed,
    /// Its entry was read.
    Used,
}

/// Encodes a mark: `mark` happened to the entry of `key` at `at`.
pub fn encode_mark(mark: Mark, key: &Key, at: SystemTime) -> [u8; MARK_LEN] {
    let mut out = [0; MARK_LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&MARK_VERSION.to_le_bytes());
    out[10] = match mark {
        Mark::Removed => 1,
        Mark::Used => 2,
    };
    out[11..31].copy_from_slice(key.as_bytes());
    out[31..39].copy_from_slice(&unix_nanos(at).to_le_bytes());
    let checksum = crc32fast::hash(&out[..39]);
    out[39..].copy_from_slice(&checksum.to_le_bytes());
    out
}

/// One record of a segment, whole and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// An entry of `len` bytes in all, computed at `at` (nanoseconds since
    /// the Unix epoch).
    Entry { key: Key, at: u64, len: usize },
    /// A mark made at `at`.
    Mark { mark: Mark, key: Key, at: u64 },
}

impl Record {
    /// The key it is of.
    pub fn key(&self) -> Key {
        match self {
            Record::Entry { key, .. } | Record::Mark { key, .. } => *key,
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        match self {
            Record::Entry { len, .. } => *len,
            Record::Mark { .. } => MARK_LEN,
        }
    }
}

/// What the bytes at a record's place in a segment hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A record that checks out.
    Whole(Record),
    /// The start of a record whose header checks out, `len` bytes in all,
    /// more than the bytes given: still being written, or cut short.
    Short { len: usize },
    /// A record of `len` bytes whose header checks out and whose checksum
    /// does not: its key's entry is corrupt, and the next record follows it.
    Corrupt { key: Key, len: usize },
    /// No record begins here (or one declaring more than `max_value`
    /// bytes of value, refused unread): nothing after it can be found.
    Lost,
}

/// Parses the record at the start of `bytes`, refusing entries of over
/// `max_value` bytes of value without reading them.
pub fn parse(bytes: &[u8], max_value: usize) -> Parsed {
    let (Some(magic), Some(version)) = (bytes.get(..8), bytes.get(8..10)) else {
        return Parsed::Short { len: MARK_LEN };
    };
    if magic != MAGIC {
        return Parsed::Lost;
    }
    // Where the key is, the record's length, and its mark if it is one.
    let (key_at, len, mark) = match u16::from_le_bytes([version[0], version[1]]) {
        VERSION => {
            let Some(header) = bytes.get(..HEADER_LEN) else {
                return Parsed::Short { len: HEADER_LEN };
            };
            match usize::try_from(u64_le(&header[38..46])) {
                Ok(value) if value <= max_value => (10, file_len(value), None),
                _ => return Parsed::Lost,
            }
        }
        MARK_VERSION => match bytes.get(10) {
            Some(1) => (11, MARK_LEN, Some(Mark::Removed)),
            Some(2) => (11, MARK_LEN, Some(Mark::Used)),
            Some(_) => return Parsed::Lost,
            None => return Parsed::Short { len: MARK_LEN },
        },
        _ => return Parsed::Lost,
    };
    let Some(record) = bytes.get(..len) else {
        return Parsed::Short { len };
    };
    let mut key = [0; 20];
    key.copy_from_slice(&record[key_at..key_at + 20]);
    let key = Key::from_bytes(key);
    let (body, checksum) = record.split_at(len - CHECKSUM_LEN);
    if crc32fast::hash(body) != u32::from_le_bytes([checksum[0], checksum[1], checksum[2], checksum[3]]) {
        return Parsed::Corrupt { key, len };
    }
    let at = u64_le(&record[key_at + 20..key_at + 28]);
    Parsed::Whole(match mark {
        Some(mark) => Record::Mark { mark, key, at },
        None => Record::Entry { key, at, len },
    })
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

    fn segment() -> Vec<u8> {
        let (key, entry) = sample();
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut bytes = encode(&key, &entry);
        bytes.extend(encode_mark(Mark::Removed, &key, at));
        bytes.extend(encode_mark(Mark::Used, &key, at));
        bytes
    }

    /// The records of `bytes`, parsed one after the other, and what stopped them.
    fn records(bytes: &[u8]) -> (Vec<Record>, Parsed) {
        let (mut records, mut at) = (Vec::new(), 0);
        loop {
            match parse(&bytes[at..], 1_000) {
                Parsed::Whole(record) => {
                    at += record.size();
                    records.push(record);
                }
                stop => return (records, stop),
            }
        }
    }

    #[test]
    fn a_segments_records_parse_in_turn() {
        let (key, entry) = sample();
        let (records, stop) = records(&segment());
        let at = 1_800_000_000_000_000_000;
        let computed_at = 1_700_000_000_123_456_789;
        assert_eq!(
            records,
            [
                Record::Entry {
                    key,
                    at: computed_at,
                    len: file_len(entry.value.len())
                },
                Record::Mark {
                    mark: Mark::Removed,
                    key,
                    at
                },
                Record::Mark {
                    mark: Mark::Used,
                    key,
                    at
                },
            ]
        );
        assert_eq!(stop, Parsed::Short { len: MARK_LEN });
    }

    #[test]
    fn a_cut_record_is_short_and_a_flipped_bit_never_parses_whole() {
        let bytes = segment();
        let (whole, _) = records(&bytes);
        let mut starts = vec![0];
        starts.extend(whole.iter().scan(0, |end, record| {
            *end += record.size();
            Some(*end)
        }));
        for pair in starts.windows(2) {
            let record = &bytes[pair[0]..pair[1]];
            for len in 0..record.len() {
                assert!(
                    matches!(parse(&record[..len], 1_000), Parsed::Short { len } if len > 0),
                    "a record cut to {len} bytes"
                );
            }
            for bit in 0..record.len() * 8 {
                let mut flipped = record.to_vec();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let parsed = parse(&flipped, 1_000);
                assert!(
                    !matches!(parsed, Parsed::Whole(_)),
                    "bit {bit} flipped: {parsed:?}"
                );
            }
        }
    }

    #[test]
    fn a_value_over_the_readers_maximum_is_refused_from_the_header_alone() {
        let (key, entry) = sample();
        let header = &encode(&key, &entry)[..HEADER_LEN];
        assert_eq!(parse(header, 2), Parsed::Lost);
        assert_eq!(parse(header, 3), Parsed::Short { len: file_len(3) });
    }

    #[test]
    fn an_entry_of_another_key_is_rejected() {
        let (key, entry) = sample();
        let other = Key::new("format::test", &43u8).unwrap();
        let err = decode(&other, &encode(&key, &entry)).unwrap_err();
        assert!(err.contains("another key"), "{err}");
    }
}
