//! One running service: its configuration, the component its requests
//! are served from (swapped by a reload while earlier requests finish on
//! the old one), its concurrency slots and its live figures.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::Semaphore;

use crate::instance::component::Prepared;
use crate::instance::p2::Kept;
use crate::instance::pool::Pool;
use crate::metrics::{RequestSeries, ServiceMetrics};
use crate::policy::service::ServiceConfig;
use crate::serve::tls::Terminator;
use crate::serve::worker::worker_count;
use crate::stats::{ServiceStats, Shedding};

pub(crate) struct Service {
    pub name: Arc<str>,
    pub config: Arc<ServiceConfig>,
    /// The buckets of `config`, shared by every instance's key-value view.
    pub buckets: Arc<BTreeSet<String>>,
    current: RwLock<Arc<Prepared>>,
    pub stats: ServiceStats,
    /// One permit per running instance; none left means 503, never a queue.
    pub slots: Arc<Semaphore>,
    pub shedding: Shedding,
    /// Its series of the per-instance metrics, from its first request on.
    pub metrics: OnceLock<ServiceMetrics>,
    /// Its request counters and latency histograms by route and status.
    pub requests: RequestSeries,
    /// Instances kept between requests (when `config.reuse` allows).
    pub kept: Pool<Kept>,
    /// Its listeners' TLS, when `config.tls` names a certificate.
    pub tls: Option<Arc<Terminator>>,
    /// Failed TLS handshakes since the last report of them.
    pub failed_handshakes: Shedding,
}

impl Service {
    pub(crate) fn new(
        config: ServiceConfig,
        prepared: Prepared,
        tls: Option<Arc<Terminator>>,
    ) -> Self {
        Self {
            tls,
            failed_handshakes: Shedding::default(),
            name: Arc::from(config.name.as_str()),
            buckets: Arc::new(config.buckets.clone()),
            slots: Arc::new(Semaphore::new(config.limits.max_concurrency.max(1))),
            config: Arc::new(config),
            current: RwLock::new(Arc::new(prepared)),
            stats: ServiceStats::default(),
            shedding: Shedding::default(),
            metrics: OnceLock::new(),
            requests: RequestSeries::default(),
            kept: Pool::new(worker_count()),
        }
    }

    /// The component new requests get.
    pub(crate) fn current(&self) -> Arc<Prepared> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves new requests from `prepared` from now on; the instances
    /// kept of the one before are dropped (how many).
    pub(crate) fn replace(&self, prepared: Prepared) -> usize {
        let prepared = Arc::new(prepared);
        match self.current.write() {
            Ok(mut current) => *current = prepared,
            Err(poisoned) => *poisoned.into_inner() = prepared,
        }
        self.kept.clear()
    }
}
