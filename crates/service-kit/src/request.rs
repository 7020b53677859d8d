//! A request as handlers see it: fully buffered, already size-checked.
//!
//! Handlers take an [`ApiRequest`] rather than a wasi:http resource so the
//! parsing rules (content type, JSON, query strings) are plain Rust that is
//! unit-tested natively. The body has been read under the size limit by
//! [`crate::server`] before a handler runs.

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::request_id::RequestId;
use crate::strict_json::Strict;

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: RequestId,
}

impl ApiRequest {
    /// A request with no headers and no body, for tests and internal calls.
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Self {
            method,
            path,
            query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            request_id: RequestId::generate(),
        }
    }

    /// Non-empty path segments: `/users/7/` is `["users", "7"]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Decoded query parameters in order. Repeated keys are kept.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value of a query parameter; a repeated parameter is
    /// ambiguous and rejected.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self
            .query_pairs()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("Query parameter `{name}` was given more than once."),
            )
            .with_detail(name, "must appear at most once"));
        }
        Ok(first)
    }

    /// The header's value as text. A value that is present but not
    /// visible ASCII is an error (400 `invalid_header`), never taken for
    /// an absent header.
    pub fn header(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let Some(value) = self.headers.get(name) else {
            return Ok(None);
        };
        value.to_str().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                format!("The {name} header must be visible ASCII text."),
            )
            .with_detail(name, "visible ASCII text")
        })
    }

    /// The header's value as the bytes the client sent, for callers that
    /// judge them with a rule of their own.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(http::HeaderValue::as_bytes)
    }

    /// Parses the body as JSON into `T`, enforcing the JSON content type.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !has_json_content_type(&self.headers) {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&self.body)
    }
}

/// `application/json` or any `application/*+json`, with optional parameters.
pub fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON into `T`, naming the offending field when the shape is wrong.
///
/// Syntax errors are `invalid_json`; well-formed JSON of the wrong shape
/// (wrong types, missing or unknown fields) is `validation_failed` with the
/// JSON path of the first offending field in `details`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty; a JSON object is required.",
        ));
    }
    // Syntax first (into a value), then the shape, through a reader that
    // gives structs only objects (strict_json.rs).
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| invalid_json(&e))?;
    serde_path_to_error::deserialize(Strict(&value)).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::bad_request("validation_failed", "The request body has the wrong shape.")
            .with_detail(field, describe_data_error(err.inner()))
    })
}

fn invalid_json(err: &serde_json::Error) -> ApiError {
    ApiError::bad_request(
        "invalid_json",
        format!(
            "The request body is not valid JSON: {}.",
            syntax_reason(err)
        ),
    )
}

/// serde_json's message without its "at line L column C" suffix, which names
/// positions in the client's own body and adds nothing to the field path,
/// and with Rust's number types ("expected u64") said in JSON's words.
fn describe_data_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    RUST_NUMBER_TYPES
        .iter()
        .fold(text.to_string(), |text, (rust, json)| {
            text.replace(&format!("expected {rust}"), &format!("expected {json}"))
        })
}

/// Rust's integer and float types as a client of a JSON API knows them.
const RUST_NUMBER_TYPES: [(&str, &str); 10] = [
    ("u8", "a non-negative integer"),
    ("u16", "a non-negative integer"),
    ("u32", "a non-negative integer"),
    ("u64", "a non-negative integer"),
    ("usize", "a non-negative integer"),
    ("i32", "an integer"),
    ("i64", "an integer"),
    ("isize", "an integer"),
    ("f32", "a number"),
    ("f64", "a number"),
];

