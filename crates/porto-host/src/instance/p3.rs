//! Running requests in `wasi:http@0.3` guests (the `service` world).
//!
//! A WASI 0.3 guest serves every request as its own async task, so one
//! instance serves several at once. wasmtime-wasi-http's `ProxyHandler`
//! does the scheduling (`wasmtime serve` is built on it): per service
//! generation, workers that each own one instance, take requests while
//! the instance says it can, and retire it when told. This module is what
//! porto tells it: how an instance is made (porto's store data, limits and
//! epoch yielding), when an instance takes no more (the reuse policy, its
//! memory, a reload), when a request or an idle instance has run out of
//! time, and what became of a request whose instance failed.
//!
//! Sharing an instance means sharing its fate: a trap, or a request that
//! never yields back until its time is up, ends the instance, and every
//! request in flight in it is answered with the failure that ended it. A
//! request that runs out of time while the others still make progress is
//! answered 504 alone; its instance takes no new requests and is retired
//! once the others are answered.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use tokio::sync::{oneshot, watch};
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::buffered_body::Buffered;
use crate::failure::Failure;
use crate::held_body::holding;
use crate::instance::hooks::TaskRequest;
use crate::instance::host::Host;
use crate::instance::outbound::{InProcess, Outbound};
use crate::instance::outcome::{GuestFailure, PoolRelief, failure_of};
use crate::kv::KvView;
use crate::metrics::{InFlight, Metrics, ServiceMetrics};
use crate::policy::reuse::Retired;
use crate::policy::service::ServiceConfig;
use crate::telemetry::RequestSpan;

/// Worker threads with handlers of their own; the threads beyond share
/// theirs.
const HANDLERS: usize = 64;

/// A WASI 0.3 component, ready to serve: its pre-instance on the engine
/// made for it, and the workers serving it (from its first request on).
pub(crate) struct Component {
    pre: ServicePre<Host>,
    engine: Engine,
    /// One per server worker thread: a request is served by instances
    /// living on its own thread, so it and its answer never cross to
    /// another (a hop each way costs more than hello's whole guest).
    handlers: [OnceLock<ProxyHandler<Instances>>; HANDLERS],
    /// Set when the service runs another component: its instances take no
    /// more requests, and idle ones go at once.
    retired: watch::Sender<bool>,
}

impl Component {
    pub(crate) fn new(pre: ServicePre<Host>, engine: Engine) -> Self {
        Self {
            pre,
            engine,
            handlers: std::array::from_fn(|_| OnceLock::new()),
            retired: watch::Sender::new(false),
        }
    }

    pub(crate) fn retire(&self) {
        self.retired.send_replace(true);
    }
}

/// What the workers of a service need from the dispatcher to make its
/// instances.
pub(crate) struct Serving {
    pub service: Arc<str>,
    pub config: Arc<ServiceConfig>,
    pub kv: KvView,
    pub services: Weak<dyn InProcess>,
    pub metrics: Arc<Metrics>,
    pub service_metrics: ServiceMetrics,
    pub relief: Arc<dyn PoolRelief>,
}

/// One request, as the dispatcher hands it over.
pub(crate) struct Call {
    pub request_id: Arc<str>,
    pub span: RequestSpan,
    pub outbound: Outbound,
}

/// Runs `request` in an instance of `component` on server worker
/// `worker`, one `serving` describes (asked for only when the component
/// has no workers on that thread yet).
pub(crate) async fn run(
    component: &Component,
    worker: usize,
    serving: impl FnOnce() -> Serving,
    call: Call,
    request: hyper::Request<Buffered>,
) -> Result<hyper::Response<HyperOutgoingBody>, GuestFailure> {
    let handler = component.handlers[worker % HANDLERS].get_or_init(|| {
        ProxyHandler::new(Instances {
            pre: component.pre.clone(),
            engine: component.engine.clone(),
            serving: serving(),
            retired: component.retired.subscribe(),
        })
    });
    let state = &handler.state().serving;
    let timeout = state.config.limits.request_timeout;
    let in_flight = InFlight::enter(state.service_metrics.in_flight.clone());
    let request = addressed(request).map_err(|failure| GuestFailure {
        kind: None,
        failure,
    })?;
    let task_request = TaskRequest::new(call.outbound, call.request_id, call.span);
    let (cause, failed) = oneshot::channel();
    let data = RequestData {
        task_request: task_request.clone(),
        cause,
    };
    let ended = Ended(task_request);
    match handler.handle(data, request).await {
        Ok(response) => Ok(holding(response, (ended, in_flight))),
        Err(error) => Err(why_not(error, failed, timeout).await),
    }
}

