//! The one start-up path: from plain service configurations and their
//! components to a [`Stack`] that serves them.
//!
//! [`Stack::start`] does, in order, everything that can fail before a
//! socket is bound: the engine (pooling allocator where the machine allows
//! it, epoch ticker), the linker (WASI, wasi:http, wasi:keyvalue), every
//! component compiled (or loaded from the compile cache) and
//! pre-instantiated. [`Stack::serve`] then takes already-bound listeners.
//! `porto up`, the benchmarks and any other front end start this way.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Body;
use porto_kv::KvBackend;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::abi::GuestAbi;
use crate::engine::{Allocator, CacheOutcome, wasm_digest};
use crate::error::HostError;
use crate::kv::Metered;
use crate::memory;
use crate::metrics::{Metrics, ServiceLabels};
use crate::policy::reuse::Retired;
use crate::policy::service::ServiceConfig;
use crate::serve::dispatcher::{self, Dispatcher};
use crate::serve::server::{self, Workers, WorkersDone};
use crate::serve::service::Service;
use crate::serve::tls::Terminator;
use crate::stats::Snapshot;
use crate::worlds::Worlds;

/// Everything a stack is made of.
pub struct StackConfig {
    /// The services, each with its component's bytes.
    pub services: Vec<(ServiceConfig, Vec<u8>)>,
    /// Where the guests' `wasi:keyvalue` data lives (`porto_kv::connect`).
    pub kv: Arc<dyn KvBackend>,
    pub allocator: Allocator,
    /// Component instances the pooling allocator holds at once, across
    /// all services ([`DEFAULT_INSTANCE_POOL`](crate::DEFAULT_INSTANCE_POOL));
    /// a request that finds it full is answered 503 `overloaded`.
    pub instance_pool: NonZeroU32,
    /// Compiled components are kept here, keyed by wasm digest and engine,
    /// so a second start skips compiling.
    pub cache_dir: PathBuf,
}

/// A service as started: its component's digest and whether the compile
/// cache had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub name: String,
    /// sha256 of the `.wasm`, in hex.
    pub digest: String,
    pub cache: CacheOutcome,
}

/// A service right now, for status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    pub digest: String,
    pub in_flight: i64,
    pub stats: Snapshot,
}

/// What [`Stack::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The component was the one already running.
    Unchanged,
    /// New requests get the new component, of this digest.
    Swapped { digest: String },
}

/// The services, compiled and ready; cheap to clone.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

struct Inner {
    dispatcher: Arc<Dispatcher>,
    worlds: Worlds,
    pooling: bool,
    started: Vec<Started>,
}

