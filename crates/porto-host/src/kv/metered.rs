//! A [`KvBackend`] that counts every operation and failure of the backend
//! it wraps, by operation, into porto's metrics.

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;

use porto_kv::{KeyPage, KvBackend, KvError};

use crate::metrics::{KvLabels, Metrics};

pub(crate) struct Metered {
    inner: Arc<dyn KvBackend>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub(crate) fn wrap(inner: Arc<dyn KvBackend>, metrics: Arc<Metrics>) -> Arc<dyn KvBackend> {
        let batch_sizes = metrics.kv_commit_batch_size.clone();
        inner.observe_commits(Arc::new(move |size| batch_sizes.observe(size as f64)));
        Arc::new(Self { inner, metrics })
    }

    fn counters(&self, operation: &'static str) -> (Counter, Counter) {
        let labels = KvLabels {
            backend: self.inner.kind(),
            operation,
        };
        (
            self.metrics.kv_operations.get_or_create_owned(&labels),
            self.metrics.kv_errors.get_or_create_owned(&labels),
        )
    }

    fn count<T>(&self, operation: &'static str, result: Result<T, KvError>) -> Result<T, KvError> {
        let (operations, errors) = self.counters(operation);
        operations.inc();
        if result.is_err() {
            errors.inc();
        }
        result
    }
}

#[async_trait]
impl KvBackend for Metered {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.count("get", self.inner.get(bucket, key).await)
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.count("set", self.inner.set(bucket, key, value).await)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.count("delete", self.inner.delete(bucket, key).await)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.count("exists", self.inner.exists(bucket, key).await)
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        self.count("list_keys", self.inner.list_keys(bucket, cursor).await)
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.count("increment", self.inner.increment(bucket, key, delta).await)
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        let result = self
            .inner
            .compare_and_swap(bucket, key, expected, new)
            .await;
        self.count("compare_and_swap", result)
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.count("get_many", self.inner.get_many(bucket, keys).await)
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.count("set_many", self.inner.set_many(bucket, entries).await)
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.count("delete_many", self.inner.delete_many(bucket, keys).await)
    }
}
