//! How records are stored: JSON values, so an operator can read them with `ldb` and a
//! simulation's failure can print them; big-endian keys where order matters.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::Cf;
use crate::error::CatalogStorageError;

/// The key of log entry `index`: big-endian, so byte order is log order.
pub(crate) fn index_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

pub(crate) fn encode<T: Serialize>(cf: Cf, value: &T) -> Result<Vec<u8>, CatalogStorageError> {
    serde_json::to_vec(value).map_err(|source| CatalogStorageError::Encode { cf, source })
}

pub(crate) fn decode<T: DeserializeOwned>(
    cf: Cf,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, CatalogStorageError> {
    serde_json::from_slice(bytes).map_err(|source| CatalogStorageError::Corrupt {
        cf,
        key: key.to_vec(),
        source,
    })
}
