//! The wasi:http side of a gRPC call: read the request, run the handler,
//! write messages as the body is pulled and the status as trailers.
//!
//! Every answer has the full form (headers, messages, trailers), also for
//! a call that fails before its first message: gRPC allows a
//! "trailers-only" answer instead, but that one is a single HTTP/2 frame,
//! which a guest cannot ask its host for. The `Trailer` header announces
//! `grpc-status` and `grpc-message`, so an HTTP/1.1 hop (a caller asking
//! with `te: trailers`) carries them too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use wstd::http::{Body, Request, Response};

use super::{Call, Code, Failure, MAX_MESSAGE_BYTES, Messages, Reply, Status};
use crate::request_id::{HEADER as REQUEST_ID, RequestId};

/// Room for one message at the limit and its prefix: a bigger body is a
/// message over the limit (or more than the one a call carries).
const MAX_BODY: usize = MAX_MESSAGE_BYTES + 5;

/// Serves `request` as a call of `service`/`method` by `handler`.
pub(crate) async fn call<G, Fut>(
    request: Request<Body>,
    service: String,
    method: String,
    handler: G,
) -> Response<Body>
where
    G: FnOnce(Call) -> Fut,
    Fut: Future<Output = Result<Reply, Failure>>,
{
    let (parts, body) = request.into_parts();
    let request_id =
        RequestId::from_header(parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    let name = format!("{service}/{method}");
    let outcome = match admit(&parts) {
        Err(status) => Err(Failure::Rpc(status)),
        Ok(()) => match read(body).await {
            Err(status) => Err(Failure::Rpc(status)),
            Ok(body) => {
                handler(Call {
                    service,
                    method,
                    headers: parts.headers,
                    body,
                    request_id: request_id.clone(),
                })
                .await
            }
        },
    };
    let messages: Messages = match outcome {
        Ok(reply) => reply.into_messages(),
        Err(failure) => Box::new(std::iter::once(Err(failure))),
    };
    answer(
        Answer {
            messages,
            request_id: request_id.clone(),
            name,
            done: false,
        },
        &request_id,
    )
}

/// What the request must say before its body is read: POST, no
/// compression we would have to undo.
fn admit(parts: &http::request::Parts) -> Result<(), Status> {
    if parts.method != http::Method::POST {
        return Err(Status::unimplemented(format!(
            "gRPC calls are POST requests, not {}.",
            parts.method
        )));
    }
    let encoding = parts
        .headers
        .get("grpc-encoding")
        .map(|value| value.to_str().unwrap_or_default().trim());
    match encoding {
        None | Some("identity") => Ok(()),
        Some(other) => Err(Status::unimplemented(format!(
            "Messages compressed with {other:?} are not accepted; send them uncompressed."
        ))),
    }
}

async fn read(body: Body) -> Result<Bytes, Status> {
    let collected = Limited::new(body.into_boxed_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| {
            if error.downcast_ref::<LengthLimitError>().is_some() {
                Status::new(
                    Code::ResourceExhausted,
                    format!("The request is over {MAX_MESSAGE_BYTES} bytes, the largest message accepted."),
                )
            } else {
                Status::new(Code::Cancelled, "The request body could not be read.")
            }
        })?;
    Ok(collected.to_bytes())
}

fn answer(body: Answer, request_id: &RequestId) -> Response<Body> {
    let mut response = Response::new(Body::from_http_body(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
    headers.insert(
        http::header::TRAILER,
        HeaderValue::from_static("grpc-status, grpc-message"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(REQUEST_ID, id);
    }
    response
}

/// The answer's body: the messages as they come, then the status as
/// trailers.
struct Answer {
    messages: Messages,
    request_id: RequestId,
    name: String,
    done: bool,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let status = match self.messages.next() {
            Some(Ok(message)) => return Poll::Ready(Some(Ok(http_body::Frame::data(message)))),
            Some(Err(failure)) => failure.into_status(&self.request_id, &self.name),
            None => Status::ok(),
        };
        self.done = true;
        let trailers: HeaderMap = status.to_headers();
        Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