/// The failure a request without an answer gets, and the kind counted.
async fn why_not(
    error: wasmtime::Error,
    failed: oneshot::Receiver<(String, Failure)>,
    timeout: Duration,
) -> GuestFailure {
    let (kind, failure) = if error.is::<ExpirationError>() {
        ("timeout".to_string(), Failure::timeout(timeout))
    } else if let Some(error) = error.downcast_ref::<InstantiationError<RequestData>>() {
        failure_of(&error.error, timeout)
    } else {
        // Its worker ended without answering it: it says why once it
        // has dropped its instance.
        failed.await.unwrap_or_else(|_| {
            (
                "host_error".to_string(),
                Failure::internal(format!("the instance serving it ended: {error:#}")),
            )
        })
    };
    GuestFailure {
        kind: Some(kind),
        failure,
    }
}

/// `request` with the absolute URI a WASI 0.3 guest is owed (its
/// authority is the request target's, else the `Host` header, which
/// wasi:http hides from it), and its body as wasi:http carries bodies.
fn addressed(
    request: hyper::Request<Buffered>,
) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, Failure> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() {
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .ok_or_else(|| Failure::bad_request("no Host header".into()))?;
        let mut uri = http::uri::Builder::new()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority);
        if let Some(path) = parts.uri.path_and_query() {
            uri = uri.path_and_query(path.clone());
        }
        parts.uri = uri
            .build()
            .map_err(|e| Failure::bad_request(format!("unusable request target: {e}")))?;
    }
    // Forbidden to the guest, which has the authority from the URI.
    parts.headers.remove(http::header::HOST);
    let body = body
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

/// Ends the request when its response body is done with: its hooks and
/// span are let go of in the instance.
struct Ended(Arc<TaskRequest>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// What each request brings its worker.
struct RequestData {
    task_request: Arc<TaskRequest>,
    /// Told why, if the request's instance ends before answering it.
    cause: oneshot::Sender<(String, Failure)>,
}

/// The workers' side of one service generation: how to make an instance.
struct Instances {
    pre: ServicePre<Host>,
    engine: Engine,
    serving: Serving,
    retired: watch::Receiver<bool>,
}

impl HandlerState for Instances {
    type StoreData = Host;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiry, Worker>> {
        let serving = &self.serving;
        let outbound = Outbound::for_instance(
            serving.services.clone(),
            serving.metrics.clone(),
            serving.service.clone(),
            serving.config.clone(),
        );
        let mut host = Host::new(
            serving.service.clone(),
            &serving.config,
            Arc::from(""),
            None,
            serving.kv.clone(),
            outbound,
        );
        let memory = Arc::new(AtomicU64::new(0));
        host.watch_memory(memory.clone());
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limits);
        // A guest that never awaits gives tokio its thread back every
        // tick; the workers' expiry, polled then, ends it once its time
        // is up (deadlines are the store's, not a task's).
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let started = Instant::now();
        let service = match self.pre.instantiate_async(&mut store).await {
            Err(error)
                if error.is::<wasmtime::PoolConcurrencyLimitError>()
                    && serving.relief.drop_kept() > 0 =>
            {
                self.pre.instantiate_async(&mut store).await?
            }
            result => result?,
        };
        serving
            .service_metrics
            .instantiation
            .observe(started.elapsed().as_secs_f64());
        let reuse = serving.config.reuse;
        let expired = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <Host as WasiHttpView>::http,
            expiration: Expiry::new(
                serving.config.limits.request_timeout,
                reuse.idle_timeout,
                self.retired.clone(),
                expired.clone(),
            ),
            state: Worker {
                service: serving.service.clone(),
                metrics: serving.metrics.clone(),
                reused: serving.service_metrics.reused.clone(),
                timeout: serving.config.limits.request_timeout,
                max_requests: reuse.p3_requests() as usize,
                max_concurrent: reuse.p3_concurrency() as usize,
                max_memory_bytes: reuse.max_memory_bytes,
                memory,
                retired: self.retired.clone(),
                retiring: Mutex::new(None),
                served: AtomicBool::new(false),
                waiting: Mutex::new(Vec::new()),
                expired,
            },
        })
    }
}

