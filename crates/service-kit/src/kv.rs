//! A typed client for `wasi:keyvalue@0.2.0-draft2`.
//!
//! Values are JSON. Store failures become [`ApiError`]s here so handlers can
//! use `?` throughout: an unreachable store is 503 `store_unavailable`, a
//! bucket the host refuses is a 500 (a deployment bug, not a client one).
//! The one non-obvious decision: read-modify-write goes through CAS
//! ([`Bucket::update`]) and creation through create-if-absent
//! ([`Bucket::insert_new`]), never get-then-set, because concurrent requests
//! run in separate instances that share nothing but the store.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// How often a CAS update is retried against concurrent writers before the
/// request gives up with 503.
const MAX_CAS_ATTEMPTS: usize = 64;

pub struct Bucket {
    inner: store::Bucket,
    name: String,
}

/// Records to write together ([`Bucket::write`]), each encoded as it is added.
#[derive(Default)]
pub struct Writes(Vec<(String, Vec<u8>)>);

impl Writes {
    pub fn put<T: Serialize>(mut self, key: String, value: &T) -> Result<Self, ApiError> {
        self.0.push((key, encode(value)?));
        Ok(self)
    }
}

/// What an [`Bucket::update`] closure decides to do with the current value.
pub enum Update<T, R> {
    /// Write `T`, then return `R`.
    Put(T, R),
    /// Leave the key as it is and return `R`.
    Keep(R),
}

impl Bucket {
    pub fn open(name: &str) -> Result<Self, ApiError> {
        let inner = store::open(name).map_err(|e| store_error(name, e))?;
        Ok(Self {
            inner,
            name: name.to_string(),
        })
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let raw = self.inner.get(key).map_err(|e| self.error(e))?;
        raw.map(|bytes| self.decode(key, &bytes)).transpose()
    }

    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let bytes = encode(value)?;
        self.inner.set(key, &bytes).map_err(|e| self.error(e))
    }

    pub fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.inner.delete(key).map_err(|e| self.error(e))
    }

    pub fn exists(&self, key: &str) -> Result<bool, ApiError> {
        self.inner.exists(key).map_err(|e| self.error(e))
    }

    /// Values for `keys`, in the same order, `None` where a key is absent.
    pub fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<T>>, ApiError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = batch::get_many(&self.inner, keys).map_err(|e| self.error(e))?;
        found
            .into_iter()
            .map(|(key, value)| value.map(|v| self.decode(&key, &v)).transpose())
            .collect()
    }

    /// Records for numeric ids under `key_of(id)`, in order.
    pub fn get_by_ids<T: DeserializeOwned>(
        &self,
        ids: &[u64],
        key_of: impl Fn(u64) -> String,
    ) -> Result<Vec<Option<T>>, ApiError> {
        let keys: Vec<String> = ids.iter().map(|&id| key_of(id)).collect();
        self.get_many(&keys)
    }

    pub fn put_many<T: Serialize>(&self, entries: &[(String, T)]) -> Result<(), ApiError> {
        let mut writes = Writes::default();
        for (key, value) in entries {
            writes = writes.put(key.clone(), value)?;
        }
        self.write(writes)
    }

    /// Writes records of any types with one `set-many`: one round trip,
    /// and on porto's stores one commit, instead of one per record.
    pub fn write(&self, writes: Writes) -> Result<(), ApiError> {
        batch::set_many(&self.inner, &writes.0).map_err(|e| self.error(e))
    }

    /// Atomically adds `delta` and returns the new value; `delta = 0` reads
    /// the counter without changing it.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, ApiError> {
        atomics::increment(&self.inner, key, delta).map_err(|e| self.error(e))
    }

    /// Writes `value` only if `key` is absent. `Ok(false)` means another
    /// writer got there first.
    pub fn insert_new<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, ApiError> {
        let bytes = encode(value)?;
        let cas = atomics::Cas::new(&self.inner, key).map_err(|e| self.error(e))?;
        if cas.current().map_err(|e| self.error(e))?.is_some() {
            return Ok(false);
        }
        match atomics::swap(cas, &bytes) {
            Ok(()) => Ok(true),
            Err(atomics::CasError::CasFailed(_)) => Ok(false),
            Err(atomics::CasError::StoreError(e)) => Err(self.error(e)),
        }
    }

    /// Compare-and-swap loop: `decide` sees the current value and says what
    /// to write; if another writer changed the key meanwhile, `decide` runs
    /// again on the newer value.
    pub fn update<T, R>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<T>) -> Result<Update<T, R>, ApiError>,
    ) -> Result<R, ApiError>
    where
        T: Serialize + DeserializeOwned,
    {
        let mut cas = atomics::Cas::new(&self.inner, key).map_err(|e| self.error(e))?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = cas
                .current()
                .map_err(|e| self.error(e))?
                .map(|bytes| self.decode(key, &bytes))
                .transpose()?;
            let (value, result) = match decide(current)? {
                Update::Keep(result) => return Ok(result),
                Update::Put(value, result) => (value, result),
            };
            match atomics::swap(cas, &encode(&value)?) {
                Ok(()) => return Ok(result),
                Err(atomics::CasError::CasFailed(next)) => cas = next,
                Err(atomics::CasError::StoreError(e)) => return Err(self.error(e)),
            }
        }
        Err(ApiError::new(
            503,
            "contention",
            "Too many concurrent updates to the same record; retry shortly.",
        )
        .with_header("retry-after", "1"))
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| {
            eprintln!("bucket {}: record {key:?} does not decode: {e}", self.name);
            ApiError::internal("A stored record could not be read.")
        })
    }

    fn error(&self, e: store::Error) -> ApiError {
        store_error(&self.name, e)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("record serialisation failed: {e}")))
}

fn store_error(bucket: &str, e: store::Error) -> ApiError {
    match e {
        store::Error::Other(reason) => {
            eprintln!("bucket {bucket}: store error: {reason}");
            ApiError::store_unavailable("The data store is unavailable; retry shortly.")
        }
        store::Error::AccessDenied => {
            eprintln!("bucket {bucket}: access denied by the host");
            ApiError::internal("This service may not open its data store.")
        }
        store::Error::NoSuchStore => {
            eprintln!("bucket {bucket}: no such store");
            ApiError::internal("This service's data store does not exist.")
        }
    }
}
