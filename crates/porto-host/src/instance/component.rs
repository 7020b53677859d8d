//! A service's component, compiled, linked and ready to instantiate, with
//! the runner of its `wasi:http` world.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::abi::GuestAbi;
use crate::error::HostError;
use crate::instance::host::Host;
use crate::instance::p3;

/// A component ready to serve, and the sha256 of its `.wasm`.
pub(crate) struct Prepared {
    pub runner: Runner,
    pub digest: String,
    /// Unique to this preparation: instances kept under another
    /// generation belong to a component that has since been replaced.
    pub generation: u64,
}

/// How a component's requests are run, by its world.
pub(crate) enum Runner {
    /// One request per instance at a time (`instance::p2`).
    Wasip2(ProxyPre<Host>),
    /// Several at once, by its own workers (`instance::p3`).
    Wasip3(Box<p3::Component>),
}

impl Prepared {
    /// `component` (of world `abi`), linked by `linker`, whose engine
    /// compiled it.
    pub(crate) fn new(
        service: &str,
        abi: GuestAbi,
        component: &Component,
        digest: String,
        linker: &Linker<Host>,
    ) -> Result<Self, HostError> {
        static GENERATIONS: AtomicU64 = AtomicU64::new(0);
        let not_a_proxy = |source: wasmtime::Error| HostError::NotAProxy {
            service: service.to_string(),
            source: source.into(),
        };
        let pre = linker.instantiate_pre(component).map_err(not_a_proxy)?;
        let runner = match abi {
            GuestAbi::Wasip2 => Runner::Wasip2(ProxyPre::new(pre).map_err(not_a_proxy)?),
            GuestAbi::Wasip3 => Runner::Wasip3(Box::new(p3::Component::new(
                ServicePre::new(pre).map_err(not_a_proxy)?,
                component.engine().clone(),
            ))),
        };
        Ok(Self {
            runner,
            digest,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl Drop for Prepared {
    /// A replaced component's instances take no more requests.
    fn drop(&mut self) {
        if let Runner::Wasip3(component) = &self.runner {
            component.retire();
        }
    }
}
