//! The embedded backend: one redb file in `--data`.
//!
//! redb gives ACID transactions with one writer at a time. Writes are
//! group-committed: one committer thread takes every write operation that
//! is waiting, applies them in arrival order inside one write transaction
//! and commits it with `Durability::Immediate` (one fsync for the lot);
//! only then is each operation answered. So a write the guest saw succeed
//! survives `kill -9`, exactly as with a transaction per operation, while
//! concurrent writers share fsyncs instead of queueing for one each. CAS
//! and increment stay atomic and linearisable: operations run one after
//! another inside the transaction, and one that fails on its own terms (a
//! CAS mismatch, a value that is not a counter) changes nothing and fails
//! alone. A storage error aborts the transaction, and every operation in
//! it is answered with that error. Reads run inline on the caller's
//! thread, from redb's page cache.

use std::path::Path;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{CommitObserver, ConnectError, KeyPage, KvBackend, KvError, add_to_counter};

/// `(bucket, key) → value`: the tuple key keeps buckets apart whatever
/// bytes a key contains.
const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
const LIST_PAGE: usize = 1000;

/// Most write operations one transaction takes; more wait for the next.
const MAX_BATCH: usize = 1024;

type Table<'txn> = redb::Table<'txn, (&'static str, &'static str), &'static [u8]>;

/// What the committer answers an operation with once its transaction has
/// committed (`None`) or failed (`Some`).
type Answer = Box<dyn FnOnce(Option<&KvError>) + Send>;
/// One write operation, applied to the open table; it returns how to answer.
type WriteOp = Box<dyn FnOnce(&mut Table<'_>) -> (Answer, bool) + Send>;

pub struct Embedded {
    db: Arc<Database>,
    /// To the committer; `None` once dropping.
    writes: Option<mpsc::Sender<WriteOp>>,
    committer: Option<JoinHandle<()>>,
    /// Told each commit's size, once someone asks (`observe_commits`).
    observer: Arc<OnceLock<CommitObserver>>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // The committer ends when its queue closes; waiting for it means
        // the file is closed when this value is gone (and can be reopened).
        self.writes.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
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
        let db = Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let observer = Arc::new(OnceLock::new());
        let committer = {
            let (db, observer) = (db.clone(), observer.clone());
            std::thread::Builder::new()
                .name("porto-kv-commit".into())
                .spawn(move || commit_loop(&db, &queue, &observer))
                .map_err(|source| ConnectError::DataDirectory {
                    path: dir.to_path_buf(),
                    source,
                })?
        };
        Ok(Self {
            db,
            writes: Some(writes),
            committer: Some(committer),
            observer,
        })
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

    /// Runs `f` in the next group commit; answers once that is durable.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Table<'_>) -> Result<R, KvError> + Send + 'static,
    ) -> Result<R, KvError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let op: WriteOp = Box::new(move |table| {
            let result = f(table);
            let aborts = matches!(result, Err(KvError::Unavailable(_)));
            let answer: Answer = Box::new(move |commit_failed| {
                let _ = reply.send(match commit_failed {
                    Some(error) => Err(error.clone()),
                    None => result,
                });
            });
            (answer, aborts)
        });
        let closed = || KvError::Unavailable("the embedded store is closed".into());
        self.writes
            .as_ref()
            .ok_or_else(closed)?
            .send(op)
            .map_err(|_| closed())?;
        // Dropped unanswered: the transaction could not even begin.
        answer
            .await
            .map_err(|_| KvError::Unavailable("the write was not committed".into()))?
    }
}

/// The committer: takes what is waiting (at least one operation), applies
/// it in one transaction, commits, answers; until the queue closes.
fn commit_loop(
    db: &Database,
    queue: &mpsc::Receiver<WriteOp>,
    observer: &OnceLock<CommitObserver>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit(db, batch, observer);
    }
}

/// Applies and commits `batch`, then answers every operation in it (the
/// observer hears of a commit before anyone is answered, so a metric read
/// after an answer includes its commit).
fn commit(db: &Database, batch: Vec<WriteOp>, observer: &OnceLock<CommitObserver>) {
    let size = batch.len();
    let mut answers = Vec::with_capacity(batch.len());
    let outcome = (|| {
        let txn = db.begin_write().map_err(io)?;
        let mut aborted = false;
        {
            let mut table = txn.open_table(TABLE).map_err(io)?;
            for op in batch {
                let (answer, aborts) = op(&mut table);
                answers.push(answer);
                aborted |= aborts;
            }
        }
        if aborted {
            txn.abort().map_err(io)?;
            return Err(io(
                "a write in the same transaction failed; nothing was written",
            ));
        }
        txn.commit().map_err(io)
    })();
    let failure = outcome.err();
    if failure.is_none()
        && let Some(observe) = observer.get()
    {
        observe(size);
    }
    for answer in answers {
        answer(failure.as_ref());
    }
}

#[async_trait]
impl KvBackend for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(move |t| value_in(t, &bucket, &key)).await
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
        if delta == 0 {
            // Adding nothing to an existing counter changes nothing, so it is
            // a read: guests read counters this way (listings ask for the
            // highest id), and a commit per listing would put every read
            // of a page behind the writes. What the read sees was committed,
            // so it is durable; an absent counter is created, as before.
            if let Some(current) = self.get(&bucket, &key).await? {
                return add_to_counter(&key, Some(&current), 0);
            }
        }
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
        self.read(move |t| keys.iter().map(|k| value_in(t, &bucket, k)).collect())
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

    fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.observer.set(observer);
    }
}

/// The value of `(bucket, key)`, in a read or a write transaction.
fn value_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_write_is_in_exactly_one_observed_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Embedded::open(dir.path()).expect("open"));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        store.observe_commits(Arc::new(move |n| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(n);
            }
        }));
        let writers: Vec<_> = (0..64u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.set("b", &format!("k{i}"), vec![i]).await })
            })
            .collect();
        for writer in writers {
            writer.await.expect("task").expect("set");
        }
        let sizes = sizes.lock().expect("sizes").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 64, "{sizes:?}");
        for i in 0..64u8 {
            assert_eq!(
                store.get("b", &format!("k{i}")).await.ok(),
                Some(Some(vec![i]))
            );
        }
    }

    #[tokio::test]
    async fn reading_a_counter_commits_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        let commits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = commits.clone();
        store.observe_commits(Arc::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let commits = || commits.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(store.increment("b", "n", 5).await.ok(), Some(5));
        assert_eq!(commits(), 1);
        assert_eq!(store.increment("b", "n", 0).await.ok(), Some(5));
        assert_eq!(commits(), 1, "adding 0 to a counter wrote");
        // An absent counter is still created, and garbage still refused.
        assert_eq!(store.increment("b", "fresh", 0).await.ok(), Some(0));
        assert_eq!(store.exists("b", "fresh").await.ok(), Some(true));
        store.set("b", "text", b"x".to_vec()).await.expect("set");
        assert!(matches!(
            store.increment("b", "text", 0).await,
            Err(KvError::NotACounter { .. })
        ));
    }
}
