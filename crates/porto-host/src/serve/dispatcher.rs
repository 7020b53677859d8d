//! Every service of a stack, and the one path by which any request — from
//! a socket or from another guest — reaches an instance.
//!
//! [`Dispatcher::handle`] wraps a request in what every request gets, in
//! order: a span and its trace context, an `x-request-id`, the head and
//! body limits (`policy::limits`), a concurrency slot; then an instance (a
//! kept one when the service reuses instances and one is waiting, else a
//! fresh one) runs it (`instance::p2`), and the instance is kept or
//! dropped as `policy::reuse` says. Whatever happens, a response comes back
//! and is counted.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Body;
use opentelemetry::trace::SpanContext;
use porto_kv::KvBackend;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::buffered_body::Buffered;
use crate::failure::{Failure, error_response};
use crate::instance::component::Runner;
use crate::instance::host::Host;
use crate::instance::outbound::{InProcess, InProcessCall, Outbound};
use crate::instance::outcome::{GuestFailure, PoolRelief};
use crate::instance::p2::{self, Call, Instance, Kept, Ran, Rest};
use crate::instance::p3;
use crate::kv::KvView;
use crate::metrics::{Metrics, ServiceMetrics, route_class};
use crate::policy::limits;
use crate::policy::reuse::{Ending, Retired};
use crate::request_ids::{self, RequestId};
use crate::serve::service::Service;
use crate::serve::worker::current_worker;
use crate::telemetry::{self, RequestSpan};

pub(crate) struct Dispatcher {
    pub engine: Engine,
    pub kv: Arc<dyn KvBackend>,
    pub metrics: Arc<Metrics>,
    services: HashMap<String, Arc<Service>>,
    /// The bytes every buffered request body may take together.
    body_budget: Arc<Semaphore>,
}

impl Dispatcher {
    pub(crate) fn new(
        engine: Engine,
        kv: Arc<dyn KvBackend>,
        metrics: Arc<Metrics>,
        services: Vec<Service>,
    ) -> Self {
        Self {
            engine,
            kv,
            metrics,
            services: services
                .into_iter()
                .map(|s| (s.name.to_string(), Arc::new(s)))
                .collect(),
            body_budget: Arc::new(Semaphore::new(limits::MAX_BUFFERED_BODY_BYTES)),
        }
    }

    pub(crate) fn service(&self, name: &str) -> Option<Arc<Service>> {
        self.services.get(name).cloned()
    }