fn syntax_reason(err: &serde_json::Error) -> String {
    format!(
        "{} at line {} column {}",
        describe_data_error(err),
        err.line(),
        err.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        count: u32,
    }

    fn json_request(body: &str, content_type: Option<&str>) -> ApiRequest {
        let mut r = ApiRequest::new(Method::POST, "/x");
        if let Some(ct) = content_type {
            r.headers
                .insert(http::header::CONTENT_TYPE, ct.parse().expect("header"));
        }
        r.body = Bytes::from(body.to_string());
        r
    }

    #[test]
    fn parses_valid_json() {
        let r = json_request(r#"{"name":"a","count":3}"#, Some("application/json"));
        assert_eq!(
            r.json::<Sample>(),
            Ok(Sample {
                name: "a".into(),
                count: 3
            })
        );
    }

    #[test]
    fn accepts_charset_parameter_and_case() {
        let r = json_request(
            r#"{"name":"a","count":3}"#,
            Some("Application/JSON; charset=utf-8"),
        );
        assert!(r.json::<Sample>().is_ok());
    }

    #[test]
    fn accepts_structured_json_suffix() {
        let r = json_request(
            r#"{"name":"a","count":3}"#,
            Some("application/merge-patch+json"),
        );
        assert!(r.json::<Sample>().is_ok());
    }

    #[test]
    fn missing_content_type_is_415() {
        let r = json_request(r#"{"name":"a","count":3}"#, None);
        assert_eq!(r.json::<Sample>().map_err(|e| e.status), Err(415));
    }

    #[test]
    fn text_plain_is_415() {
        let r = json_request(r#"{"name":"a","count":3}"#, Some("text/plain"));
        assert_eq!(r.json::<Sample>().map_err(|e| e.status), Err(415));
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        let e = parse_json::<Sample>(b"{\"name\": ").expect_err("must fail");
        assert_eq!((e.status, e.code), (400, "invalid_json"));
    }

    #[test]
    fn empty_body_is_invalid_json() {
        let e = parse_json::<Sample>(b"  ").expect_err("must fail");
        assert_eq!(e.code, "invalid_json");
    }

    #[test]
    fn trailing_garbage_is_invalid_json() {
        let e = parse_json::<Sample>(br#"{"name":"a","count":1} x"#).expect_err("must fail");
        assert_eq!(e.code, "invalid_json");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse_json::<Sample>(br#"{"name":"a","count":"three"}"#).expect_err("must fail");
        assert_eq!(e.code, "validation_failed");
        assert!(e.details.expect("details").contains_key("count"));
    }

    #[test]
    fn unknown_field_is_rejected() {
        let e =
            parse_json::<Sample>(br#"{"name":"a","count":1,"admin":true}"#).expect_err("must fail");
        assert_eq!(e.code, "validation_failed");
    }

    #[test]
    fn array_instead_of_object_is_validation_failed() {
        let e = parse_json::<Sample>(b"[1,2]").expect_err("must fail");
        assert_eq!(e.code, "validation_failed");
        let e = parse_json::<Sample>(br#""just a string""#).expect_err("must fail");
        assert!(e.details.expect("details").contains_key("body"));
    }

    #[test]
    fn deep_nesting_is_a_client_error() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = parse_json::<serde_json::Value>(deep.as_bytes()).expect_err("must fail");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn negative_into_unsigned_is_validation_failed() {
        let e = parse_json::<Sample>(br#"{"name":"a","count":-1}"#).expect_err("must fail");
        assert_eq!(e.code, "validation_failed");
    }

    #[test]
    fn segments_skip_empty_parts() {
        let r = ApiRequest::new(Method::GET, "//users/7/?x=1");
        assert_eq!(r.segments(), vec!["users", "7"]);
        assert_eq!(r.query.as_deref(), Some("x=1"));
    }

    #[test]
    fn query_params_are_decoded() {
        let r = ApiRequest::new(Method::GET, "/orders?status=paid&cursor=a%2Bb");
        assert_eq!(r.query_param("cursor"), Ok(Some("a+b".to_string())));
        assert_eq!(r.query_param("limit"), Ok(None));
    }

    #[test]
    fn repeated_query_param_is_rejected() {
        let r = ApiRequest::new(Method::GET, "/orders?limit=1&limit=2");
        assert_eq!(
            r.query_param("limit").map_err(|e| e.code),
            Err("invalid_query")
        );
    }

    #[test]
    fn messages_name_json_types_not_rust_ones() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Counted {
            quantity: u32,
            total: u64,
            delta: i64,
        }
        for body in [
            r#"{"quantity":"1","total":1,"delta":1}"#,
            r#"{"quantity":1,"total":-1,"delta":1}"#,
            r#"{"quantity":1,"total":1,"delta":1.5}"#,
        ] {
            let err = parse_json::<Counted>(body.as_bytes()).expect_err("wrong type");
            let text = format!("{:?}", err.details);
            for rust in ["u32", "u64", "i64"] {
                assert!(!text.contains(rust), "{rust} in {text}");
            }
            assert!(text.contains("integer"), "{text}");
        }
    }
}
