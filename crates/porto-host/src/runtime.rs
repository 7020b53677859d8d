//! The running application: every service, and the one path by which any
//! request — from a socket or from another guest — reaches a fresh
//! instance.
//!
//! [`Runtime::handle`] wraps a request in what every request gets, in
//! order: a span and its trace context, an `x-request-id`, a concurrency
//! slot, the head and body limits (`limits.rs`), then the guest
//! (`guest.rs`); whatever happens, a response comes back and is counted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use opentelemetry::trace::SpanContext;
use porto_kv::KvBackend;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::failure::{Failure, error_response};
use crate::limits;
use crate::metrics::{Metrics, route_class};
use crate::outbound::{InProcess, InProcessCall};
use crate::request_ids;
use crate::service::Service;
use crate::telemetry;

pub(crate) struct Runtime {
    pub engine: Engine,
    pub kv: Arc<dyn KvBackend>,
    pub metrics: Arc<Metrics>,
    services: HashMap<String, Arc<Service>>,
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
        service: &Arc<Service>,
        mut request: hyper::Request<B>,
        trace: &SpanContext,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let request_id = request_ids::ensure(&mut request);
        let Ok(_slot) = service.slots.clone().try_acquire_owned() else {
            tracing::warn!(service = %service.name, request_id, "at max_concurrency; refusing");
            return Failure::overloaded("at max_concurrency".into()).into_response(&request_id);
        };
        let limits = &service.config.limits;
        // The whole body is read before an instance exists: a slow client
        // cannot hold an instance, and a guest that answers early (413 at
        // its own limit) cannot leave the client writing into a closed
        // connection.
        let request = match limits::check_head(&request, limits) {
            Ok(()) => limits::read_body(request, limits).await,
            Err(refusal) => Err(refusal),
        };
        let request = match request {
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
