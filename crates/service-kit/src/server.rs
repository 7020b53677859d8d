//! The `wasi:http/incoming-handler` glue every service shares.
//!
//! It reads the request under the 64 KiB body limit, settles the request id,
//! runs the service's handler, renders any [`ApiError`], and stamps
//! `x-request-id` on the response. gRPC requests go to the service's gRPC
//! handler instead ([`crate::grpc`]). Services export it with
//! [`crate::export_service!`] and never touch wasi:http resources.

use std::future::Future;

use crate::error::ApiError;
use crate::request::ApiRequest;
use crate::request_id::HEADER as REQUEST_ID;
use crate::response::ApiResponse;

/// The API contract (README "API", openapi.yaml): bodies over 64 KiB get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Runs `handler` and turns its outcome into the response to send, with
/// the request id attached whatever happened.
pub async fn respond<H, Fut>(mut request: ApiRequest, handler: H) -> ApiResponse
where
    H: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    // RFC 9110: HEAD is served wherever GET is, as GET. The body stays in
    // the response so the HTTP layer, which never sends a HEAD response's
    // body, can still state its true length.
    if request.method == http::Method::HEAD {
        request.method = http::Method::GET;
    }
    let id = request.request_id.clone();
    let (method, path) = (request.method.clone(), request.path.clone());
    let response = handler(request).await.unwrap_or_else(|err| {
        if err.is_server_error() {
            eprintln!("request {id}: {method} {path} failed: {err}");
        }
        redact(err, id.as_str()).into()
    });
    with_request_id(response, id.as_str())
}

/// A 500's message may carry internal text (a serde error, a store
/// reason): the log above keeps it, the client gets a fixed sentence and
/// the request id to quote. Other errors are written for clients already.
fn redact(err: ApiError, id: &str) -> ApiError {
    if err.status != 500 {
        return err;
    }
    ApiError {
        message: "The service failed while handling this request.".into(),
        details: None,
        ..err
    }
    .with_detail("request_id", id)
}

fn with_request_id(mut response: ApiResponse, id: &str) -> ApiResponse {
    response
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(REQUEST_ID));
    response
        .headers
        .push((REQUEST_ID.to_string(), id.to_string()));
    response
}

/// Rejects a declared body size over the limit before reading any of it.
pub fn check_declared_length(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY_BYTES as u64 => Err(ApiError::payload_too_large(MAX_BODY_BYTES)),
        _ => Ok(()),
    }
}

#[cfg(target_arch = "wasm32")]
pub use guest::run;

