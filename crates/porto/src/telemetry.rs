//! Logs and traces: one `tracing` subscriber with two outputs.
//!
//! - Log lines (text or JSON) on stderr, filtered by `--log`.
//! - Spans, through OpenTelemetry: every request is a `request` span and
//!   every outbound call an `outbound` span. W3C `traceparent` is taken
//!   from an incoming request or a trace is started, and porto writes it
//!   onto every call a guest makes, in-process or over the network, so a
//!   request through the gateway is one trace. Spans are exported by OTLP
//!   (HTTP/JSON) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise they
//!   only give the log lines their `trace_id`.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal as _;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Spans porto makes for tracing, whatever the log filter says.
pub const TARGET: &str = "porto::trace";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flushes exported spans when dropped (at exit).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. An OTLP endpoint that cannot be used
/// is reported and tracing continues without export.
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
    let mut export_problem = None;
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        use opentelemetry_otlp::{Protocol, WithExportConfig};
        // The HTTP client is built on rustls without a default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .build()
        {
            Ok(exporter) => provider = provider.with_batch_exporter(exporter),
            Err(e) => export_problem = Some(e.to_string()),
        }
    }
    let provider = provider.build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("porto"))
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == TARGET
        }));
    // Colour only for a person at a terminal, not in files and pipes.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .init();
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

/// Makes `span` a child of the `traceparent` in `headers` (if any) and
/// returns its trace id.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) -> String {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    trace_id(span)
}

/// Writes `span` as the `traceparent` (and `tracestate`) of `headers`.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}
