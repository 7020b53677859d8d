//! One client connection: TLS when its service has it, the HTTP it speaks
//! (HTTP/2 when TLS negotiates `h2` by ALPN, or in plain text when the
//! client opens with HTTP/2's preface: h2c with prior knowledge; HTTP/1.1
//! otherwise), and hyper set up for it with porto's limits
//! (`policy::limits`). Either way its requests go to the same dispatcher.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::held_body::holding;
use crate::policy::limits::{self, HEADER_READ_TIMEOUT, MAX_CONNECTION_BUFFER_BYTES};
use crate::serve::dispatcher::Dispatcher;
use crate::serve::idle::{Idle, Streams};
use crate::serve::parse_errors::Enveloped;
use crate::serve::service::Service;
use crate::serve::tls::HANDSHAKE_TIMEOUT;
use crate::serve::write_coalescing::CoalescedWrites;

/// What a client opens an HTTP/2 connection with (RFC 9113, 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP a connection speaks, as its metrics name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Http1 => "http/1.1",
            Self::Http2 => "h2",
        }
    }
}

/// Serves `stream` for `service` until it closes or the drain ends it.
pub(crate) async fn serve(
    stream: TcpStream,
    dispatcher: Arc<Dispatcher>,
    service: Arc<Service>,
    watcher: Watcher,
) {
    match service.tls.clone() {
        None => {
            let protocol = match opens_with_preface(&stream).await {
                Some(true) => Protocol::Http2,
                Some(false) => Protocol::Http1,
                // Silent past the head timeout, or gone.
                None => return,
            };
            // Plain-text HTTP/1.1 writes are coalesced (write_coalescing.rs);
            // HTTP/2 frames are buffered by hyper's own codec.
            match protocol {
                Protocol::Http1 => {
                    http(
                        CoalescedWrites::new(stream),
                        protocol,
                        false,
                        dispatcher,
                        service,
                        watcher,
                    )
                    .await
                }
                Protocol::Http2 => {
                    http(stream, protocol, false, dispatcher, service, watcher).await
                }
            }
        }
        Some(tls) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    return dispatcher.failed_handshake(&service, &error.to_string());
                }
                Err(_) => return dispatcher.failed_handshake(&service, "handshake timed out"),
            };
            let protocol = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            http(stream, protocol, true, dispatcher, service, watcher).await;
        }
    }
}

/// Whether the client's first bytes are HTTP/2's preface; None if it
/// closes, or sends nothing telling within the head timeout. Looks
/// without taking: hyper reads the bytes again.
async fn opens_with_preface(stream: &TcpStream) -> Option<bool> {
    let look = async {
        let mut first = [0u8; PREFACE.len()];
        loop {
            let seen = stream.peek(&mut first).await.ok()?;
            if seen == 0 {
                return None;
            }
            if first[..seen] != PREFACE[..seen] {
                return Some(false);
            }
            if seen == PREFACE.len() {
                return Some(true);
            }
            // A preface cut short: peeking again at once would see the
            // same bytes, so wait a moment for the rest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(HEADER_READ_TIMEOUT, look)
        .await
        .ok()
        .flatten()
}

/// hyper over `io`, speaking `protocol`, until the connection ends.
async fn http<I>(
    io: I,
    protocol: Protocol,
    tls: bool,
    dispatcher: Arc<Dispatcher>,
    service: Arc<Service>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = dispatcher.opened_connection(&service, protocol.label(), tls);
    // HTTP/2 counts its open streams, for the idle timeout (idle.rs).
    let streams = (protocol == Protocol::Http2).then(Streams::default);
    let counted = streams.clone();
    let handler = service_fn(move |request| {
        requests.inc();
        let open = counted.as_ref().map(Streams::open);
        let (dispatcher, service) = (dispatcher.clone(), service.clone());
        async move {
            let response = dispatcher.handle(&service, request).await;
            Ok::<_, std::convert::Infallible>(match open {
                Some(open) => holding(response, open),
                None => response,
            })
        }
    });
    match protocol {
        Protocol::Http1 => {
            let connection = http1::Builder::new()
                .keep_alive(true)
                // Request line and headers beyond this get 431.
                .max_buf_size(MAX_CONNECTION_BUFFER_BYTES)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(Enveloped::new(io)), handler);
            let _ = watcher.watch(connection).await;
        }
        Protocol::Http2 => {
            let io = Idle::new(io, streams.unwrap_or_default(), limits::H2_IDLE_TIMEOUT);
            let connection = http2_builder().serve_connection(TokioIo::new(io), handler);
            let _ = watcher.watch(connection).await;
        }
    }
}

/// hyper's HTTP/2 server with porto's limits (`policy::limits`, where each
/// is explained).
fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits::H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(limits::H2_MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(limits::H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(limits::H2_CONNECTION_WINDOW_BYTES)
        .max_frame_size(limits::H2_MAX_FRAME_BYTES)
        .max_send_buf_size(limits::H2_MAX_SEND_BUFFER_BYTES)
        .max_pending_accept_reset_streams(limits::H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(limits::H2_MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(limits::H2_PING_INTERVAL)
        .keep_alive_timeout(limits::H2_PING_TIMEOUT);
    builder
}
