//! The one error type every service answers with.
//!
//! An [`ApiError`] is a status, a stable snake_case `code` that clients can
//! switch on, a human sentence, and optionally a `details` object naming the
//! offending fields. Rendering lives here and nowhere else, so all three
//! services produce byte-for-byte the same shape:
//! `{"error":{"code":"…","message":"…","details":{…}}}`.

use serde::Serialize;
use serde_json::{Map, Value};

/// An error that becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Map<String, Value>>,
    /// Headers the status requires (`Allow` for 405, `Retry-After` for 503).
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Map<String, Value>>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }

    /// Adds `field: reason` to `details`.
    pub fn with_detail(mut self, field: impl Into<String>, reason: impl Into<Value>) -> Self {
        self.details
            .get_or_insert_with(Map::new)
            .insert(field.into(), reason.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    pub fn route_not_found() -> Self {
        Self::new(404, "route_not_found", "No route matches this path.")
    }

    pub fn method_not_allowed(allowed: &[http::Method]) -> Self {
        let allow = allowed
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            405,
            "method_not_allowed",
            format!("This path accepts only {allow}."),
        )
        .with_header("allow", allow)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("Request bodies are limited to {limit} bytes."),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            "Send the body as JSON with content-type: application/json.",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", message)
    }

    pub fn store_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "store_unavailable", message).with_header("retry-after", "1")
    }

    /// The JSON body of this error.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                details: self.details.as_ref(),
            },
        };
        // Serialising a struct of strings and a JSON map cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(e: &ApiError) -> Value {
        serde_json::from_slice(&e.to_json()).expect("error JSON parses")
    }

    #[test]
    fn renders_code_and_message() {
        let v = parsed(&ApiError::not_found("user_not_found", "No user 7."));
        assert_eq!(v["error"]["code"], "user_not_found");
        assert_eq!(v["error"]["message"], "No user 7.");
        assert!(v["error"].get("details").is_none());
    }

    #[test]
    fn renders_details_by_field() {
        let e = ApiError::bad_request("validation_failed", "Invalid input.")
            .with_detail("name", "must not be empty")
            .with_detail("email", "is not an email address");
        let v = parsed(&e);
        assert_eq!(v["error"]["details"]["name"], "must not be empty");
        assert_eq!(v["error"]["details"]["email"], "is not an email address");
    }

    #[test]
    fn method_not_allowed_lists_methods_in_allow() {
        let e = ApiError::method_not_allowed(&[http::Method::GET, http::Method::POST]);
        assert_eq!(e.status, 405);
        assert_eq!(e.headers, vec![("allow", "GET, POST".to_string())]);
    }

    #[test]
    fn messages_with_quotes_and_unicode_stay_valid_json() {
        let e = ApiError::bad_request("x", "bad \"name\" — ünïcödé \u{1F600}");
        assert_eq!(
            parsed(&e)["error"]["message"],
            "bad \"name\" — ünïcödé \u{1F600}"
        );
    }
}
