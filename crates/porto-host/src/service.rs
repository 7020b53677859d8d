//! One running service: its configuration, the component its requests
//! are served from (swapped by a reload while earlier requests finish on
//! the old one), its concurrency slots and its live figures.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::config::ServiceConfig;
use crate::error::HostError;
use crate::host::Host;
use crate::metrics::{RequestSeries, ServiceMetrics};
use crate::reuse::Idle;
use crate::stats::{ServiceStats, Shedding};

pub(crate) struct Service {
    pub name: Arc<str>,
    pub config: Arc<ServiceConfig>,
    /// The buckets of `config`, shared by every instance's key-value view.
    pub buckets: Arc<BTreeSet<String>>,
    current: RwLock<Arc<Loaded>>,
    pub stats: ServiceStats,
    /// One permit per running instance; none left means 503, never a queue.
    pub slots: Arc<Semaphore>,
    pub shedding: Shedding,
    /// Its series of the per-instance metrics, from its first request on.
    pub metrics: OnceLock<ServiceMetrics>,
    /// Its request counters and latency histograms by route and status.
    pub requests: RequestSeries,
    /// Instances kept between requests (when `config.reuse` allows).
    pub idle: Idle,
}

/// A component ready to instantiate, and the sha256 of its `.wasm`.
pub(crate) struct Loaded {
    pub pre: ProxyPre<Host>,
    pub digest: String,
}

impl Loaded {
    pub fn new(
        service: &str,
        component: &Component,
        digest: String,
        linker: &Linker<Host>,
    ) -> Result<Self, HostError> {
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(|source| HostError::NotAProxy {
                service: service.to_string(),
                source: source.into(),
            })?;
        Ok(Self { pre, digest })
    }
}

impl Service {
    pub fn new(config: ServiceConfig, loaded: Loaded) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            buckets: Arc::new(config.buckets.clone()),
            slots: Arc::new(Semaphore::new(config.limits.max_concurrency.max(1))),
            config: Arc::new(config),
            current: RwLock::new(Arc::new(loaded)),
            stats: ServiceStats::default(),
            shedding: Shedding::default(),
            metrics: OnceLock::new(),
            requests: RequestSeries::default(),
            idle: Idle::default(),
        }
    }

    /// The component new requests get.
    pub fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves new requests from `loaded` from now on.
    pub fn replace(&self, loaded: Loaded) {
        let loaded = Arc::new(loaded);
        match self.current.write() {
            Ok(mut current) => *current = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
    }
}