#[cfg(target_arch = "wasm32")]
mod guest {
    use super::*;
    use crate::grpc::Kind;
    use crate::request_id::RequestId;
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};
    use wstd::http::server::Responder;
    use wstd::http::{Body, Request, Response};

    /// Entry point called by the exported `incoming-handler`: `handler`
    /// serves REST, `rpc` gRPC.
    pub fn run<H, Fut, G, RpcFut>(
        incoming: IncomingRequest,
        out: ResponseOutparam,
        handler: H,
        rpc: G,
    ) where
        H: FnOnce(ApiRequest) -> Fut,
        Fut: Future<Output = Result<ApiResponse, ApiError>>,
        G: FnOnce(crate::grpc::Call) -> RpcFut,
        RpcFut: Future<Output = Result<crate::grpc::Reply, crate::grpc::Failure>>,
    {
        let responder = Responder::new(out);
        wstd::runtime::block_on(async move {
            let request = wstd::http::request::try_from_incoming(incoming);
            let kind = request
                .as_ref()
                .ok()
                .map(|r| crate::grpc::classify(r.uri().path(), r.headers()));
            let response = match (request, kind) {
                (Ok(request), Some(Kind::Rpc { service, method })) => {
                    crate::grpc::serve::call(request, service, method, rpc).await
                }
                (Ok(request), Some(Kind::RpcWithoutMethod)) => {
                    let path = request.uri().path().to_string();
                    crate::grpc::serve::call(request, path, String::new(), |call| async move {
                        Err(crate::grpc::Status::unimplemented(format!(
                            "{} names no gRPC method (use /package.Service/Method).",
                            call.service
                        ))
                        .into())
                    })
                    .await
                }
                (Ok(request), Some(Kind::UnsupportedMediaType)) => {
                    let id = RequestId::from_header(
                        request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok()),
                    );
                    into_http(with_request_id(
                        ApiError::new(
                            415,
                            "unsupported_media_type",
                            "gRPC methods take content-type: application/grpc (protobuf messages).",
                        )
                        .into(),
                        id.as_str(),
                    ))
                }
                (Ok(request), _) => into_http(match read(request).await {
                    Ok(request) => respond(request, handler).await,
                    Err((err, id)) => with_request_id(err.into(), id.as_str()),
                }),
                (Err(e), _) => {
                    let id = RequestId::generate();
                    eprintln!("request {id}: unreadable request head: {e:#}");
                    into_http(with_request_id(
                        ApiError::bad_request("bad_request", "The request could not be read.")
                            .into(),
                        id.as_str(),
                    ))
                }
            };
            if let Err(e) = responder.respond(response).await {
                // The status line is already out; only the log can know.
                eprintln!("response body not delivered: {e:#}");
            }
        });
    }

    async fn read(request: Request<Body>) -> Result<ApiRequest, (ApiError, RequestId)> {
        let (parts, body) = request.into_parts();
        let request_id =
            RequestId::from_header(parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()));
        let fail = |e: ApiError| (e, request_id.clone());
        check_declared_length(&parts.headers).map_err(fail)?;
        let body = Limited::new(body.into_boxed_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    fail(ApiError::payload_too_large(MAX_BODY_BYTES))
                } else {
                    fail(ApiError::bad_request(
                        "bad_request",
                        "The request body could not be read.",
                    ))
                }
            })?
            .to_bytes();
        Ok(ApiRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body,
            request_id,
        })
    }

    fn into_http(response: ApiResponse) -> Response<Body> {
        let mut builder = Response::builder().status(response.status);
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(Body::from(response.body)).unwrap_or_else(|e| {
            eprintln!("response could not be built: {e}");
            let mut fallback = Response::new(Body::from(
                ApiError::internal("The response could not be built.").to_json(),
            ));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn one_body_limit_holds_for_rest_and_grpc() {
        assert_eq!(MAX_BODY_BYTES, crate::grpc::MAX_MESSAGE_BYTES);
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The handlers under test never await anything pending.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn errors_render_with_request_id() {
        let mut req = ApiRequest::new(Method::GET, "/x");
        req.request_id = crate::request_id::RequestId::parse("rid-1").expect("valid");
        let resp = block_on(respond(req, |_| async {
            Err::<ApiResponse, _>(ApiError::route_not_found())
        }));
        assert_eq!(resp.status, 404);
        assert_eq!(resp.header("x-request-id"), Some("rid-1"));
        assert_eq!(resp.header("content-type"), Some("application/json"));
    }

    #[test]
    fn internal_error_text_stays_in_the_log() {
        let mut req = ApiRequest::new(Method::GET, "/x");
        req.request_id = crate::request_id::RequestId::parse("rid-9").expect("valid");
        let resp = block_on(respond(req, |_| async {
            Err::<ApiResponse, _>(ApiError::internal(
                "record serialisation failed: key must be a string at line 1",
            ))
        }));
        assert_eq!(resp.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("json");
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(
            body["error"]["message"],
            "The service failed while handling this request."
        );
        assert_eq!(body["error"]["details"]["request_id"], "rid-9");
        assert!(!String::from_utf8_lossy(&resp.body).contains("serialisation"));
    }

    #[test]
    fn handler_request_id_is_replaced_not_duplicated() {
        let req = ApiRequest::new(Method::GET, "/x");
        let id = req.request_id.to_string();
        let resp = block_on(respond(req, |_| async {
            Ok(ApiResponse::no_content().with_header("x-request-id", "spoofed"))
        }));
        let ids: Vec<_> = resp
            .headers
            .iter()
            .filter(|(n, _)| n == "x-request-id")
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].1, id);
    }

    #[test]
    fn declared_oversize_body_is_413() {
        let mut h = http::HeaderMap::new();
        h.insert("content-length", "65537".parse().expect("v"));
        assert_eq!(check_declared_length(&h).map_err(|e| e.status), Err(413));
        h.insert("content-length", "65536".parse().expect("v"));
        assert!(check_declared_length(&h).is_ok());
    }
}
