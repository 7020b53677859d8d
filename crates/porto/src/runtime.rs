//! The running application: every service's pre-instantiated component,
//! and the one path by which any request — from a socket or from another
//! guest — reaches a fresh instance.
//!
//! Per request: a new [`Store`] with a fresh [`Host`], an epoch deadline
//! for the service's request timeout, `instantiate_async` from the
//! [`ProxyPre`] made at start-up, `call_handle`. Nothing survives the
//! request but what the guest wrote to the key-value store.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use opentelemetry::trace::SpanContext;
use tokio::sync::oneshot;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::ServiceSpec;
use crate::engine::EPOCH_TICK;
use crate::host::Host;
use crate::kv::KvBackend;
use crate::metrics::{InFlight, Metrics, ServiceMetrics, route_class, snake_case};
use crate::stats::ServiceStats;
use crate::telemetry;
use tracing::Instrument as _;

pub const REQUEST_ID: &str = "x-request-id";

/// The largest request line plus headers a guest is given.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

pub struct ServiceRuntime {
    pub name: Arc<str>,
    pub spec: ServiceSpec,
    pub buckets: Arc<BTreeSet<String>>,
    /// The component requests are served from; `--watch` swaps it while
    /// requests already running finish on the one they started with.
    current: std::sync::RwLock<Arc<Loaded>>,
    pub stats: ServiceStats,
    /// One permit per running instance; none left means 503, never a queue.
    slots: Arc<tokio::sync::Semaphore>,
    /// Its series of the per-instance metrics, from its first request on.
    metrics: std::sync::OnceLock<ServiceMetrics>,
}

pub struct Runtime {
    pub engine: Engine,
    pub kv: Arc<dyn KvBackend>,
    pub metrics: Arc<Metrics>,
    services: HashMap<String, Arc<ServiceRuntime>>,
}

/// Links everything a guest may import: WASI (no filesystem preopens, no
/// sockets allowed), wasi:http, and wasi:keyvalue.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::kv::add_to_linker(&mut linker, Host::kv)?;
    Ok(linker)
}

/// A component ready to instantiate, and the sha256 of its `.wasm`.
pub struct Loaded {
    pre: ProxyPre<Host>,
    pub digest: String,
}

impl Loaded {
    pub fn new(
        name: &str,
        component: &Component,
        digest: String,
        linker: &Linker<Host>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{name}: the component is not a wasi:http proxy porto can run")
            })?;
        Ok(Self { pre, digest })
    }
}

