//! The running application: every service, and the one path by which any
//! request — from a socket or from another guest — reaches a fresh
//! instance.
//!
//! [`Runtime::handle`] wraps a request in what every request gets, in
//! order: a span and its trace context, an `x-request-id`, the head and
//! body limits (`limits.rs`), a concurrency slot, then the guest
//! (`guest.rs`); whatever happens, a response comes back and is counted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use opentelemetry::trace::SpanContext;
use porto_kv::KvBackend;
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::failure::{Failure, error_response};
use crate::limits;
use crate::metrics::{Metrics, route_class};
use crate::outbound::{InProcess, InProcessCall};
use crate::request_ids::{self, RequestId};
use crate::service::Service;
use crate::telemetry::{self, RequestSpan};

pub(crate) struct Runtime {
    pub engine: Engine,
    pub kv: Arc<dyn KvBackend>,
    pub metrics: Arc<Metrics>,
    services: HashMap<String, Arc<Service>>,
    /// The bytes every buffered request body may take together.
    body_budget: Arc<Semaphore>,
}

impl Runtime {
    pub fn new(
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

    pub fn service(&self, name: &str) -> Option<Arc<Service>> {
        self.services.get(name).cloned()
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<Arc<Service>> {
        let mut all: Vec<_> = self.services.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Runs one request through a fresh instance of `service`. Failures of
    /// the guest (trap, timeout, no response) become JSON errors here, so
    /// callers always get a response.
    pub async fn handle<B>(
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
            Err(refusal) => return self.refuse(service, refusal, &request_id, span),
        };
        let Some(_slot) = limits::take_slot(&service.slots, limits).await else {
            let refusal = Failure::overloaded("max_concurrency", "no slot came free".into());
            return self.refuse(service, refusal, &request_id, span);
        };
        match self
            .run_guest(service, request, request_id.clone(), span, trace)
            .await
        {
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
            Err(failure) if failure.status < 500 || failure.shed.is_some() => {
                self.refuse(service, failure, &request_id, span)
            }
            Err(failure) => {
                span.log(|| {
                    tracing::error!(service = %service.name, request_id = &*request_id, "{}", failure.log);
                });
                failure.into_response(&request_id)
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
    ) -> hyper::Response<HyperOutgoingBody> {
        match refusal.shed {
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
        refusal.into_response(request_id)
    }

    /// Counts a connection turned away at the connection limit.
    pub fn refuse_connection(&self, service: &Service) {
        self.shed(service, "connections");
    }

    fn shed(&self, service: &Service, limit: &'static str) {
        self.metrics.shed(&service.name, limit);
        if let Some(refused) = service.shedding.refused_since_last_report() {
            tracing::warn!(service = %service.name, limit, refused, "shedding load: refused at capacity since the last report");
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

impl InProcess for Runtime {
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
