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
pub mod metered;
pub mod postgres;
pub mod redis;
pub mod url;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;

pub use bindings::add_to_linker;

/// A network backend that has not answered within this is reported as
/// unavailable, well inside any request timeout.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens the backend a Compose file or `--kv` names: `embedded` (a redb
/// file in `data_dir`), `redis://…` or `postgres://…`, each with an
/// optional `?namespace=`.
pub async fn connect(
    spec: &crate::app::KvSpec,
    data_dir: &Path,
    pool_size: usize,
) -> anyhow::Result<Arc<dyn KvBackend>> {
    use crate::app::KvSpec;
    let url = match spec {
        KvSpec::Embedded => return Ok(Arc::new(embedded::Embedded::open(data_dir)?)),
        KvSpec::Url(url) => url,
    };
    let (driver_url, namespace) = url::split_namespace(url).map_err(anyhow::Error::msg)?;
    if driver_url.starts_with("redis://") {
        let backend = redis::RedisBackend::connect(&driver_url, &namespace, pool_size)
            .with_context(|| format!("redis at {}", redact(&driver_url)))?;
        // Prove the server answers before porto says it is ready.
        backend
            .exists("porto", "probe")
            .await
            .with_context(|| format!("redis at {}", redact(&driver_url)))?;
        Ok(Arc::new(backend))
    } else {
        let backend = postgres::PostgresBackend::connect(&driver_url, &namespace, pool_size)
            .await
            .with_context(|| format!("postgres at {}", redact(&driver_url)))?;
        Ok(Arc::new(backend))
    }
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A suffix no other test in this process uses, for namespaces.
#[cfg(test)]
pub fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

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
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:secret@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
    }

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
