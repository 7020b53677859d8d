//! The embedded backend: one redb file in `--data`.
//!
//! redb gives ACID transactions with one writer at a time, so every
//! operation is one transaction and CAS / increment are atomic without
//! locks of our own. Commits use `Durability::Immediate` (fsync before
//! `commit` returns): a write the guest saw succeed survives `kill -9`.
//! redb is synchronous: writes (which wait for fsync) run on tokio's
//! blocking pool, reads inline.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{ConnectError, KeyPage, KvBackend, KvError, add_to_counter};

/// `(bucket, key) → value`: the tuple key keeps buckets apart whatever
/// bytes a key contains.
const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
const LIST_PAGE: usize = 1000;

pub struct Embedded {
    db: Arc<Database>,
}

fn io(err: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(err.to_string())
}

/// redb's page cache: the most of the store kept in memory. redb's own
/// default (1 GiB) let resident memory grow with the data until it held
/// all of it; this bounds what the embedded store adds to porto's
/// resident memory (SECURITY.md, "Memory"), while a working set that fits
/// is still read in microseconds.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Embedded {
    /// Opens (or creates) the store `kv.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ConnectError> {
        std::fs::create_dir_all(dir).map_err(|source| ConnectError::DataDirectory {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("kv.redb");
        let failed = |source: redb::Error| ConnectError::Embedded {
            path: path.clone(),
            source,
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| failed(e.into()))?;
        // Create the table up front so readers never see it missing.
        let txn = db.begin_write().map_err(|e| failed(e.into()))?;
        txn.open_table(TABLE).map_err(|e| failed(e.into()))?;
        txn.commit().map_err(|e| failed(e.into()))?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(
            &redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
        ) -> Result<R, KvError>
        + Send
        + 'static,
    ) -> Result<R, KvError> {
        // Reads are served from redb's page cache in microseconds; a hop to
        // the blocking pool would cost more than the read itself.
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        f(&table)
    }

    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(
            &mut redb::Table<(&'static str, &'static str), &'static [u8]>,
        ) -> Result<R, KvError>
        + Send
        + 'static,
    ) -> Result<R, KvError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(io)?;
            let result = {
                let mut table = txn.open_table(TABLE).map_err(io)?;
                f(&mut table)?
            };
            txn.commit().map_err(io)?;
            Ok(result)
        })
        .await
        .map_err(io)?
    }
}

#[async_trait]
impl KvBackend for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(move |t| {
            Ok(t.get((bucket.as_str(), key.as_str()))
                .map_err(io)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.write(move |t| {
            t.insert((bucket.as_str(), key.as_str()), value.as_slice())
                .map_err(io)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.write(move |t| {
            t.remove((bucket.as_str(), key.as_str())).map_err(io)?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(move |t| {
            Ok(t.get((bucket.as_str(), key.as_str()))
                .map_err(io)?
                .is_some())
        })
        .await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        let bucket = bucket.to_string();
        self.read(move |t| {
            let start = cursor.clone().unwrap_or_default();
            let mut keys = Vec::new();
            let range = t.range((bucket.as_str(), start.as_str())..).map_err(io)?;
            for entry in range {
                let (k, _) = entry.map_err(io)?;
                let (b, key) = k.value();
                if b != bucket {
                    break;
                }
                if cursor.as_deref() == Some(key) {
                    continue;
                }
                if keys.len() == LIST_PAGE {
                    let cursor = keys.last().cloned();
                    return Ok(KeyPage { keys, cursor });
                }
                keys.push(key.to_string());
            }
            Ok(KeyPage { keys, cursor: None })
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.write(move |t| {
            let current = value_in(t, &bucket, &key)?;
            let next = add_to_counter(&key, current.as_deref(), delta)?;
            t.insert((bucket.as_str(), key.as_str()), next.to_string().as_bytes())
                .map_err(io)?;
            Ok(next)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.write(move |t| {
            let current = value_in(t, &bucket, &key)?;
            if current != expected {
                return Ok(false);
            }
            t.insert((bucket.as_str(), key.as_str()), new.as_slice())
                .map_err(io)?;
            Ok(true)
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let bucket = bucket.to_string();
        self.read(move |t| {
            keys.iter()
                .map(|k| {
                    Ok(t.get((bucket.as_str(), k.as_str()))
                        .map_err(io)?
                        .map(|v| v.value().to_vec()))
                })
                .collect()
        })
        .await
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        let bucket = bucket.to_string();
        self.write(move |t| {
            for (k, v) in &entries {
                t.insert((bucket.as_str(), k.as_str()), v.as_slice())
                    .map_err(io)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        let bucket = bucket.to_string();
        self.write(move |t| {
            for k in &keys {
                t.remove((bucket.as_str(), k.as_str())).map_err(io)?;
            }
            Ok(())
        })
        .await
    }
}

/// The value of `(bucket, key)` inside a write transaction.
fn value_in(
    table: &redb::Table<(&'static str, &'static str), &'static [u8]>,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, KvError> {
    Ok(table
        .get((bucket, key))
        .map_err(io)?
        .map(|v| v.value().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        crate::conformance::run_all(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Embedded::open(dir.path()).expect("open");
            store.set("b", "k", b"kept".to_vec()).await.expect("set");
            store.increment("b", "n", 7).await.expect("increment");
        }
        let store = Embedded::open(dir.path()).expect("reopen");
        assert_eq!(store.get("b", "k").await.ok(), Some(Some(b"kept".to_vec())));
        assert_eq!(store.increment("b", "n", 0).await.ok(), Some(7));
    }
}
