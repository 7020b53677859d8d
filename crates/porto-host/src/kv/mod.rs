//! Host side of `wasi:keyvalue@0.2.0-draft2` (and, for WASI 0.3 guests,
//! its async form `wasi:keyvalue@0.3.0-draft`, `p3.rs`): the bindings and the
//! per-instance view that enforces bucket isolation, over any
//! [`porto_kv::KvBackend`].
//!
//! [`KvView`] is what a guest instance gets: the backend plus the set of
//! buckets its service may open. Isolation is by construction: a bucket
//! resource exists only if `open` found its name in that set, and every
//! backend keeps bucket and key apart (never concatenated), so no key
//! string can reach into another bucket.

mod bindings;
mod metered;
pub(crate) mod p3;

use std::collections::BTreeSet;
use std::sync::Arc;

use porto_kv::{KvBackend, KvError};

pub(crate) use bindings::{KvCtx, add_to_linker};
pub(crate) use metered::Metered;

/// The key-value capability of one guest instance.
#[derive(Clone)]
pub(crate) struct KvView {
    pub backend: Arc<dyn KvBackend>,
    pub buckets: Arc<BTreeSet<String>>,
    pub service: Arc<str>,
}

/// An open bucket (the `bucket` resource).
// `pub`: the generated bindings re-export it by that visibility.
#[allow(unreachable_pub)]
pub struct BucketHandle {
    pub(crate) name: String,
}

/// A pending compare-and-swap (the `cas` resource): the value seen when it
/// was made, which the swap must still find.
#[allow(unreachable_pub)]
pub struct CasHandle {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) seen: Option<Vec<u8>>,
}

/// `atomics.swap` for both versions of the interface: `value` for the
/// handle's key if it still holds what the handle saw (`Ok(Ok(()))`),
/// else the handle again seeing what the key holds now, for the guest's
/// retry (`Ok(Err(retry))`).
pub(crate) async fn swap(
    backend: &dyn KvBackend,
    CasHandle { bucket, key, seen }: CasHandle,
    value: Vec<u8>,
) -> Result<Result<(), CasHandle>, KvError> {
    if backend.compare_and_swap(&bucket, &key, seen, value).await? {
        return Ok(Ok(()));
    }
    let seen = backend.get(&bucket, &key).await?;
    Ok(Err(CasHandle { bucket, key, seen }))
}
