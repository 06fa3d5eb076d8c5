//! Encoding of cached values: bincode 2 with its standard configuration.
//!
//! Stored bytes are untrusted input (another process, a damaged disk, a server),
//! so decoding is bounded: bincode allocates a string or byte buffer as long as
//! its length prefix says before reading it, and a prefix of 2^35 would abort
//! the process. bincode counts every decoded item against a limit (a primitive
//! by its size in memory, at most 16 bytes for one encoded byte; a string or
//! byte buffer by its length, which must be present in the input), so a value
//! of `n` bytes never legitimately counts more than `16 n`. Each decode runs
//! under the limit of the smallest size class (a power of four from 64 KiB)
//! that is at least `16 n`: no length prefix can make it reserve more than
//! `64 n` bytes (or 64 KiB), whatever the input claims.

use std::sync::Arc;

use bincode::enc::write::SizeWriter;
use bincode::error::EncodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// The largest value cachier stores or reads back (4 GiB, or the address
/// space's limit where smaller); larger results are returned, not stored.
pub const MAX_VALUE_LEN: usize = if usize::BITS > 32 {
    1 << 32
} else {
    isize::MAX as usize
};

/// Encodes a value for storage, into one allocation of its exact size: a
/// first pass counts the bytes, a second writes them.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Arc<[u8]>> {
    let error = |e: EncodeError| Error::Codec(e.to_string());
    let mut size = SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, CONFIG).map_err(error)?;
    let mut bytes: Arc<[u8]> = std::iter::repeat_n(0, size.bytes_written).collect();
    let buffer = Arc::get_mut(&mut bytes).ok_or_else(|| Error::Codec("encoding buffer shared".into()))?;
    let written = bincode::serde::encode_into_slice(value, buffer, CONFIG).map_err(error)?;
    if written != size.bytes_written {
        return Err(Error::Codec(format!(
            "the value encoded to {written} bytes, then to {}: its Serialize impl is not deterministic",
            size.bytes_written
        )));
    }
    Ok(bytes)
}

/// Decodes a stored value; bytes left over mean the value is not of this type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.len() > MAX_VALUE_LEN {
        return Err(Error::Codec(format!(
            "a stored value of {} bytes is over the {MAX_VALUE_LEN}-byte maximum",
            bytes.len()
        )));
    }
    let (value, used) = decode_within_class(bytes).map_err(|e| Error::Codec(e.to_string()))?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "{} of {} bytes left over: the stored value is not of this type",
            bytes.len() - used,
            bytes.len()
        )));
    }
    Ok(value)
}

/// Decodes under the limit of the size class of `16 * bytes.len()`.
fn decode_within_class<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    fn limited<T: DeserializeOwned, const LIMIT: usize>(
        bytes: &[u8],
    ) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(bytes, CONFIG.with_limit::<LIMIT>())
    }
    macro_rules! classes {
        ($($shift:literal)*) => {
            $(if bytes.len() <= 1 << ($shift - 4) {
                return limited::<T, { 1 << $shift }>(bytes);
            })*
        };
    }
    classes!(16 18 20 22 24 26 28 30);
    // The last class: `decode` refused anything longer.
    limited::<T, { MAX_VALUE_LEN.saturating_mul(16) }>(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_every_size_class() {
        for len in [0, 1, 4095, 4096, 4097, 70_000, 300_000] {
            let text = "x".repeat(len);
            assert_eq!(decode::<String>(&encode(&text).unwrap()).unwrap(), text);
            // Each 1-byte varint counts as 16 bytes of u128 against the limit.
            let numbers = vec![7u128; len];
            assert_eq!(decode::<Vec<u128>>(&encode(&numbers).unwrap()).unwrap(), numbers);
        }
    }

    #[test]
    fn a_length_prefix_larger_than_the_value_is_refused_before_allocating() {
        // bincode varint: 0xfd then a u64: a string claiming 2^35 bytes.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 35).to_le_bytes());
        bytes.extend_from_slice(b"short");
        let err = decode::<String>(&bytes).unwrap_err().to_string();
        assert!(err.contains("LimitExceeded"), "{err}");
    }

    /// A value whose `Serialize` writes more, or less, the second time
    /// cannot be stored: an error, not a torn or padded encoding.
    #[test]
    fn a_value_encoding_differently_twice_is_an_error() {
        /// Serializes `len` numbers, then `len + step`.
        struct Changing {
            len: std::cell::Cell<usize>,
            step: usize,
        }
        impl Serialize for Changing {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let len = self.len.replace(self.len.get().wrapping_add(self.step));
                serializer.collect_seq(0..len)
            }
        }
        for step in [1, usize::MAX] {
            let value = Changing {
                len: std::cell::Cell::new(2),
                step,
            };
            let err = encode(&value).unwrap_err();
            assert!(matches!(err, Error::Codec(_)), "{err}");
        }
        assert_eq!(
            decode::<Vec<u64>>(&encode(&vec![1u64, 2]).unwrap()).unwrap(),
            [1, 2]
        );
    }

    #[test]
    fn left_over_bytes_mean_another_type() {
        let err = decode::<u8>(&encode(&(1u8, 2u8)).unwrap()).unwrap_err();
        assert!(err.to_string().contains("left over"), "{err}");
    }
}
