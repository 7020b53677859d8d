//! The generated `wasi:keyvalue` host traits, implemented over [`KvView`].
//!
//! Every backend error reaches the guest as `error::other(message)`; only
//! a bucket outside the service's allow-set is `access-denied`. Nothing
//! here traps the guest except a broken resource table (a host bug).

use std::sync::RwLock;

use wasmtime::component::{HasData, Linker, Resource};

use porto_kv::KvError;

use super::{BucketHandle, CasHandle, KvView};
use crate::attribution::Attribution;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::kv::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::kv::CasHandle,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

type GuestResult<T> = wasmtime::Result<Result<T, store::Error>>;

/// What a host function borrows from the store: the table and the view.
pub(crate) struct KvCtx<'a> {
    pub table: &'a mut wasmtime::component::ResourceTable,
    pub kv: &'a KvView,
    /// The request being served, for log lines.
    pub attribution: &'a RwLock<Attribution>,
}

pub(crate) struct HasKv;

impl HasData for HasKv {
    type Data<'a> = KvCtx<'a>;
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KvCtx<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKv>(linker, get)?;
    atomics::add_to_linker::<_, HasKv>(linker, get)?;
    batch::add_to_linker::<_, HasKv>(linker, get)?;
    Ok(())
}

impl KvCtx<'_> {
    /// Runs `log`, which writes log lines, in the span of the request
    /// being served.
    fn log(&self, log: impl FnOnce()) {
        Attribution::log(self.attribution, |_| log());
    }

    fn bucket(&self, handle: &Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    fn fail(&self, err: KvError) -> store::Error {
        self.log_failure(&err);
        store::Error::Other(err.to_string())
    }

    pub(crate) fn log_failure(&self, err: &KvError) {
        self.log(|| tracing::warn!(service = %self.kv.service, error = %err, "key-value operation failed"));
    }

    pub(crate) fn log_denied(&self, bucket: &str) {
        self.log(
            || tracing::warn!(service = %self.kv.service, bucket = %bucket, "bucket access denied"),
        );
    }
}

impl store::Host for KvCtx<'_> {
    async fn open(&mut self, identifier: String) -> GuestResult<Resource<BucketHandle>> {
        if !self.kv.buckets.contains(&identifier) {
            self.log_denied(&identifier);
            return Ok(Err(store::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(BucketHandle { name: identifier })?))
    }
}

impl store::HostBucket for KvCtx<'_> {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<Option<Vec<u8>>> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .get(&name, &key)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> GuestResult<()> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .set(&name, &key, value)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> GuestResult<()> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .delete(&name, &key)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> GuestResult<bool> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .exists(&name, &key)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> GuestResult<store::KeyResponse> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .list_keys(&name, cursor)
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(|e| self.fail(e)))
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvCtx<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> GuestResult<i64> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .increment(&name, &key, delta)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        match super::swap(&*self.kv.backend, cas, value).await {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(retry)) => Ok(Err(atomics::CasError::CasFailed(self.table.push(retry)?))),
            Err(e) => Ok(Err(atomics::CasError::StoreError(self.fail(e)))),
        }
    }
}

impl atomics::HostCas for KvCtx<'_> {
    async fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<Resource<CasHandle>> {
        let name = self.bucket(&bucket)?;
        let seen = match self.kv.backend.get(&name, &key).await {
            Ok(seen) => seen,
            Err(e) => return Ok(Err(self.fail(e))),
        };
        Ok(Ok(self.table.push(CasHandle {
            bucket: name,
            key,
            seen,
        })?))
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> GuestResult<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvCtx<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> GuestResult<Vec<(String, Option<Vec<u8>>)>> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .get_many(&name, keys.clone())
            .await
            .map(|values| keys.into_iter().zip(values).collect())
            .map_err(|e| self.fail(e)))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> GuestResult<()> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .set_many(&name, key_values)
            .await
            .map_err(|e| self.fail(e)))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> GuestResult<()> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .kv
            .backend
            .delete_many(&name, keys)
            .await
            .map_err(|e| self.fail(e)))
    }
}