impl ServiceRuntime {
    pub fn new(
        spec: ServiceSpec,
        component: &Component,
        digest: String,
        linker: &Linker<Host>,
    ) -> anyhow::Result<Self> {
        let loaded = Loaded::new(&spec.name, component, digest, linker)?;
        Ok(Self {
            name: Arc::from(spec.name.as_str()),
            buckets: Arc::new(spec.buckets.clone()),
            slots: Arc::new(tokio::sync::Semaphore::new(spec.max_concurrency)),
            spec,
            current: std::sync::RwLock::new(Arc::new(loaded)),
            stats: ServiceStats::default(),
            metrics: std::sync::OnceLock::new(),
        })
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

impl Runtime {
    pub fn new(
        engine: Engine,
        kv: Arc<dyn KvBackend>,
        metrics: Arc<Metrics>,
        services: Vec<ServiceRuntime>,
    ) -> Self {
        Self {
            engine,
            kv,
            metrics,
            services: services
                .into_iter()
                .map(|s| (s.name.to_string(), Arc::new(s)))
                .collect(),
        }
    }

    pub fn service(&self, name: &str) -> Option<Arc<ServiceRuntime>> {
        self.services.get(name).cloned()
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<Arc<ServiceRuntime>> {
        let mut all: Vec<_> = self.services.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Runs one request through a fresh instance of `service`. Failures of
    /// the guest (trap, timeout, no response) become JSON errors here, so
    /// callers always get a response.
    pub async fn handle<B>(
        self: &Arc<Self>,
        service: &Arc<ServiceRuntime>,
        mut request: hyper::Request<B>,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = std::time::Instant::now();
        let route = route_class(request.method(), request.uri().path());
        let (span, trace) = telemetry::request_span(&service.name, &route, request.headers());
        // The guest sees its own span as the parent of what it does.
        telemetry::inject(&trace, request.headers_mut());
        let response = self
            .answer(service, request, &trace)
            .instrument(span.clone())
            .await;
        let (status, took) = (response.status().as_u16(), started.elapsed());
        span.record("http.response.status_code", status);
        service.stats.record(status, took);
        self.metrics
            .observe_request(&service.name, route, status, took);
        response
    }

    async fn answer<B>(
        self: &Arc<Self>,
        service: &Arc<ServiceRuntime>,
        mut request: hyper::Request<B>,
        trace: &SpanContext,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let request_id = ensure_request_id(&mut request);
        let Ok(_slot) = service.slots.clone().try_acquire_owned() else {
            tracing::warn!(service = %service.name, request_id, "at max_concurrency; refusing");
            return Failure::overloaded("at max_concurrency".into()).into_response(&request_id);
        };
        let head_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
            + request.uri().to_string().len();
        if head_bytes > MAX_HEAD_BYTES {
            return error_response(
                431,
                "headers_too_large",
                "The request headers are too large.",
                &request_id,
            );
        }
        if declared_length(&request).is_some_and(|n| n > service.spec.max_body_bytes) {
            // Refused unread: the client is told the connection ends here.
            return with_header(
                error_response(
                    413,
                    "payload_too_large",
                    "The request body is too large.",
                    &request_id,
                ),
                http::header::CONNECTION,
                "close",
            );
        }
        // The whole body is read before an instance exists: a slow client
        // cannot hold an instance, and a guest that answers early (413 at
        // its own limit) cannot leave the client writing into a closed
        // connection.
        let request = match read_body(request, service).await {
            Ok(request) => request,
            Err(refusal) => {
                tracing::debug!(service = %service.name, request_id, status = refusal.status, "{}", refusal.log);
                return refusal.into_response(&request_id);
            }
        };
        match self.run_guest(service, request, &request_id, trace).await {
            Ok(response) => response,
            Err(failure) if failure.status == 503 => {
                tracing::warn!(service = %service.name, request_id, "{}", failure.log);
                failure.into_response(&request_id)
            }
            Err(failure) => {
                tracing::error!(service = %service.name, request_id, "{}", failure.log);
                failure.into_response(&request_id)
            }
        }
    }

    async fn run_guest<B>(
        self: &Arc<Self>,
        service: &Arc<ServiceRuntime>,
        request: hyper::Request<B>,
        request_id: &str,
        trace: &SpanContext,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Failure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let timeout = service.spec.request_timeout;
        let mut store = Store::new(
            &self.engine,
            Host::new(self, service, request_id, trace.clone()),
        );
        store.limiter(|host| &mut host.limits);
        // Every tick a running guest yields to tokio, so a guest that never
        // awaits (an infinite loop) cannot hold a worker thread; once its
        // time is up it traps.
        let allowed = ticks(timeout);
        let mut used = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            used += 1;
            Ok(if used >= allowed {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| Failure::bad_request(format!("unusable request: {e:#}")))?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| Failure::internal(format!("response slot: {e:#}")))?;
        let pre = service.current().pre.clone();
        let ServiceMetrics {
            in_flight,
            instantiation,
        } = service
            .metrics
            .get_or_init(|| self.metrics.for_service(&service.name))
            .clone();
        let mut guest: Guest = Box::pin(async move {
            // Dropped when the instance is done or its future dropped.
            let _in_flight = InFlight::enter(in_flight);
            let started = std::time::Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            instantiation.observe(started.elapsed().as_secs_f64());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        });
        // The guest runs in this connection's task until it answers, and
        // is spawned only if it still has work then (streaming the rest of
        // a body). A guest that answers without waiting, like hello, costs
        // no task and no wake-up of another worker.
        let first = tokio::time::timeout(
            timeout,
            std::future::poll_fn(|cx| {
                if let Poll::Ready(answer) = Pin::new(&mut receiver).poll(cx) {
                    return Poll::Ready(Stage::Answered(answer));
                }
                poll_guest(&mut guest, cx).map(Stage::Ended)
            }),
        )
        .await;
        let answer = match first {
            Err(_) => {
                // Dropping the guest drops its instance.
                self.metrics.guest_failure(&service.name, "timeout");
                return Err(Failure::timeout(timeout));
            }
            Ok(Stage::Answered(Ok(answer))) => {
                tokio::spawn(async move {
                    let _ = guest.await;
                });
                answer
            }
            Ok(Stage::Answered(Err(_))) => {
                // The guest dropped its response slot unset: find out why
                // once it ends.
                let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
                return Err(self.diagnose(service, ended, timeout));
            }
            Ok(Stage::Ended(ended)) => match receiver.try_recv() {
                Ok(answer) => answer,
                Err(_) => return Err(self.diagnose(service, ended, timeout)),
            },
        };
        answer.map_err(|code| {
            self.metrics.guest_failure(&service.name, "error_response");
            Failure::internal(format!("guest answered with an error: {code:?}"))
        })
    }

    /// Why a guest ended without answering, counted by kind.
    fn diagnose(
        &self,
        service: &ServiceRuntime,
        ended: Result<wasmtime::Result<()>, String>,
        timeout: std::time::Duration,
    ) -> Failure {
        let (kind, failure) = match ended {
            Ok(Ok(())) => (
                "no_response".to_string(),
                Failure::internal("returned without setting a response".into()),
            ),
            Ok(Err(error)) if error.is::<wasmtime::PoolConcurrencyLimitError>() => (
                "pool_exhausted".to_string(),
                Failure::overloaded(format!("{error:#}")),
            ),
            Ok(Err(error)) => match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => {
                    ("timeout".to_string(), Failure::timeout(timeout))
                }
                Some(trap) => (
                    snake_case(&format!("{trap:?}")),
                    Failure::internal(format!("trapped: {error:?}")),
                ),
                None => (
                    "host_error".to_string(),
                    Failure::internal(format!("failed: {error:?}")),
                ),
            },
            Err(panic) => (
                "host_error".to_string(),
                Failure::internal(format!("host panicked while running the guest: {panic}")),
            ),
        };
        self.metrics.guest_failure(&service.name, &kind);
        failure
    }
}

/// One request's instance, from instantiation to the end of its handler.
type Guest = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// What came first: the guest's answer, or the end of the guest.
enum Stage {
    Answered(
        Result<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>, oneshot::error::RecvError>,
    ),
    Ended(Result<wasmtime::Result<()>, String>),
}

/// Polls `guest`, turning a panic in the host code it runs into an error
/// for its request alone, as a panicking task would have been.
fn poll_guest(
    guest: &mut Guest,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<wasmtime::Result<()>, String>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| guest.as_mut().poll(cx))) {
        Ok(poll) => poll.map(Ok),
        Err(panic) => Poll::Ready(Err(panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".into()))),
    }
}

struct Failure {
    status: u16,
    code: &'static str,
    message: &'static str,
    log: String,
}

impl Failure {
    fn internal(log: String) -> Self {
        Self {
            status: 500,
            code: "internal_error",
            message: "The service failed while handling this request.",
            log,
        }
    }

    /// Out of capacity (the service's max_concurrency or the instance
    /// pool): the client may retry shortly.
    fn overloaded(log: String) -> Self {
        Self {
            status: 503,
            code: "overloaded",
            message: "The service is at capacity; retry shortly.",
            log,
        }
    }

    fn into_response(self, request_id: &str) -> hyper::Response<HyperOutgoingBody> {
        let response = error_response(self.status, self.code, self.message, request_id);
        if self.status == 503 {
            with_header(response, http::header::RETRY_AFTER, "1")
        } else {
            response
        }
    }

    fn timeout(limit: std::time::Duration) -> Self {
        Self {
            status: 504,
            code: "timeout",
            message: "The service did not answer in time.",
            log: format!("no response within {limit:?}"),
        }
    }

    fn bad_request(log: String) -> Self {
        Self {
            status: 400,
            code: "bad_request",
            message: "The request could not be passed to the service.",
            log,
        }
    }
}

/// Reads `request`'s body up to the service's `max_body_bytes`, within its
/// request timeout.
async fn read_body<B>(
    request: hyper::Request<B>,
    service: &ServiceRuntime,
) -> Result<hyper::Request<Full<Bytes>>, Failure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(service.spec.max_body_bytes).unwrap_or(usize::MAX);
    let body = body.map_err(Into::<wasmtime_wasi_http::Error>::into);
    let limited = http_body_util::Limited::new(body, limit);
    let collected = tokio::time::timeout(service.spec.request_timeout, limited.collect())
        .await
        .map_err(|_| Failure {
            status: 408,
            code: "request_timeout",
            message: "The request body did not arrive in time.",
            log: "body not received within the request timeout".into(),
        })?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Failure {
                status: 413,
                code: "payload_too_large",
                message: "The request body is too large.",
                log: format!("body over {limit} bytes"),
            });
        }
        Err(e) => return Err(Failure::bad_request(format!("reading the body: {e}"))),
    };
    Ok(hyper::Request::from_parts(parts, Full::new(bytes)))
}

fn declared_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn ticks(timeout: std::time::Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// Gives every request an id before it reaches a guest, so the guest's log
/// lines and porto's agree on it; a usable id from the client is kept.
fn ensure_request_id<B>(request: &mut hyper::Request<B>) -> String {
    let valid = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(str::to_string);
    let id = valid.unwrap_or_else(new_request_id);
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    id
}

fn new_request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    format!(
        "{:016x}{:016x}",
        state.hash_one(n),
        state.hash_one(n.wrapping_add(1))
    )
}

fn with_header(
    mut response: hyper::Response<HyperOutgoingBody>,
    name: http::HeaderName,
    value: &'static str,
) -> hyper::Response<HyperOutgoingBody> {
    response
        .headers_mut()
        .insert(name, http::HeaderValue::from_static(value));
    response
}

/// porto's own JSON error, in the services' envelope.
pub fn error_response(
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> hyper::Response<HyperOutgoingBody> {
    // A server-side failure names its request id so a client can quote
    // the one log line that says what went wrong.
    let body = if status >= 500 {
        serde_json::json!({ "error": { "code": code, "message": message, "details": { "request_id": request_id } } })
    } else {
        serde_json::json!({ "error": { "code": code, "message": message } })
    }
    .to_string();
    let mut response = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}
