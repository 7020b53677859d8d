//! Calling another service's gRPC method, as [`crate::upstream`] calls
//! its REST routes: same base URL from the environment, same deadline
//! (also sent as `grpc-timeout`), same request id.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use prost::Message;

use super::framing;
use super::status::{Code, Status};
use crate::request_id::{HEADER as REQUEST_ID, RequestId};
use crate::upstream::{Upstream, UpstreamError, UpstreamResponse};

/// The largest answer message read back.
const MAX_RESPONSE_MESSAGE: usize = 4 * 1024 * 1024;

/// Calls unary method `path` (`/users.v1.Users/GetUser`) of `upstream`.
/// The outer error is the transport's (the peer could not be asked); the
/// inner result is the call's: the answer, or the status it ended with.
pub async fn unary<Req, Resp>(
    upstream: &Upstream,
    path: &str,
    request: &Req,
    request_id: &RequestId,
) -> Result<Result<Resp, Status>, UpstreamError>
where
    Req: Message,
    Resp: Message + Default,
{
    let headers = request_headers(upstream, request_id);
    let answer = upstream
        .send(Method::POST, path, &headers, framing::encode(request))
        .await?;
    Ok(outcome(&answer))
}

/// Relays a call's framed `body` to method `path` of `upstream` with the
/// caller's end-to-end `metadata`, for a gateway: the answer's framed
/// messages, still encoded, and the status it ended with.
pub async fn relay(
    upstream: &Upstream,
    path: &str,
    metadata: &HeaderMap,
    body: Bytes,
    request_id: &RequestId,
) -> Result<(Bytes, Status), UpstreamError> {
    let mut headers = crate::headers::end_to_end(metadata);
    headers.extend(request_headers(upstream, request_id));
    let answer = upstream.send(Method::POST, path, &headers, body).await?;
    let status = status_of(&answer);
    Ok((answer.body, status))
}

fn request_headers(upstream: &Upstream, request_id: &RequestId) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    // gRPC servers other than porto's refuse a call without it.
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(REQUEST_ID, value);
    }
    let millis = upstream.timeout.as_millis().clamp(1, 99_999_999);
    if let Ok(value) = HeaderValue::from_str(&format!("{millis}m")) {
        headers.insert("grpc-timeout", value);
    }
    headers
}

/// The call's result from the answer: its status from the trailers (or,
/// for a trailers-only answer, the headers), the HTTP status mapped as
/// gRPC's specification maps it when there is none.
fn outcome<Resp: Message + Default>(answer: &UpstreamResponse) -> Result<Resp, Status> {
    let status = status_of(answer);
    if status.is_ok() {
        framing::decode_one(&answer.body, MAX_RESPONSE_MESSAGE)
    } else {
        Err(status)
    }
}

fn status_of(answer: &UpstreamResponse) -> Status {
    let status = answer
        .trailers
        .as_ref()
        .and_then(Status::from_headers)
        .or_else(|| Status::from_headers(&answer.headers));
    match status {
        Some(status) => status,
        None if answer.status != 200 => Status::new(
            from_http(answer.status),
            format!(
                "The peer answered HTTP {} without a gRPC status.",
                answer.status
            ),
        ),
        None => Status::internal("The peer's answer carries no grpc-status."),
    }
}

fn from_http(status: u16) -> Code {
    match status {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// An empty body, for tests of [`outcome`].
#[cfg(test)]
fn answer(status: u16, body: Bytes, trailers: Option<HeaderMap>) -> UpstreamResponse {
    UpstreamResponse {
        status,
        headers: HeaderMap::new(),
        body,
        trailers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::health::{HealthCheckResponse, ServingStatus};

    #[test]
    fn the_status_comes_from_trailers_headers_or_http() {
        let serving = HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        };
        let ok = answer(
            200,
            framing::encode(&serving),
            Some(Status::ok().to_headers()),
        );
        assert_eq!(outcome::<HealthCheckResponse>(&ok), Ok(serving));

        let missing = Status::new(Code::NotFound, "No user has id 9.");
        let trailers_only = UpstreamResponse {
            headers: missing.to_headers(),
            ..answer(200, Bytes::new(), None)
        };
        assert_eq!(outcome::<HealthCheckResponse>(&trailers_only), Err(missing));

        let overloaded = answer(503, Bytes::from_static(b"{}"), None);
        assert_eq!(
            outcome::<HealthCheckResponse>(&overloaded).map_err(|s| s.code),
            Err(Code::Unavailable)
        );
        let bare = answer(200, Bytes::new(), None);
        assert_eq!(
            outcome::<HealthCheckResponse>(&bare).map_err(|s| s.code),
            Err(Code::Internal)
        );
    }

    #[test]
    fn calls_carry_content_type_te_id_and_deadline() {
        let upstream = Upstream::new("u", "http://u", std::time::Duration::from_millis(1500));
        let id = RequestId::parse("rid-7").expect("id");
        let headers = request_headers(&upstream, &id);
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["x-request-id"], "rid-7");
        assert_eq!(headers["grpc-timeout"], "1500m");
    }
}
