//! What porto answers when no guest answer can be given: one type,
//! [`Failure`], rendered in the services' JSON error envelope.
//!
//! A 4xx says what was wrong with the request; a 5xx says only that the
//! service failed, plus the request id, so a client can quote the one log
//! line (`log`) that says why. A gRPC call gets the same failure as a gRPC
//! status instead ([`Failure::into_response`]), which its client reads
//! where an HTTP status would only map to `UNKNOWN` or `UNAVAILABLE`.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

#[derive(Clone)]
pub(crate) struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
    /// For porto's log, never for the client.
    pub log: String,
    /// The capacity limit that refused the request (a 503 `overloaded`),
    /// as the shed counter names it; none for any other failure.
    pub refused_by: Option<&'static str>,
}

impl Failure {
    pub(crate) fn internal(log: String) -> Self {
        Self {
            status: 500,
            code: "internal_error",
            message: "The service failed while handling this request.",
            log,
            refused_by: None,
        }
    }

    /// Out of capacity (the service's max_concurrency, the instance pool,
    /// the memory for request bodies): the client may retry shortly.
    /// `limit` names the limit for the shed counter.
    pub(crate) fn overloaded(limit: &'static str, log: String) -> Self {
        Self {
            status: 503,
            code: "overloaded",
            message: "The service is at capacity; retry shortly.",
            log,
            refused_by: Some(limit),
        }
    }

    pub(crate) fn timeout(limit: std::time::Duration) -> Self {
        Self {
            status: 504,
            code: "timeout",
            message: "The service did not answer in time.",
            log: format!("no response within {limit:?}"),
            refused_by: None,
        }
    }

    pub(crate) fn bad_request(log: String) -> Self {
        Self {
            status: 400,
            code: "bad_request",
            message: "The request could not be passed to the service.",
            log,
            refused_by: None,
        }
    }

    pub(crate) fn body_timeout() -> Self {
        Self {
            status: 408,
            code: "request_timeout",
            message: "The request body did not arrive in time.",
            log: "body not received within the request timeout".into(),
            refused_by: None,
        }
    }

    pub(crate) fn payload_too_large(log: String) -> Self {
        Self {
            status: 413,
            code: "payload_too_large",
            message: "The request body is too large.",
            log,
            refused_by: None,
        }
    }

    pub(crate) fn headers_too_large() -> Self {
        Self {
            status: 431,
            code: "headers_too_large",
            message: "The request headers are too large.",
            log: "request head too large".into(),
            refused_by: None,
        }
    }

    /// A head hyper could not parse as HTTP/1.1.
    pub(crate) fn unparsable() -> Self {
        Self {
            status: 400,
            code: "bad_request",
            message: "The request could not be parsed as HTTP/1.1.",
            log: "request head not parsable".into(),
            refused_by: None,
        }
    }

    pub(crate) fn uri_too_long() -> Self {
        Self {
            status: 414,
            code: "uri_too_long",
            message: "The request target is too long.",
            log: "request target too long".into(),
            refused_by: None,
        }
    }

    /// The header its status calls for: `Retry-After` on 503, and on 413
    /// and 408 `Connection: close`, since the rest of the body is never
    /// read.
    pub(crate) fn status_header(&self) -> Option<(http::HeaderName, &'static str)> {
        match self.status {
            503 => Some((http::header::RETRY_AFTER, "1")),
            413 | 408 => Some((http::header::CONNECTION, "close")),
            _ => None,
        }
    }

    /// The response, with the header its status calls for; for a gRPC
    /// call (`grpc`), a trailers-only gRPC answer.
    pub(crate) fn into_response(
        self,
        request_id: &str,
        grpc: bool,
    ) -> hyper::Response<HyperOutgoingBody> {
        if grpc {
            return self.into_grpc_response(request_id);
        }
        let extra = self.status_header();
        let mut response = error_response(self.status, self.code, self.message, request_id);
        if let Some((name, value)) = extra {
            response
                .headers_mut()
                .insert(name, http::HeaderValue::from_static(value));
        }
        response
    }
}

impl Failure {
    /// gRPC's "trailers-only" answer: HTTP 200, the status in the headers
    /// and no body, which HTTP/2 sends as one frame. The code is gRPC's for
    /// the same failure.
    fn into_grpc_response(self, request_id: &str) -> hyper::Response<HyperOutgoingBody> {
        let code: u16 = match self.status {
            408 | 504 => 4,       // DEADLINE_EXCEEDED
            413 | 414 | 431 => 8, // RESOURCE_EXHAUSTED
            503 => 14,            // UNAVAILABLE
            _ => 13,              // INTERNAL
        };
        let mut response = hyper::Response::new(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", http::HeaderValue::from(code));
        // porto's messages are printable ASCII, which grpc-message carries
        // as it is.
        let message = if self.status >= 500 {
            format!("{} (request id {request_id})", self.message)
        } else {
            self.message.to_string()
        };
        if let Ok(message) = http::HeaderValue::from_str(&message) {
            headers.insert("grpc-message", message);
        }
        if let Ok(id) = http::HeaderValue::from_str(request_id) {
            headers.insert(request_id::HEADER, id);
        }
        response
    }
}

/// Whether a request is a gRPC call, by its content type, so porto's own
/// answers to it can be gRPC statuses.
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .get(..16)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"application/grpc"))
        })
}

/// The body of porto's JSON errors, in the services' envelope: a 5xx names
/// only the request id to quote.
pub(crate) fn envelope(status: u16, code: &str, message: &str, request_id: &str) -> String {
    if status >= 500 {
        serde_json::json!({ "error": { "code": code, "message": message, "details": { "request_id": request_id } } })
    } else {
        serde_json::json!({ "error": { "code": code, "message": message } })
    }
    .to_string()
}

/// porto's own JSON error, in the services' envelope.
pub(crate) fn error_response(
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> hyper::Response<HyperOutgoingBody> {
    let body = envelope(status, code, message, request_id);
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
        headers.insert(request_id::HEADER, id);
    }
    response
}
