//! A response body that holds something until the response is done with:
//! the guards of a request served in a shared instance (`instance/p3.rs`),
//! which end its accounting only once its answer is out, and an HTTP/2
//! stream's place in its connection's count of open ones (`serve/idle.rs`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// `response` with `held` kept until its body is dropped.
pub(crate) fn holding<H: Send + Unpin + 'static>(
    response: hyper::Response<HyperOutgoingBody>,
    held: H,
) -> hyper::Response<HyperOutgoingBody> {
    response.map(|body| Held { body, _held: held }.boxed_unsync())
}

struct Held<H> {
    body: HyperOutgoingBody,
    _held: H,
}

impl<H: Unpin> hyper::body::Body for Held<H> {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
