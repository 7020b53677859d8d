//! porto-kv: the durable key-value stores behind porto's `wasi:keyvalue`.
//!
//! A backend stores `(bucket, key) → bytes` and knows nothing of guests,
//! WebAssembly or wasmtime: this crate builds and tests without them. The
//! host (`porto-host`) puts a per-instance view on top that lets a guest
//! open only its own buckets.
//!
//! Three backends implement one trait, [`KvBackend`]:
//!
//! - [`Embedded`]: a redb file, fsync before every acknowledgement (the
//!   default: no server to run);
//! - [`RedisBackend`]: one hash per bucket on a Redis server;
//! - [`PostgresBackend`]: one `(bucket, key)` table on PostgreSQL.
//!
//! [`KvSpec`] is how a user names one (`embedded`, `redis://…`,
//! `postgres://…`, each with an optional `?namespace=`), and [`connect`]
//! opens it:
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::num::NonZeroUsize;
//! use porto_kv::{KvSpec, connect};
//!
//! let data = tempfile::tempdir()?;
//! let spec: KvSpec = "embedded".parse()?;
//! let store = connect(&spec, data.path(), NonZeroUsize::MIN).await?;
//! store.set("users", "user:1", b"{}".to_vec()).await?;
//! assert_eq!(store.increment("users", "seq:user", 1).await?, 1);
//! assert!(store.compare_and_swap("users", "email:a@b.c", None, b"1".to_vec()).await?);
//! assert!(!store.compare_and_swap("users", "email:a@b.c", None, b"2".to_vec()).await?);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Every backend passes one behavioural suite (`conformance.rs`): they
//! differ in how they store things, never in what a guest can observe.

#[cfg(test)]
mod conformance;
mod embedded;
mod network;
mod postgres;
mod redis;
mod spec;
mod url;

use std::sync::Arc;

use async_trait::async_trait;

pub use embedded::{CACHE_BYTES as EMBEDDED_CACHE_BYTES, Embedded};
pub use network::OP_TIMEOUT;
pub use postgres::PostgresBackend;
pub use redis::RedisBackend;
pub use spec::{ConnectError, DEFAULT_POOL_SIZE, KvSpec, connect, redact};

/// A suffix no other test in this process uses, for namespaces.
#[cfg(test)]
pub(crate) fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Why a backend operation failed. Guests see `other(<message>)`.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// Registers `observer`, called with the number of write operations
    /// each commit made durable together, by backends that group their
    /// commits (the embedded one). Others never call it.
    fn observe_commits(&self, _observer: CommitObserver) {}
}

/// See [`KvBackend::observe_commits`].
pub type CommitObserver = Arc<dyn Fn(usize) + Send + Sync>;

/// Adds `delta` to a counter stored as decimal text.
pub(crate) fn add_to_counter(
    key: &str,
    current: Option<&[u8]>,
    delta: i64,
) -> Result<i64, KvError> {
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
