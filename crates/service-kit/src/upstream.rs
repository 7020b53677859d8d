//! Calls to another service over outbound `wasi:http`.
//!
//! The base URL comes from the environment (`USER_SERVICE_URL`, …) exactly
//! as the Compose file sets it, so the same component talks to an
//! in-process peer under porto and to a network peer under Docker. Every
//! call has a deadline (`UPSTREAM_TIMEOUT_MS`, default 5 s) covering the
//! whole exchange, so a stuck peer becomes an error, never a hang.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::error::ApiError;
use crate::request_id::{HEADER as REQUEST_ID, RequestId};

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: &'static str,
    base: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The trailers after the body, if the peer sent any (gRPC's status).
    pub trailers: Option<HeaderMap>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable: {0}")]
    Unreachable(String),
}

impl Upstream {
    /// Reads the base URL from `var`; a missing variable is reported when
    /// the upstream is first used, so unrelated routes keep working.
    pub fn from_env(var: &'static str, name: &'static str) -> Result<Self, UpstreamError> {
        let base = std::env::var(var)
            .ok()
            .map(|v| v.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty())
            .ok_or(UpstreamError::NotConfigured(var))?;
        Ok(Self {
            name,
            base,
            timeout: timeout_from_env(),
        })
    }

    pub fn new(name: &'static str, base: &str, timeout: Duration) -> Self {
        Self {
            name,
            base: base.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// A GET carrying only the request id.
    pub async fn get(
        &self,
        path_and_query: &str,
        request_id: &RequestId,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = request_id.as_str().parse() {
            headers.insert(REQUEST_ID, v);
        }
        self.send(Method::GET, path_and_query, &headers, Bytes::new())
            .await
    }

    /// Sends a request and buffers the response, all under the deadline.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, UpstreamError> {
        #[cfg(target_arch = "wasm32")]
        {
            transport::send(self, method, path_and_query, headers, body).await
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (method, path_and_query, headers, body);
            Err(UpstreamError::Unreachable(
                "outbound HTTP needs a wasi:http host".into(),
            ))
        }
    }
}

pub fn timeout_from_env() -> Duration {
    let ms = std::env::var("UPSTREAM_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    Duration::from_millis(ms)
}

impl UpstreamResponse {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the body is this platform's error envelope, which can be
    /// passed to the client unchanged.
    pub fn is_api_error(&self) -> bool {
        self.json::<serde_json::Value>()
            .and_then(|v| v.get("error")?.get("code")?.as_str().map(|_| ()))
            .is_some()
    }
}

/// How a gateway reports a failed upstream to its client.
pub fn gateway_error(upstream: &str, err: &UpstreamError) -> ApiError {
    match err {
        UpstreamError::Timeout(d) => ApiError::new(
            504,
            "upstream_timeout",
            format!("{upstream} did not answer within {} ms.", d.as_millis()),
        )
        .with_detail("upstream", upstream.to_string()),
        UpstreamError::NotConfigured(var) => ApiError::new(
            503,
            "upstream_unavailable",
            format!("{upstream} is not configured ({var} is not set)."),
        )
        .with_detail("upstream", upstream.to_string()),
        UpstreamError::Unreachable(_) => ApiError::new(
            502,
            "upstream_unavailable",
            format!("{upstream} could not be reached."),
        )
        .with_detail("upstream", upstream.to_string()),
    }
}

#[cfg(target_arch = "wasm32")]
mod transport {
    use super::*;
    use crate::headers::end_to_end;
    use http_body_util::{BodyExt, Limited};
    use wstd::future::FutureExt as _;
    use wstd::http::{Body, Client, Request};

    /// Responses larger than this from a peer are treated as a failure of
    /// the peer rather than buffered without bound.
    const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

    pub(super) async fn send(
        upstream: &Upstream,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut request = Request::builder()
            .method(method)
            .uri(upstream.url(path_and_query))
            .body(Body::from(body))
            .map_err(|e| UpstreamError::Unreachable(format!("bad request: {e}")))?;
        *request.headers_mut() = end_to_end(headers);
        // `te` is hop-by-hop, but `te: trailers` is this hop's own ask
        // (gRPC's), not something relayed.
        if headers
            .get(http::header::TE)
            .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"))
        {
            request
                .headers_mut()
                .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        }

        let exchange = async {
            let response = Client::new()
                .send(request)
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("{e:#}")))?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body.into_boxed_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("response body: {e}")))?;
            let trailers = collected.trailers().cloned();
            Ok(UpstreamResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            })
        };
        match exchange
            .timeout(wstd::time::Duration::from(upstream.timeout))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(upstream.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_maps_timeout_to_504() {
        let e = gateway_error(
            "user-service",
            &UpstreamError::Timeout(Duration::from_secs(5)),
        );
        assert_eq!((e.status, e.code), (504, "upstream_timeout"));
    }

    #[test]
    fn gateway_maps_unreachable_to_502() {
        let e = gateway_error(
            "user-service",
            &UpstreamError::Unreachable("refused".into()),
        );
        assert_eq!((e.status, e.code), (502, "upstream_unavailable"));
        assert!(
            !e.message.contains("refused"),
            "internal cause must not leak"
        );
    }

    #[test]
    fn gateway_maps_missing_config_to_503() {
        let e = gateway_error(
            "user-service",
            &UpstreamError::NotConfigured("USER_SERVICE_URL"),
        );
        assert_eq!(e.status, 503);
    }

    #[test]
    fn url_joins_without_double_slash() {
        let u = Upstream::new("u", "http://user-service/", Duration::from_secs(1));
        assert_eq!(u.url("/users/1"), "http://user-service/users/1");
    }

    #[test]
    fn recognises_error_envelope() {
        let r = UpstreamResponse {
            status: 404,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"error":{"code":"user_not_found","message":"x"}}"#),
            trailers: None,
        };
        assert!(r.is_api_error());
        let plain = UpstreamResponse {
            body: Bytes::from_static(b"internal error"),
            ..r
        };
        assert!(!plain.is_api_error());
    }
}
