//! Encoding of cached values: bincode 2 with its standard configuration.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes a value for storage.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| Error::Codec(e.to_string()))
}

/// Decodes a stored value; bytes left over mean the value is not of this type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, CONFIG).map_err(|e| Error::Codec(e.to_string()))?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "{} of {} bytes left over: the stored value is not of this type",
            bytes.len() - used,
            bytes.len()
        )));
    }
    Ok(value)
}
