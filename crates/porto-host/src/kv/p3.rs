//! `wasi:keyvalue@0.3.0-draft` for WASI 0.3 guests: draft2 with every
//! function `async` (wit/keyvalue-p3), over the same [`KvView`], buckets and
//! backends as the synchronous draft2 (`bindings.rs`).
//!
//! Each call reads what it needs from the store (the bucket's name, the
//! backend), lets go of the store while the backend works, and takes it
//! again only to hand back resources: the other requests of the instance
//! run meanwhile. Errors reach the guest as in draft2.

use std::future::Future;
use std::sync::Arc;

use porto_kv::{KvBackend, KvError};
use wasmtime::component::{Accessor, Linker, Resource};

use super::bindings::{HasKv, KvCtx};
use super::{BucketHandle, CasHandle};

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-p3",
        world: "wasi:keyvalue/imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::kv::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::kv::CasHandle,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

type GuestResult<T> = wasmtime::Result<Result<T, store::Error>>;

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KvCtx<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKv>(linker, get)?;
    atomics::add_to_linker::<_, HasKv>(linker, get)?;
    batch::add_to_linker::<_, HasKv>(linker, get)?;
    Ok(())
}

/// The backend and the name of `bucket`, read from the store.
fn open_bucket<T>(
    accessor: &Accessor<T, HasKv>,
    bucket: &Resource<BucketHandle>,
) -> wasmtime::Result<(Arc<dyn KvBackend>, String)> {
    accessor.with(|mut access| {
        let ctx = access.get();
        Ok((ctx.kv.backend.clone(), ctx.table.get(bucket)?.name.clone()))
    })
}

/// The guest's error for `err`, logged as draft2 logs it.
fn fail<T>(accessor: &Accessor<T, HasKv>, err: KvError) -> store::Error {
    accessor.with(|mut access| {
        let ctx = access.get();
        ctx.log_failure(&err);
        store::Error::Other(err.to_string())
    })
}

/// Runs `operation` on `bucket`'s backend without holding the store.
async fn on_bucket<T, R, F>(
    accessor: &Accessor<T, HasKv>,
    bucket: &Resource<BucketHandle>,
    operation: impl FnOnce(Arc<dyn KvBackend>, String) -> F,
) -> GuestResult<R>
where
    F: Future<Output = Result<R, KvError>>,
{
    let (backend, name) = open_bucket(accessor, bucket)?;
    Ok(operation(backend, name)
        .await
        .map_err(|e| fail(accessor, e)))
}

impl store::Host for KvCtx<'_> {}

impl<T> store::HostWithStore<T> for HasKv {
    async fn open(
        accessor: &Accessor<T, Self>,
        identifier: String,
    ) -> GuestResult<Resource<BucketHandle>> {
        accessor.with(|mut access| {
            let ctx = access.get();
            if !ctx.kv.buckets.contains(&identifier) {
                ctx.log_denied(&identifier);
                return Ok(Err(store::Error::AccessDenied));
            }
            Ok(Ok(ctx.table.push(BucketHandle { name: identifier })?))
        })
    }
}

impl store::HostBucket for KvCtx<'_> {
    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl<T> store::HostBucketWithStore<T> for HasKv {
    async fn get(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<Option<Vec<u8>>> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.get(&name, &key).await
        })
        .await
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> GuestResult<()> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.set(&name, &key, value).await
        })
        .await
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<()> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.delete(&name, &key).await
        })
        .await
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<bool> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.exists(&name, &key).await
        })
        .await
    }

    async fn list_keys(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> GuestResult<store::KeyResponse> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend
                .list_keys(&name, cursor)
                .await
                .map(|page| store::KeyResponse {
                    keys: page.keys,
                    cursor: page.cursor,
                })
        })
        .await
    }
}

impl atomics::Host for KvCtx<'_> {}

impl<T> atomics::HostWithStore<T> for HasKv {
    async fn increment(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> GuestResult<i64> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.increment(&name, &key, delta).await
        })
        .await
    }

    async fn swap(
        accessor: &Accessor<T, Self>,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let (backend, cas) = accessor.with(|mut access| {
            let ctx = access.get();
            wasmtime::Result::<_>::Ok((ctx.kv.backend.clone(), ctx.table.delete(cas)?))
        })?;
        match super::swap(&*backend, cas, value).await {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(retry)) => accessor.with(|mut access| {
                let retry = access.get().table.push(retry)?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }),
            Err(e) => Ok(Err(atomics::CasError::StoreError(fail(accessor, e)))),
        }
    }
}

impl atomics::HostCas for KvCtx<'_> {
    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl<T> atomics::HostCasWithStore<T> for HasKv {
    async fn new(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> GuestResult<Resource<CasHandle>> {
        let (backend, name) = open_bucket(accessor, &bucket)?;
        let seen = match backend.get(&name, &key).await {
            Ok(seen) => seen,
            Err(e) => return Ok(Err(fail(accessor, e))),
        };
        accessor.with(|mut access| {
            Ok(Ok(access.get().table.push(CasHandle {
                bucket: name,
                key,
                seen,
            })?))
        })
    }

    async fn current(
        accessor: &Accessor<T, Self>,
        cas: Resource<CasHandle>,
    ) -> GuestResult<Option<Vec<u8>>> {
        accessor.with(|mut access| Ok(Ok(access.get().table.get(&cas)?.seen.clone())))
    }
}

impl batch::Host for KvCtx<'_> {}

impl<T> batch::HostWithStore<T> for HasKv {
    async fn get_many(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> GuestResult<Vec<(String, Option<Vec<u8>>)>> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend
                .get_many(&name, keys.clone())
                .await
                .map(|values| keys.into_iter().zip(values).collect())
        })
        .await
    }

    async fn set_many(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> GuestResult<()> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.set_many(&name, key_values).await
        })
        .await
    }

    async fn delete_many(
        accessor: &Accessor<T, Self>,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> GuestResult<()> {
        on_bucket(accessor, &bucket, |backend, name| async move {
            backend.delete_many(&name, keys).await
        })
        .await
    }
}
