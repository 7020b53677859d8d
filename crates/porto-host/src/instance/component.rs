//! A service's component, compiled, linked and ready to instantiate.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::error::HostError;
use crate::instance::host::Host;

/// A component ready to instantiate, and the sha256 of its `.wasm`.
pub(crate) struct Prepared {
    pub pre: ProxyPre<Host>,
    pub digest: String,
    /// Unique to this preparation: instances kept under another
    /// generation belong to a component that has since been replaced.
    pub generation: u64,
}

impl Prepared {
    pub(crate) fn new(
        service: &str,
        component: &Component,
        digest: String,
        linker: &Linker<Host>,
    ) -> Result<Self, HostError> {
        static GENERATIONS: AtomicU64 = AtomicU64::new(0);
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(|source| HostError::NotAProxy {
                service: service.to_string(),
                source: source.into(),
            })?;
        Ok(Self {
            pre,
            digest,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        })
    }
}