/// One instance's worker: what it may take on, and its requests' fate.
struct Worker {
    service: Arc<str>,
    metrics: Arc<Metrics>,
    reused: prometheus_client::metrics::counter::Counter,
    timeout: Duration,
    max_requests: usize,
    max_concurrent: usize,
    max_memory_bytes: u64,
    memory: Arc<AtomicU64>,
    retired: watch::Receiver<bool>,
    /// Why it takes no more requests, once it does not.
    retiring: Mutex<Option<Retired>>,
    served: AtomicBool,
    /// Whom to tell if the instance ends before answering them.
    waiting: Mutex<Vec<oneshot::Sender<(String, Failure)>>>,
    /// Set by its [`Expiry`] when it ended a running instance.
    expired: Arc<AtomicBool>,
}

impl Worker {
    fn retire(&self, why: Retired) -> ShouldAccept {
        self.retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        ShouldAccept::Never
    }
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = RequestData;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if *self.retired.borrow() {
            self.retire(Retired::Reloaded)
        } else if total >= self.max_requests {
            self.retire(Retired::Used)
        } else if self.memory.load(Ordering::Relaxed) > self.max_memory_bytes {
            self.retire(Retired::Memory)
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, Host>,
        data: RequestData,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        store.data_mut().begin_task(task, data.task_request);
        if self.served.swap(true, Ordering::Relaxed) {
            self.reused.inc();
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.retain(|sender| !sender.is_closed());
        waiting.push(data.cause);
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        // The instance (and its pool slot) goes first.
        drop(store);
        let why = match result {
            Ok(()) => *self.retiring.lock().unwrap_or_else(|p| p.into_inner()),
            Err(error) => {
                let cause = if self.expired.load(Ordering::Relaxed) {
                    ("timeout".to_string(), Failure::timeout(self.timeout))
                } else {
                    failure_of(&error, self.timeout)
                };
                for sender in self
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .drain(..)
                {
                    let _ = sender.send(cause.clone());
                }
                Some(Retired::Failed)
            }
        };
        self.metrics
            .retired(&self.service, why.unwrap_or(Retired::Idle), 1);
    }
}

/// When a worker's instance has had its time: idle past the idle timeout
/// (at once once its service was reloaded), or running past the request
/// timeout since its latest request came in, which means every request in
/// it has had its time.
struct Expiry {
    request_timeout: Duration,
    idle_timeout: Duration,
    /// Resolves once the service runs another component (None once it
    /// has). In a Mutex only to be Sync: polling has `&mut`.
    retired: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    timer: Mutex<Pin<Box<tokio::time::Sleep>>>,
    /// Set when it ends an instance with requests in flight.
    expired: Arc<AtomicBool>,
}

/// Past a request's own timeout, the time its worker gives it to be
/// answered 504 alone before the whole instance is ended.
const EXPIRY_GRACE: Duration = Duration::from_millis(100);

impl Expiry {
    fn new(
        request_timeout: Duration,
        idle_timeout: Duration,
        mut retired: watch::Receiver<bool>,
        expired: Arc<AtomicBool>,
    ) -> Self {
        let retired = async move {
            // An error: the component is gone, so retired as well.
            let _ = retired.wait_for(|retired| *retired).await;
        };
        Self {
            request_timeout,
            idle_timeout,
            retired: Mutex::new(Some(Box::pin(retired))),
            timer: Mutex::new(Box::pin(tokio::time::sleep(Duration::ZERO))),
            expired,
        }
    }
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let idle = status == WorkerStatus::Idle;
        if idle {
            let retired = this.retired.get_mut().unwrap_or_else(|p| p.into_inner());
            let reloaded = match retired {
                None => true,
                Some(reloaded) => reloaded.as_mut().poll(cx).is_ready(),
            };
            if reloaded {
                *retired = None;
                return Poll::Ready(());
            }
        }
        let allowed = if idle {
            this.idle_timeout
        } else {
            this.request_timeout + EXPIRY_GRACE
        };
        let deadline = tokio::time::Instant::from_std(start + allowed);
        let timer = this.timer.get_mut().unwrap_or_else(|p| p.into_inner());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        let expired = timer.as_mut().poll(cx);
        if expired.is_ready() && !idle {
            this.expired.store(true, Ordering::Relaxed);
        }
        expired
    }
}
