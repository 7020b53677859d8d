//! Host side of `wasi:keyvalue@0.2.0-draft2`: one backend trait, one file
//! per backend, and the per-instance view that enforces bucket isolation.
//!
//! A backend stores `(bucket, key) → bytes` and knows nothing of guests.
//! [`KvView`] is what a guest instance gets: the backend plus the set of
//! buckets its service may open. Isolation is by construction: a bucket
//! resource exists only if `open` found its name in that set, and the
//! backend keeps bucket and key apart (never concatenated), so no key
//! string can reach into another bucket.

pub mod bindings;
#[cfg(test)]
mod conformance;
pub mod embedded;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

pub use bindings::add_to_linker;

/// Why a backend operation failed. Guests see `other(<message>)`.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("value of {key:?} is not an integer counter")]
    NotACounter { key: String },
    #[error("counter {key:?} would overflow")]
    Overflow { key: String },
}

/// One page of `list-keys`.
#[derive(Debug, Default, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// The last key of this page when more may follow.
    pub cursor: Option<String>,
}

/// A durable key-value store shared by all instances.
///
/// Every method is atomic on its own; `compare_and_swap` and `increment`
/// are linearisable per key, which is what the guests' uniqueness and id
/// allocation rely on.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// A short name for logs: `embedded`, `redis`, `postgres`.
    fn kind(&self) -> &'static str;
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError>;
    /// Keys in ascending byte order after `cursor`.
    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError>;
    /// Adds `delta` to a decimal counter (absent counts as 0), returning the new value.
    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Writes `new` if the current value equals `expected` (`None`: absent).
    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError>;
    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError>;
    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError>;
    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError>;
}

/// Adds `delta` to a counter stored as decimal text.
pub fn add_to_counter(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| KvError::NotACounter {
                key: key.to_string(),
            })?,
    };
    current.checked_add(delta).ok_or_else(|| KvError::Overflow {
        key: key.to_string(),
    })
}

/// The key-value capability of one guest instance.
pub struct KvView {
    pub backend: Arc<dyn KvBackend>,
    pub buckets: Arc<BTreeSet<String>>,
    pub service: Arc<str>,
}

/// An open bucket (the `bucket` resource).
pub struct BucketHandle {
    pub name: String,
}

/// A pending compare-and-swap (the `cas` resource): the value seen when it
/// was made, which the swap must still find.
pub struct CasHandle {
    pub bucket: String,
    pub key: String,
    pub seen: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(add_to_counter("k", None, 5).ok(), Some(5));
        assert_eq!(add_to_counter("k", Some(b"41"), 1).ok(), Some(42));
        assert_eq!(add_to_counter("k", Some(b"-3"), 0).ok(), Some(-3));
    }

    #[test]
    fn counters_refuse_garbage_and_overflow() {
        assert!(matches!(
            add_to_counter("k", Some(b"x"), 1),
            Err(KvError::NotACounter { .. })
        ));
        assert!(matches!(
            add_to_counter("k", Some(i64::MAX.to_string().as_bytes()), 1),
            Err(KvError::Overflow { .. })
        ));
    }
}