impl Stack {
    /// Builds the engine and pre-instantiates every service; nothing is
    /// served yet.
    pub fn start(config: StackConfig) -> Result<Self, HostError> {
        let StackConfig {
            services,
            kv,
            allocator,
            instance_pool,
            cache_dir,
        } = config;
        let max_memory = services
            .iter()
            .map(|(config, _)| config.limits.max_memory_bytes)
            .max()
            .unwrap_or(0);
        let worlds = Worlds::new(max_memory, allocator, instance_pool, cache_dir);
        // The WASI 0.2 engine runs the dispatcher's instances of that
        // world, and says for all whether the pool could be had.
        let p2 = worlds.world(GuestAbi::Wasip2)?;
        let (p2_engine, pooling) = (p2.engine.clone(), p2.pooling);
        let mut running = Vec::new();
        let mut started = Vec::new();
        for (config, wasm) in services {
            let digest = wasm_digest(&wasm);
            let (prepared, cache) = worlds.prepare(&config.name, &wasm, &digest)?;
            started.push(Started {
                name: config.name.clone(),
                digest,
                cache,
            });
            let tls = config
                .tls
                .as_ref()
                .map(|files| Terminator::load(&config.name, files).map(Arc::new))
                .transpose()?;
            running.push(Service::new(config, prepared, tls));
        }
        let metrics = Arc::new(Metrics::new());
        let kv = Metered::wrap(kv, metrics.clone());
        let dispatcher = Arc::new(Dispatcher::new(p2_engine, kv, metrics, running));
        // Kept instances expire on a timer of the tokio runtime porto runs
        // on (a host without one, e.g. a benchmark's, keeps them until
        // reused). The task ends with the dispatcher.
        if dispatcher
            .services()
            .iter()
            .any(|s| s.config.reuse.enabled())
            && let Ok(tokio) = tokio::runtime::Handle::try_current()
        {
            tokio.spawn(dispatcher::expire_idle(Arc::downgrade(&dispatcher)));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dispatcher,
                worlds,
                pooling,
                started,
            }),
        })
    }

    /// Whether instances come from the pooling allocator (else on demand).
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The services as [`Stack::start`] found them, in the order given.
    pub fn started(&self) -> &[Started] {
        &self.inner.started
    }

    /// Every service now, by name.
    pub fn status(&self) -> Vec<ServiceStatus> {
        let dispatcher = &self.inner.dispatcher;
        dispatcher
            .services()
            .into_iter()
            .map(|service| ServiceStatus {
                name: service.name.to_string(),
                digest: service.current().digest.clone(),
                in_flight: dispatcher
                    .metrics
                    .in_flight
                    .get_or_create(&ServiceLabels {
                        service: service.name.to_string(),
                    })
                    .get(),
                stats: service.stats.snapshot(),
            })
            .collect()
    }

    /// The OpenMetrics text exposition of everything the host counts.
    pub fn metrics(&self) -> String {
        self.inner.dispatcher.metrics.render()
    }

    /// Serves `service`'s new requests from `wasm` from now on, unless it
    /// is the component already running; requests in flight finish on the
    /// one they started with. Compiles: call it off the async threads.
    pub fn reload(&self, service: &str, wasm: &[u8]) -> Result<Reload, HostError> {
        let running = self
            .inner
            .dispatcher
            .service(service)
            .ok_or_else(|| HostError::UnknownService(service.to_string()))?;
        let digest = wasm_digest(wasm);
        if digest == running.current().digest {
            return Ok(Reload::Unchanged);
        }
        let (prepared, _) = self.inner.worlds.prepare(service, wasm, &digest)?;
        let dropped = running.replace(prepared);
        self.inner
            .dispatcher
            .metrics
            .retired(service, Retired::Reloaded, dropped);
        Ok(Reload::Swapped { digest })
    }

    /// Runs one request through an instance of `service`, as a request
    /// from a socket would: for embedding and benchmarks.
    pub async fn handle<B>(
        &self,
        service: &str,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, HostError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let dispatcher = &self.inner.dispatcher;
        let target = dispatcher
            .service(service)
            .ok_or_else(|| HostError::UnknownService(service.to_string()))?;
        Ok(dispatcher.handle(&target, request).await)
    }

    /// Serves each `(service, listener)` on worker threads (one per core)
    /// until `shutdown` changes; then in-flight requests get up to `drain`
    /// to finish. Call it inside a tokio runtime.
    pub fn serve(
        &self,
        listeners: Vec<(String, TcpListener)>,
        shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) -> Result<Serving, HostError> {
        let dispatcher = &self.inner.dispatcher;
        let mut services = Vec::new();
        for (name, listener) in listeners {
            let service = dispatcher
                .service(&name)
                .ok_or(HostError::UnknownService(name))?;
            services.push((service, listener));
        }
        let (workers, workers_done) =
            Workers::start(&shutdown, drain).map_err(HostError::Workers)?;
        let counted = Arc::downgrade(dispatcher);
        let served = move || {
            let dispatcher = counted.upgrade()?;
            Some(dispatcher.services().iter().map(|s| s.stats.served()).sum())
        };
        memory::spawn_trimmer(served, shutdown.clone());
        for (service, _) in &services {
            if let Some(tls) = &service.tls {
                tokio::spawn(tls.clone().reload_on_change(shutdown.clone()));
            }
        }
        let accepting = services
            .into_iter()
            .map(|(service, listener)| {
                tokio::spawn(server::serve(
                    listener,
                    dispatcher.clone(),
                    service,
                    shutdown.clone(),
                    workers.clone(),
                ))
            })
            .collect();
        Ok(Serving {
            accepting,
            workers_done,
        })
    }

    /// What a front end does with a started stack: serve `listeners` until
    /// `stop` turns true (for a process, [`crate::shutdown_on_signal`]),
    /// then let in-flight requests drain for up to `drain`. `say` is told
    /// each stage as a line for the user (porto-host itself prints
    /// nothing): the stop, then the end of the drain.
    pub async fn serve_until_stopped(
        &self,
        listeners: Vec<(String, TcpListener)>,
        mut stop: watch::Receiver<bool>,
        drain: Duration,
        say: impl Fn(&str),
    ) -> Result<(), HostError> {
        let serving = self.serve(listeners, stop.clone(), drain)?;
        // A dropped sender counts as a stop, too: nothing could signal one.
        let _ = stop.wait_for(|stopped| *stopped).await;
        say(&format!(
            "porto: stopping; draining in-flight requests (up to {}s)",
            drain.as_secs()
        ));
        serving.stopped().await;
        say("porto: stopped");
        Ok(())
    }
}

/// A stack serving its listeners.
pub struct Serving {
    accepting: Vec<JoinHandle<()>>,
    workers_done: WorkersDone,
}

impl Serving {
    /// Resolves once every listener has stopped accepting and every worker
    /// has drained (or given up at the drain timeout).
    pub async fn stopped(self) {
        for task in self.accepting {
            let _ = task.await;
        }
        self.workers_done.wait().await;
    }
}