    /// Every service, by name.
    pub(crate) fn services(&self) -> Vec<Arc<Service>> {
        let mut all: Vec<_> = self.services.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Runs one request through an instance of `service`. Failures of the
    /// guest (trap, timeout, no response) become JSON errors here, so
    /// callers always get a response.
    pub(crate) async fn handle<B>(
        self: &Arc<Self>,
        service: &Arc<Service>,
        mut request: hyper::Request<B>,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = std::time::Instant::now();
        let route = route_class(request.method(), request.uri().path());
        let (span, trace) = telemetry::request_span(&service.name, route, request.headers());
        // The guest sees its own span as the parent of what it does.
        telemetry::inject(&trace, request.headers_mut());
        let response = self
            .answer(service, request, &span, &trace)
            .instrument(span.running())
            .await;
        let (status, took) = (response.status().as_u16(), started.elapsed());
        span.record_status(status);
        service.stats.record(status, took);
        self.metrics
            .observe_request(&service.name, &service.requests, span.route(), status, took);
        response
    }

    async fn answer<B>(
        self: &Arc<Self>,
        service: &Arc<Service>,
        mut request: hyper::Request<B>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let RequestId {
            text: request_id,
            header: request_id_header,
        } = request_ids::ensure(&mut request);
        name_the_host(service, &mut request);
        let grpc = crate::failure::is_grpc(request.headers());
        let limits = &service.config.limits;
        // The whole body is read before an instance exists, and before a
        // concurrency slot is taken: a slow client holds a connection and
        // its bytes (both bounded, see limits.rs), never an instance or a
        // slot a fast request needs; and a guest that answers early (413
        // at its own limit) cannot leave the client writing into a closed
        // connection.
        let read = match limits::check_head(&request, limits) {
            Ok(()) => limits::read_body(request, limits, &self.body_budget).await,
            Err(refusal) => Err(refusal),
        };
        let (request, _body_bytes) = match read {
            Ok(read) => read,
            Err(refusal) => return self.refuse(service, refusal, &request_id, span, grpc),
        };
        let Some(_slot) = limits::take_slot(&service.slots, limits).await else {
            let refusal = Failure::overloaded("max_concurrency", "no slot came free".into());
            return self.refuse(service, refusal, &request_id, span, grpc);
        };
        match self
            .run_guest(service, request, request_id.clone(), span, trace)
            .await
            .map_err(|GuestFailure { kind, failure }| {
                if let Some(kind) = kind {
                    self.metrics.guest_failure(&service.name, &kind);
                }
                failure
            }) {
            Ok(mut response) => {
                // Every answer names its request, the guest's included; a
                // guest's own id header wins.
                response
                    .headers_mut()
                    .entry(request_id::HEADER)
                    .or_insert(request_id_header);
                response
            }
            // The client's fault or a capacity limit: not an error of porto's.
            Err(failure) if failure.status < 500 || failure.refused_by.is_some() => {
                self.refuse(service, failure, &request_id, span, grpc)
            }
            Err(failure) => {
                span.log(|| {
                    tracing::error!(service = %service.name, request_id = &*request_id, "{}", failure.log);
                });
                failure.into_response(&request_id, grpc)
            }
        }
    }

    /// Answers a request porto turned away before or instead of running
    /// it. Refusals at a capacity limit are counted, not logged one by
    /// one: under a flood, a line per refused request would cost more than
    /// the refusal itself.
    fn refuse(
        &self,
        service: &Service,
        refusal: Failure,
        request_id: &str,
        span: &RequestSpan,
        grpc: bool,
    ) -> hyper::Response<HyperOutgoingBody> {
        match refusal.refused_by {
            Some(limit) => self.shed(service, limit),
            // A span is made for the line only if the line is written: a
            // flood of bad requests must not cost one per request.
            None if tracing::enabled!(tracing::Level::DEBUG) => {
                span.log(|| {
                    tracing::debug!(service = %service.name, request_id, status = refusal.status, "{}", refusal.log);
                });
            }
            None => {}
        }
        refusal.into_response(request_id, grpc)
    }

    /// Counts a connection turned away at the connection limit.
    pub(crate) fn refuse_connection(&self, service: &Service) {
        self.shed(service, "connections");
    }

    /// Counts a connection of `service` that speaks `protocol` (its
    /// metrics label); returns the counter of the requests it brings.
    pub(crate) fn opened_connection(
        &self,
        service: &Service,
        protocol: &'static str,
        tls: bool,
    ) -> Counter {
        self.metrics.opened_connection(&service.name, protocol, tls)
    }

    /// Counts a client that failed its TLS handshake, and says so once per
    /// report interval (a scanner or a misconfigured client fails every
    /// attempt).
    pub(crate) fn failed_handshake(&self, service: &Service, why: &str) {
        self.metrics.failed_handshake(&service.name);
        if let Some(failed) = service.failed_handshakes.refused_since_last_report() {
            tracing::warn!(service = %service.name, failed, last_error = why, "TLS handshakes failed since the last report");
        }
    }

    fn shed(&self, service: &Service, limit: &'static str) {
        self.metrics.shed(&service.name, limit);
        if let Some(refused) = service.shedding.refused_since_last_report() {
            tracing::warn!(service = %service.name, limit, refused, "shedding load: refused at capacity since the last report");
        }
    }
}

impl Dispatcher {
    /// Runs `request` in an instance of `service`, then keeps or drops
    /// the instance: at once when its guest has ended, else from a task
    /// once it does.
    async fn run_guest(
        self: &Arc<Self>,
        service: &Arc<Service>,
        request: hyper::Request<Buffered>,
        request_id: Arc<str>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> Result<hyper::Response<HyperOutgoingBody>, GuestFailure> {
        let component = service.current();
        if let Runner::Wasip3(p3) = &component.runner {
            let call = p3::Call {
                outbound: self.outbound(service, request_id.clone(), span, trace),
                request_id,
                span: span.clone(),
            };
            return p3::run(
                p3,
                current_worker(),
                || self.p3_serving(service),
                call,
                request,
            )
            .await;
        }
        let reusing = service.config.reuse.enabled();
        let instance = self.instance_for(service, component.generation, request_id, span, trace);
        let call = Call {
            component,
            timeout: service.config.limits.request_timeout,
            metrics: self.service_metrics(service),
            relief: self.clone(),
            reusing,
        };
        let Ran { answer, rest } = p2::run(call, instance, request).await;
        match rest {
            Rest::Ended(kept) => self.settle(service, kept),
            Rest::Running(rest) => {
                let (dispatcher, service) = (self.clone(), service.clone());
                tokio::spawn(async move {
                    let kept = rest.await;
                    dispatcher.settle(&service, kept);
                });
            }
        }
        answer
    }

    fn service_metrics(&self, service: &Service) -> ServiceMetrics {
        service
            .metrics
            .get_or_init(|| self.metrics.for_service(&service.name))
            .clone()
    }

    /// Other services of this process, as outbound hooks reach them.
    fn in_process(self: &Arc<Self>) -> Weak<dyn InProcess> {
        let this: Weak<Self> = Arc::downgrade(self);
        this
    }

    /// The outbound hooks of one request of `service`.
    fn outbound(
        self: &Arc<Self>,
        service: &Service,
        request_id: Arc<str>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> Outbound {
        Outbound::new(
            self.in_process(),
            self.metrics.clone(),
            service.name.clone(),
            service.config.clone(),
            request_id,
            span.clone(),
            trace.clone(),
        )
    }

    /// What `service`'s instances may reach of the key-value store.
    fn kv_view(&self, service: &Service) -> KvView {
        KvView {
            backend: self.kv.clone(),
            buckets: service.buckets.clone(),
            service: service.name.clone(),
        }
    }

    /// What the workers of a WASI 0.3 `service` make its instances with.
    fn p3_serving(self: &Arc<Self>, service: &Service) -> p3::Serving {
        p3::Serving {
            service: service.name.clone(),
            config: service.config.clone(),
            kv: self.kv_view(service),
            services: self.in_process(),
            metrics: self.metrics.clone(),
            service_metrics: self.service_metrics(service),
            relief: self.clone(),
        }
    }

    /// A kept instance of `service`'s current component made ready for
    /// this request, or a fresh one.
    fn instance_for(
        self: &Arc<Self>,
        service: &Service,
        generation: u64,
        request_id: Arc<str>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> Instance {
        let outbound = self.outbound(service, request_id.clone(), span, trace);
        if service.config.reuse.enabled() {
            let taken = service.kept.take(current_worker(), generation);
            self.metrics
                .retired(&service.name, Retired::Reloaded, taken.stale);
            if let Some(kept) = taken.item {
                return kept.begin_request(request_id, span.clone(), outbound);
            }
        }
        let host = Host::new(
            service.name.clone(),
            &service.config,
            request_id,
            Some(span.clone()),
            self.kv_view(service),
            outbound,
        );
        Instance::fresh(&self.engine, host)
    }

    /// Keeps the instance a request left (`None`: it failed) for the
    /// service's next request, if its reuse policy says so; counts why not.
    fn settle(&self, service: &Service, kept: Option<Kept>) {
        let policy = &service.config.reuse;
        if !policy.enabled() {
            return;
        }
        let ending = match &kept {
            Some(kept) => Ending {
                clean: true,
                served: kept.served(),
                memory_bytes: kept.memory_bytes(),
            },
            None => Ending {
                clean: false,
                served: 0,
                memory_bytes: 0,
            },
        };
        match (policy.after_request(ending), kept) {
            (Ok(()), Some(mut kept)) => {
                kept.end_request();
                let generation = kept.generation();
                service
                    .kept
                    .put(current_worker(), generation, kept, Instant::now());
            }
            (Err(why), _) => self.metrics.retired(&service.name, why, 1),
            // Not clean is never kept.
            (Ok(()), None) => {}
        }
    }
}

/// HTTP/1.0 lets a request leave out `Host`, but a guest is owed an
/// authority (wasi:http): such a request is addressed to the service.
fn name_the_host<B>(service: &Service, request: &mut hyper::Request<B>) {
    let unnamed = request.version() <= http::Version::HTTP_10
        && request.uri().authority().is_none()
        && !request.headers().contains_key(http::header::HOST);
    if unnamed && let Ok(host) = http::HeaderValue::from_str(&service.name) {
        request.headers_mut().insert(http::header::HOST, host);
    }
}

impl InProcess for Dispatcher {
    fn is_service(&self, name: &str) -> bool {
        self.services.contains_key(name)
    }

    fn call(self: Arc<Self>, name: &str, request: http::Request<WasiBody>) -> InProcessCall {
        let target = self.service(name);
        Box::pin(async move {
            match target {
                Some(target) => self.handle(&target, request).await,
                None => error_response(
                    502,
                    "upstream_unavailable",
                    "No such service.",
                    request
                        .headers()
                        .get(request_id::HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                ),
            }
        })
    }
}

impl PoolRelief for Dispatcher {
    fn drop_kept(&self) -> usize {
        self.services()
            .iter()
            .map(|service| {
                let dropped = service.kept.clear();
                self.metrics
                    .retired(&service.name, Retired::PoolFull, dropped);
                dropped
            })
            .sum()
    }
}

/// Drops kept instances once they have been idle for their service's
/// `idle_timeout`, checking a few times per timeout, for as long as the
/// dispatcher lives.
pub(crate) async fn expire_idle(dispatcher: Weak<Dispatcher>) {
    let reusing: Vec<Arc<Service>> = match dispatcher.upgrade() {
        Some(d) => d
            .services()
            .into_iter()
            .filter(|s| s.config.reuse.enabled())
            .collect(),
        None => return,
    };
    let Some(shortest) = reusing.iter().map(|s| s.config.reuse.idle_timeout).min() else {
        return;
    };
    let mut ticks = tokio::time::interval(
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(dispatcher) = dispatcher.upgrade() else {
            return;
        };
        let now = Instant::now();
        for service in &reusing {
            let reuse = &service.config.reuse;
            let expired = service.kept.expire(now, |idle| reuse.expired(idle));
            dispatcher
                .metrics
                .retired(&service.name, Retired::Idle, expired);
        }
    }
}
