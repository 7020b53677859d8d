//! A guest's outbound `wasi:http` requests: the hooks of one instance.
//! Where a request may go is `policy::outbound`'s decision; this carries
//! it out: an allowed service's call is handed to that service in this
//! process (never a socket), an allowed host's goes over the network, and
//! a refusal is `HTTP-request-denied`, which the guest turns into its own
//! 5xx JSON error, and a warning in porto's log. Network calls are
//! `network`'s to make. Every call is counted
//! under the label the decision gives.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use opentelemetry::trace::SpanContext;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use tracing::Instrument as _;

use super::network::{self, Plaintext, Transport};
use crate::metrics::Metrics;
use crate::policy::outbound::{Route, route};
use crate::policy::service::ServiceConfig;
use crate::telemetry::{self, RequestSpan};

/// The services of this process, as outbound calls see them. The
/// dispatcher implements it; this module never names the dispatcher, so
/// the dispatcher can own the hooks that call back into it.
pub(crate) trait InProcess: Send + Sync + 'static {
    /// Whether this process runs a service called `name`.
    fn is_service(&self, name: &str) -> bool;
    /// Serves `request` by service `name`, as any request; always
    /// answers, with a JSON error if nothing else.
    fn call(self: Arc<Self>, name: &str, request: http::Request<WasiBody>) -> InProcessCall;
}

pub(crate) type InProcessCall =
    Pin<Box<dyn Future<Output = hyper::Response<HyperOutgoingBody>> + Send>>;

pub(crate) type Sent =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, Transport), Error>> + Send>;

pub(crate) struct Outbound {
    /// Weak: a kept instance holds its hooks, and the services hold their
    /// kept instances; a strong reference would keep a stopped stack alive.
    services: Weak<dyn InProcess>,
    metrics: Arc<Metrics>,
    caller: Arc<str>,
    rules: Arc<ServiceConfig>,
    request_id: Arc<str>,
    /// The span of the request this instance serves (none while a kept
    /// instance waits), and its trace context: every call it makes is a
    /// child, and carries that child as its `traceparent`.
    request_span: Option<RequestSpan>,
    trace: SpanContext,
}

impl Outbound {
    /// The hooks of one instance of `caller`, whose `allowed_services` and
    /// `allowed_hosts` in `rules` decide what it may call.
    pub(crate) fn new(
        services: Weak<dyn InProcess>,
        metrics: Arc<Metrics>,
        caller: Arc<str>,
        rules: Arc<ServiceConfig>,
        request_id: Arc<str>,
        request_span: RequestSpan,
        trace: SpanContext,
    ) -> Self {
        Self {
            services,
            metrics,
            caller,
            rules,
            request_id,
            request_span: Some(request_span),
            trace,
        }
    }

    /// The hooks of a WASI 0.3 instance itself, for calls no request of
    /// it makes: `caller`'s rules, no request id, no parent span.
    pub(crate) fn for_instance(
        services: Weak<dyn InProcess>,
        metrics: Arc<Metrics>,
        caller: Arc<str>,
        rules: Arc<ServiceConfig>,
    ) -> Self {
        Self {
            services,
            metrics,
            caller,
            rules,
            request_id: Arc::from(""),
            request_span: None,
            trace: SpanContext::empty_context(),
        }
    }

    /// Drops the request's span, which a kept instance would otherwise
    /// hold open until its next request.
    pub(crate) fn end_request(&mut self) {
        self.request_span = None;
    }

    /// The span the request runs in, when spans are exported.
    fn running_span(&self) -> tracing::Span {
        self.request_span
            .as_ref()
            .map_or_else(tracing::Span::none, RequestSpan::running)
    }

    fn deny(&self, label: &str, target: &str, why: &'static str) -> Sent {
        self.metrics.outbound(&self.caller, label, "denied");
        telemetry::log_in(self.request_span.as_ref(), || {
            tracing::warn!(
                service = %self.caller,
                request_id = %self.request_id,
                target,
                "outbound request denied: {why}"
            );
        });
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let port = request.uri().port_u16();
        let (span, trace) =
            telemetry::outbound_span(&self.caller, &host, &self.running_span(), &self.trace);
        telemetry::inject(&trace, request.headers_mut());
        let Some(services) = self.services.upgrade() else {
            // The stack has stopped: nothing in-process is left to call.
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        let routed = route(&self.rules, &host, port, services.is_service(&host));
        let (entry, h2c) = match routed {
            Route::Denied { why, .. } => return self.deny(routed.label(), &host, why),
            Route::Service(name) => {
                self.metrics.outbound(&self.caller, name, "in_process");
                let call = services.call(name, request);
                return Box::new(
                    async move {
                        let response = call.await;
                        let nothing_more: Transport = Box::new(async { Ok(()) });
                        Ok((response, nothing_more))
                    }
                    .instrument(span),
                );
            }
            Route::Network { entry, h2c } => (entry, h2c),
        };
        let plaintext = if h2c {
            Plaintext::H2c
        } else {
            Plaintext::Http1
        };
        let target: Arc<str> = entry.into();
        let (metrics, caller) = (self.metrics.clone(), self.caller.clone());
        Box::new(
            async move {
                let sent = network::send(request, options, plaintext).await;
                let outcome = if sent.is_ok() {
                    "network"
                } else {
                    "network_error"
                };
                metrics.outbound(&caller, &target, outcome);
                sent
            }
            .instrument(span),
        )
    }
}
