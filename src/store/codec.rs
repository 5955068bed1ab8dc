//! Values carry a version byte: sled makes no on-disk format promise and
//! neither do our serde shapes, so a reader can tell old records apart.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

const V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, value).expect("records serialize");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Codec(e.to_string()))
        }
        Some((v, _)) => Err(StoreError::Codec(format!("unknown record version {v}"))),
        None => Err(StoreError::Codec("empty record".into())),
    }
}
