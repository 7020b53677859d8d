//! gRPC status: the code and message an RPC ends with, in the
//! `grpc-status` and `grpc-message` trailers.
//!
//! A service's [`ApiError`]s become statuses here, one rule for every
//! service, so REST and gRPC report the same failure alike: the REST
//! status picks the code, the message keeps the sentence and names each
//! invalid field, and a 500's internal text stays in the log as REST's
//! does.

use http::{HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The codes of gRPC's status-code table, by their wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code a `grpc-status` value names; anything else is `Unknown`,
    /// as the gRPC specification has clients read it.
    pub fn from_wire(value: &str) -> Self {
        const ALL: [Code; 17] = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        value
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| ALL.get(n).copied())
            .unwrap_or(Code::Unknown)
    }
}

/// How an RPC ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Self {
        Self::new(Code::Ok, "")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Code::Unimplemented, message)
    }

    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// `grpc-status` and, when there is one, `grpc-message`.
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from(self.code as u16));
        if !self.message.is_empty()
            && let Ok(message) = HeaderValue::from_str(&percent_encode(&self.message))
        {
            headers.insert("grpc-message", message);
        }
        headers
    }

    /// The status `headers` (trailers, or the headers of a trailers-only
    /// answer) carry, if they carry one.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let code = Code::from_wire(headers.get("grpc-status")?.to_str().ok()?);
        let message = headers
            .get("grpc-message")
            .map(|value| percent_decode(value.as_bytes()))
            .unwrap_or_default();
        Some(Self { code, message })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

impl From<ApiError> for Status {
    /// The code by the REST status the error has; the message is the
    /// error's sentence followed by each `details` entry (`email: must be
    /// …`), so the field at fault is named over gRPC too.
    fn from(error: ApiError) -> Self {
        let code = match error.status {
            400 | 422 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::AlreadyExists,
            412 | 428 => Code::FailedPrecondition,
            413 | 429 => Code::ResourceExhausted,
            499 => Code::Cancelled,
            501 => Code::Unimplemented,
            502 | 503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        let mut message = error.message;
        for (field, reason) in error.details.iter().flatten() {
            let reason = reason
                .as_str()
                .map_or_else(|| reason.to_string(), str::to_string);
            message.push_str(&format!(" {field}: {reason}."));
        }
        Self { code, message }
    }
}

/// gRPC's encoding of `grpc-message`: bytes outside printable ASCII, and
/// `%` itself, as `%XX`, so any UTF-8 sentence fits in a header.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The inverse; a malformed escape is kept as it is, as the specification
/// asks, rather than failing the status.
fn percent_decode(value: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = (byte == b'%')
            .then(|| tail.get(..2))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                rest = &tail[2..];
            }
            None => {
                decoded.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_header_round_trip() {
        for message in ["plain", "50% off", "naïve — ünïcödé \u{1F600}", "a\r\nb"] {
            let status = Status::new(Code::NotFound, message);
            let headers = status.to_headers();
            assert_eq!(Status::from_headers(&headers), Some(status), "{message}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("3"));
        headers.insert("grpc-message", HeaderValue::from_static("bad %zz %4"));
        assert_eq!(
            Status::from_headers(&headers).map(|s| s.message),
            Some("bad %zz %4".to_string())
        );
    }

    #[test]
    fn unknown_codes_read_as_unknown() {
        assert_eq!(Code::from_wire("5"), Code::NotFound);
        assert_eq!(Code::from_wire("17"), Code::Unknown);
        assert_eq!(Code::from_wire("-1"), Code::Unknown);
        assert_eq!(Code::from_wire("ok"), Code::Unknown);
    }

    #[test]
    fn api_errors_keep_their_meaning_and_name_their_fields() {
        let invalid = ApiError::bad_request("validation_failed", "Some fields are invalid.")
            .with_detail("email", "must be an email address like name@example.com");
        let status = Status::from(invalid);
        assert_eq!(status.code, Code::InvalidArgument);
        assert_eq!(
            status.message,
            "Some fields are invalid. email: must be an email address like name@example.com."
        );
        let cases = [
            (
                ApiError::not_found("user_not_found", "No user 7."),
                Code::NotFound,
            ),
            (
                ApiError::conflict("email_taken", "Taken."),
                Code::AlreadyExists,
            ),
            (ApiError::store_unavailable("down"), Code::Unavailable),
            (ApiError::payload_too_large(10), Code::ResourceExhausted),
            (ApiError::internal("x"), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code, code);
        }
    }
}
