//! Logs and traces: one `tracing` subscriber with two outputs.
//!
//! - Log lines (text or JSON) on stderr, filtered by `--log`.
//! - Traces. W3C `traceparent` is taken from an incoming request or a
//!   trace is started, and porto writes it onto every call a guest makes,
//!   in-process or over the network, so a request through the gateway is
//!   one trace. When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every request
//!   is an OpenTelemetry `request` span and every outbound call an
//!   `outbound` span, exported by OTLP (HTTP/JSON). Otherwise porto only
//!   carries the trace context along and gives log lines their
//!   `trace_id`: building OpenTelemetry spans nobody exports cost ~10 % of
//!   a hello-world request (BENCHMARKS.md).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId, TracerProvider as _,
};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Spans porto makes for tracing, whatever the log filter says.
pub(crate) const TARGET: &str = "porto::trace";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Whether spans are exported, set once by [`init`].
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Flushes exported spans when dropped (at exit).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber (once per process; later calls change
/// nothing). An OTLP endpoint that cannot be used is reported and tracing
/// continues without export.
pub fn init(filter: &str, format: LogFormat) -> Telemetry {
    let wants_detail = filter.contains("debug") || filter.contains("trace");
    // Log lines inside a request carry its span's fields (service, route,
    // trace_id) whatever the filter.
    let mut filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if let Ok(directive) = format!("{TARGET}=info").parse() {
        filter = filter.add_directive(directive);
    }
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder_empty().with_service_name("porto").build());
    let (mut exporting, mut export_problem) = (false, None);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        use opentelemetry_otlp::{Protocol, WithExportConfig};
        // The HTTP client is built on rustls without a default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .build()
        {
            Ok(exporter) => {
                provider = provider.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => export_problem = Some(e.to_string()),
        }
    }
    let provider = provider.build();
    EXPORTING.store(exporting, Ordering::Relaxed);
    let spans = exporting.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("porto"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target() == TARGET
            }))
    });
    // Colour only for a person at a terminal, not in files and pipes.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    // The subscriber is installed before `log` records are routed to it;
    // where the embedding process already gave `log` a logger of its own
    // (a containerd shim does), those records stay with it.
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .try_init();
    // Dependencies that log through the `log` crate (wasmtime among them)
    // do so at info level per instance; forwarding those records costs ~5 %
    // of a request. Only warnings pass unless a debug filter asks for more.
    if !wants_detail {
        log::set_max_level(log::LevelFilter::Warn);
    }
    if let Some(problem) = export_problem {
        tracing::warn!("OTLP export disabled: {problem}");
    }
    Telemetry { provider }
}

/// One request's span. When spans are exported it is a real span for the
/// request's whole life. Otherwise nothing is built per request: a log line
/// written inside the request is written in a span made for it then, with
/// the same name and fields, so log lines look the same either way
/// (building and entering a span per request that nobody exports cost ~5 %
/// of a hello request, BENCHMARKS.md).
#[derive(Clone)]
pub(crate) struct RequestSpan(Arc<RequestSpanFields>);

struct RequestSpanFields {
    service: Arc<str>,
    route: String,
    trace_id: TraceId,
    exported: Option<tracing::Span>,
}

impl RequestSpan {
    /// The request's route class.
    pub(crate) fn route(&self) -> &str {
        &self.0.route
    }

    /// The span the request runs in: the exported one, or none.
    pub(crate) fn running(&self) -> tracing::Span {
        self.0.exported.clone().unwrap_or_else(tracing::Span::none)
    }

    /// Runs `log`, which writes log lines about this request, in its span.
    pub(crate) fn log<R>(&self, log: impl FnOnce() -> R) -> R {
        self.for_log().in_scope(log)
    }

    /// The span a log line of this request is written in.
    fn for_log(&self) -> tracing::Span {
        match &self.0.exported {
            Some(span) => span.clone(),
            None => tracing::info_span!(
                target: TARGET,
                "request",
                service = &*self.0.service,
                route = self.0.route.as_str(),
                trace_id = %self.0.trace_id,
            ),
        }
    }

    /// Records the status the request was answered with (on an exported
    /// span: log lines do not carry it).
    pub(crate) fn record_status(&self, status: u16) {
        if let Some(span) = &self.0.exported {
            span.record("http.response.status_code", status);
        }
    }
}

/// Runs `log` in the span of `request`, or outside any when there is none
/// (a kept instance between requests).
pub(crate) fn log_in<R>(request: Option<&RequestSpan>, log: impl FnOnce() -> R) -> R {
    match request {
        Some(request) => request.log(log),
        None => log(),
    }
}

/// The span of one request to `service` on `route`, and the trace context
/// its instance's calls continue: a child of the request's `traceparent`,
/// or the root of a new trace.
pub(crate) fn request_span(
    service: &Arc<str>,
    route: String,
    headers: &http::HeaderMap,
) -> (RequestSpan, SpanContext) {
    if EXPORTING.load(Ordering::Relaxed) {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let span = tracing::info_span!(
            target: TARGET,
            "request",
            otel.name = %format_args!("{service} {route}"),
            otel.kind = "server",
            service = &**service,
            route = route.as_str(),
            trace_id = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        let _ = span.set_parent(parent);
        let context = span.context().span().span_context().clone();
        span.record("trace_id", tracing::field::display(context.trace_id()));
        let fields = RequestSpanFields {
            service: service.clone(),
            route,
            trace_id: context.trace_id(),
            exported: Some(span),
        };
        return (RequestSpan(Arc::new(fields)), context);
    }
    let context = if let Some(parent) = extract(headers) {
        child_of(&parent)
    } else {
        let ids = RandomIdGenerator::default();
        SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            Default::default(),
        )
    };
    let fields = RequestSpanFields {
        service: service.clone(),
        route,
        trace_id: context.trace_id(),
        exported: None,
    };
    (RequestSpan(Arc::new(fields)), context)
}

