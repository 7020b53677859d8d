//! Outbound `wasi:http` from a guest: in-process calls and the allow-lists.
//!
//! A request to a Compose service name (`http://user-service`, any port)
//! never touches a socket: it is handed to that service's component in
//! this process, as a new instance with its own store. It is allowed only
//! if the caller lists the target in `depends_on` (or
//! `x-porto.allow_services`). A request to any other host goes over the
//! network only if the host is in `x-porto.allow_hosts`. Everything else
//! is refused with `HTTP-request-denied`, which the guest turns into its
//! own 5xx JSON error, and porto logs the refusal.
//!
//! `porto_outbound_requests_total` names a target only from fixed sets: a
//! service, the `allow_hosts` entry that let a network call out (`*`, not
//! whatever host a guest allowed `*` made up), or `other` for a refusal.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use opentelemetry::trace::SpanContext;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use tracing::Instrument as _;

use crate::config::ServiceConfig;
use crate::metrics::Metrics;
use crate::telemetry::{self, RequestSpan};

/// The services of this process, as outbound calls see them. The runtime
/// implements it; this module never names the runtime, so the runtime can
/// own the hooks that call back into it.
pub(crate) trait InProcess: Send + Sync + 'static {
    /// Whether this process runs a service called `name`.
    fn is_service(&self, name: &str) -> bool;
    /// Serves `request` by service `name` in a fresh instance; always
    /// answers, with a JSON error if nothing else.
    fn call(self: Arc<Self>, name: &str, request: http::Request<WasiBody>) -> InProcessCall;
}

pub(crate) type InProcessCall =
    Pin<Box<dyn Future<Output = hyper::Response<HyperOutgoingBody>> + Send>>;

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

pub(crate) struct Outbound {
    services: Arc<dyn InProcess>,
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
    pub fn new(
        services: Arc<dyn InProcess>,
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

    /// Drops the request's span, which a kept instance would otherwise
    /// hold open until its next request.
    pub fn end_request(&mut self) {
        self.request_span = None;
    }

    /// The span the request runs in, when spans are exported.
    fn running_span(&self) -> tracing::Span {
        self.request_span
            .as_ref()
            .map_or_else(tracing::Span::none, RequestSpan::running)
    }

    fn deny(&self, target: &str, why: &'static str) -> Sent {
        // Any host name a guest makes up would be a new label: only
        // services are named.
        let label = if self.services.is_service(target) {
            target
        } else {
            "other"
        };
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

/// The `allow_hosts` entry that lets `host[:port]` out, if one does
/// (`host` allows every port, `host:port` only that one, `*` any host: for
/// a front end whose network is already the boundary, as a container's is).
fn allowing_entry<'a>(allowed: &'a [String], host: &str, port: Option<u16>) -> Option<&'a str> {
    allowed
        .iter()
        .find(|entry| match entry.rsplit_once(':') {
            _ if entry.as_str() == "*" => true,
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                h.eq_ignore_ascii_case(host) && port == p.parse().ok()
            }
            _ => entry.eq_ignore_ascii_case(host),
        })
        .map(String::as_str)
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
        if self.services.is_service(&host) {
            if !self.rules.allowed_services.contains(&host) {
                return self.deny(&host, "not in depends_on or x-porto.allow_services");
            }
            self.metrics.outbound(&self.caller, &host, "in_process");
            let call = self.services.clone().call(&host, request);
            return Box::new(
                async move {
                    let response = call.await;
                    let io: Box<dyn Future<Output = Result<(), Error>> + Send> =
                        Box::new(async { Ok(()) });
                    Ok((response, io))
                }
                .instrument(span),
            );
        }
        let Some(entry) = allowing_entry(&self.rules.allowed_hosts, &host, port) else {
            return self.deny(&host, "not a service and not in x-porto.allow_hosts");
        };
        let target: Arc<str> = entry.into();
        let (metrics, caller) = (self.metrics.clone(), self.caller.clone());
        Box::new(
            async move {
                use http_body_util::BodyExt;
                let sent = wasmtime_wasi_http::default_send_request(request, options).await;
                let outcome = if sent.is_ok() {
                    "network"
                } else {
                    "network_error"
                };
                metrics.outbound(&caller, &target, outcome);
                let (response, io) = sent?;
                let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
                Ok((response.map(BodyExt::boxed_unsync), io))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::allowing_entry;
    use crate::metrics::Metrics;

    #[test]
    fn host_rules() {
        let allowed = vec!["api.example.com".to_string(), "cache:6380".to_string()];
        let allows = |host, port| allowing_entry(&allowed, host, port).is_some();
        assert!(allows("api.example.com", Some(443)));
        assert!(allows("API.example.com", None));
        assert!(allows("cache", Some(6380)));
        assert!(!allows("cache", Some(6379)));
        assert!(!allows("evil.example.com", None));
        assert!(allowing_entry(&[], "anything", None).is_none());
        assert!(allowing_entry(&["*".to_string()], "anything", Some(80)).is_some());
    }

    #[test]
    fn a_call_is_labelled_by_the_entry_that_allowed_it() {
        let allowed = vec!["cache:6380".to_string(), "*".to_string()];
        assert_eq!(
            allowing_entry(&allowed, "CACHE", Some(6380)),
            Some("cache:6380")
        );
        assert_eq!(allowing_entry(&allowed, "cache", Some(6379)), Some("*"));
        assert_eq!(allowing_entry(&allowed, "h1.example", None), Some("*"));
    }

    /// A guest allowed `*` that calls 5,000 made-up hosts adds one series
    /// per outcome, not one per host.
    #[test]
    fn made_up_hosts_add_no_series() {
        let metrics = Metrics::new();
        let allowed = vec!["*".to_string()];
        for i in 0..5_000 {
            let host = format!("h{i}.example");
            let target = allowing_entry(&allowed, &host, None).expect("allowed");
            let outcome = if i % 2 == 0 {
                "network"
            } else {
                "network_error"
            };
            metrics.outbound("caller", target, outcome);
        }
        let text = metrics.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("porto_outbound_requests_total{"))
            .collect();
        assert_eq!(series.len(), 2, "{series:?}");
        assert!(
            series.iter().all(|s| s.contains("target=\"*\"")),
            "{series:?}"
        );
    }
}
