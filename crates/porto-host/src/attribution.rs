//! Which request an instance is serving now: what its output and porto's
//! own log lines about it (key-value warnings) are logged under. A kept
//! instance is attributed to each of its requests in turn.

use std::sync::{Arc, RwLock};

use crate::telemetry::{self, RequestSpan};

/// The request an instance is serving now, which its output (and porto's
/// log lines about it) is logged under.
pub(crate) struct Attribution {
    pub request_id: Arc<str>,
    /// The request's span: wasmtime writes guest output from its own
    /// task, so the span is carried here rather than found current. None
    /// while a kept instance waits for its next request.
    pub span: Option<RequestSpan>,
}

impl Attribution {
    pub(crate) fn new(request_id: Arc<str>, span: Option<RequestSpan>) -> Arc<RwLock<Attribution>> {
        Arc::new(RwLock::new(Self { request_id, span }))
    }

    /// Runs `log`, which writes log lines about the request `attribution`
    /// names now, in that request's span (outside any between requests).
    pub(crate) fn log<R>(
        attribution: &RwLock<Attribution>,
        log: impl FnOnce(&Attribution) -> R,
    ) -> R {
        let attribution = attribution.read().unwrap_or_else(|p| p.into_inner());
        telemetry::log_in(attribution.span.as_ref(), || log(&attribution))
    }
}