/// The span of an outbound call made by the request of `parent_span`, and
/// the trace context the call carries. Without export the call needs no
/// span of its own: only a new span id.
pub(crate) fn outbound_span(
    caller: &str,
    target_host: &str,
    parent_span: &tracing::Span,
    parent: &SpanContext,
) -> (tracing::Span, SpanContext) {
    if EXPORTING.load(Ordering::Relaxed) {
        let span = tracing::info_span!(
            target: TARGET,
            parent: parent_span,
            "outbound",
            otel.name = %format_args!("{caller} -> {target_host}"),
            otel.kind = "client",
            service = caller,
            target_host,
        );
        let context = span.context().span().span_context().clone();
        return (span, context);
    }
    (tracing::Span::none(), child_of(parent))
}

/// A new span in `parent`'s trace, as its child.
fn child_of(parent: &SpanContext) -> SpanContext {
    SpanContext::new(
        parent.trace_id(),
        RandomIdGenerator::default().new_span_id(),
        parent.trace_flags(),
        false,
        parent.trace_state().clone(),
    )
}

/// Writes `context` as the `traceparent` (and a non-empty `tracestate`) of
/// `headers`, in the W3C format OpenTelemetry's propagator writes, without
/// building the `Context` it takes: this runs for every request and every
/// call a guest makes.
pub(crate) fn inject(context: &SpanContext, headers: &mut http::HeaderMap) {
    if !context.is_valid() {
        return;
    }
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags() & TraceFlags::SAMPLED
    );
    if let Ok(value) = http::HeaderValue::try_from(traceparent) {
        headers.insert(TRACEPARENT, value);
    }
    let state = context.trace_state().header();
    match http::HeaderValue::try_from(state) {
        Ok(value) if !value.is_empty() => {
            headers.insert(TRACESTATE, value);
        }
        // An incoming request's own tracestate never outlives its traceparent.
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// The trace context a request or call brings, if it brings one.
fn extract(headers: &http::HeaderMap) -> Option<SpanContext> {
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let context = parent.span().span_context().clone();
    context.is_valid().then_some(context)
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN: &str = "00f067aa0ba902b7";

    fn traceparent(headers: &http::HeaderMap) -> Vec<String> {
        let value = headers["traceparent"].to_str().expect("ascii");
        value.split('-').map(str::to_string).collect()
    }

    #[test]
    fn a_request_continues_the_callers_trace_without_export() {
        let mut headers = http::HeaderMap::new();
        let given = format!("00-{TRACE}-{PARENT_SPAN}-01");
        headers.insert("traceparent", given.parse().expect("header"));
        let (_span, context) = request_span(
            &Arc::from("user-service"),
            "GET /api/users/:id".into(),
            &headers,
        );
        assert_eq!(context.trace_id().to_string(), TRACE);
        assert_ne!(context.span_id().to_string(), PARENT_SPAN);

        let mut to_guest = http::HeaderMap::new();
        inject(&context, &mut to_guest);
        let parts = traceparent(&to_guest);
        assert_eq!(parts[1], TRACE);
        assert_eq!(parts[2], context.span_id().to_string());
        assert_eq!(parts[3], "01");

        let (_, call) = outbound_span(
            "api-gateway",
            "user-service",
            &tracing::Span::none(),
            &context,
        );
        let mut outbound = http::HeaderMap::new();
        inject(&call, &mut outbound);
        let parts = traceparent(&outbound);
        assert_eq!(parts[1], TRACE, "the call stays in the trace");
        assert_ne!(
            parts[2],
            context.span_id().to_string(),
            "as a span of its own"
        );
    }

    #[test]
    fn tracestate_travels_with_its_traceparent_only() {
        let mut headers = http::HeaderMap::new();
        let given = format!("00-{TRACE}-{PARENT_SPAN}-01");
        headers.insert("traceparent", given.parse().expect("header"));
        headers.insert("tracestate", "vendor=abc".parse().expect("header"));
        let (_, context) = request_span(&Arc::from("hello"), "GET /".into(), &headers);
        inject(&context, &mut headers);
        assert_eq!(headers["tracestate"], "vendor=abc");

        // A tracestate without a usable traceparent belongs to no trace.
        let mut orphan = http::HeaderMap::new();
        orphan.insert("tracestate", "vendor=abc".parse().expect("header"));
        let (_, context) = request_span(&Arc::from("hello"), "GET /".into(), &orphan);
        inject(&context, &mut orphan);
        assert!(orphan.get("tracestate").is_none(), "{orphan:?}");
        assert_eq!(traceparent(&orphan)[1], context.trace_id().to_string());
    }

    #[test]
    fn a_request_without_traceparent_starts_a_sampled_trace() {
        let hello: Arc<str> = Arc::from("hello");
        let (_, first) = request_span(&hello, "GET /".into(), &http::HeaderMap::new());
        let (_, second) = request_span(&hello, "GET /".into(), &http::HeaderMap::new());
        assert!(first.is_valid() && first.is_sampled());
        assert_ne!(first.trace_id(), second.trace_id());

        let mut malformed = http::HeaderMap::new();
        malformed.insert("traceparent", "00-not-a-trace-01".parse().expect("header"));
        let (_, context) = request_span(&hello, "GET /".into(), &malformed);
        assert!(context.is_valid());
    }
}
