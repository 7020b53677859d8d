//! A guest's allowed request over the network, for guests of both worlds.
//!
//! wasmtime-wasi-http's own sender speaks HTTP/1.1 only and leaves the TLS
//! handshake outside every timeout; this one:
//! - connects (TCP, TLS, the HTTP handshake) within the guest's connect
//!   timeout, [`DEFAULT_CONNECT_TIMEOUT`] when it sets none;
//! - offers `h2` and `http/1.1` by ALPN on `https://` and speaks what the
//!   server picks;
//! - speaks HTTP/2 with prior knowledge to a plain-text host whose
//!   `allow_hosts` entry says `h2c://` (gRPC servers without TLS);
//! - bounds the wait for the answer's head (first byte) and each gap in
//!   its body (between bytes) by the guest's timeouts.
//!
//! Certificates are checked against Mozilla's roots and the system's (or
//! the files `SSL_CERT_FILE` / `SSL_CERT_DIR` name, as OpenSSL reads
//! them), so a private CA is trusted by pointing those at it.
//!
//! One connection per request: wasi:http gives a guest no way to say a
//! connection may be shared, and a guest's calls to a service of this
//! process never come here at all.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long a connection may take when the guest sets no timeout: DNS,
/// TCP, TLS and the HTTP handshake together. wasi:http leaves the default
/// to the host; a host that waits ten minutes (wasmtime's) holds the
/// request that long on a dead address.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The wait for an answer's head and between its body's pieces when the
/// guest sets none; the request's own timeout usually ends it first.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

/// The most header bytes an HTTP/2 answer may carry, as HTTP/1.1's parser
/// allows about: a server the guest calls must not make porto buffer more.
const MAX_RESPONSE_HEADER_LIST: u32 = 64 * 1024;

/// How a plain-text (`http://`) call speaks, by its `allow_hosts` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plaintext {
    Http1,
    /// HTTP/2 with prior knowledge: no upgrade, no fallback.
    H2c,
}

/// What the guest's transport future (wasi:http's "I/O" of a request)
/// waits for: the connection's end, with any error it ended in.
pub(crate) type Transport = Box<dyn Future<Output = Result<(), Error>> + Send>;

type Connection = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

type Answer = Pin<Box<dyn Future<Output = hyper::Result<hyper::Response<Incoming>>> + Send>>;

enum Sender {
    Http1(http1::SendRequest<WasiBody>),
    Http2(http2::SendRequest<WasiBody>),
}

struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        Self {
            connect: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            first_byte: options
                .first_byte_timeout
                .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
            between_bytes: options
                .between_bytes_timeout
                .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        }
    }
}

/// Sends `request` (absolute URI, as wasi:http builds it) and returns its
/// answer's head, with a body bounded by the between-bytes timeout, and
/// the transport future that drives the rest of the exchange.
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    plaintext: Plaintext,
) -> Result<(http::Response<WasiBody>, Transport), Error> {
    let timeouts = Timeouts::of(options);
    let authority = request
        .uri()
        .authority()
        .ok_or(Error::HttpRequestUriInvalid)?
        .clone();
    let tls = request.uri().scheme() == Some(&Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let (sender, connection) =
        tokio::time::timeout(timeouts.connect, connect(host, port, tls, plaintext))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;

    let answer: Answer = match sender {
        Sender::Http1(mut sender) => {
            // An HTTP/1.1 request line names the path only (an absolute
            // URI is for proxies); `host` carries the authority.
            let path = request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *request.uri_mut() = http::Uri::from(path);
            Box::pin(async move { sender.send_request(request).await })
        }
        Sender::Http2(mut sender) => {
            for_http2(&mut request);
            Box::pin(async move { sender.send_request(request).await })
        }
    };
    let mut connection = Some(connection);
    let response = tokio::time::timeout(timeouts.first_byte, answered(answer, &mut connection))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let response = response.map(|body| {
        BetweenBytes {
            body,
            limit: timeouts.between_bytes,
            deadline: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
        }
        .boxed_unsync()
    });
    let transport: Transport = Box::new(async move {
        match connection {
            Some(connection) => connection.await.map_err(from_hyper),
            None => Ok(()),
        }
    });
    Ok((response, transport))
}

/// TCP, then TLS on `https://`, then the handshake of the protocol the
/// server chose by ALPN or the entry prescribed.
async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    plaintext: Plaintext,
) -> Result<(Sender, Connection), Error> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(Error::Connect)?;
    // Requests are written whole; Nagle would hold their last piece back.
    tcp.set_nodelay(true).map_err(Error::Connect)?;
    if !tls {
        return handshake(TokioIo::new(tcp), plaintext == Plaintext::H2c).await;
    }
    let name = ServerName::try_from(host.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(CLIENT_TLS.clone())
        .connect(name, tcp)
        .await
        .map_err(Error::Tls)?;
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    handshake(TokioIo::new(stream), http2).await
}

async fn handshake<T>(io: TokioIo<T>, http2: bool) -> Result<(Sender, Connection), Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if http2 {
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(MAX_RESPONSE_HEADER_LIST)
            .handshake(io)
            .await?;
        Ok((Sender::Http2(sender), Box::pin(connection)))
    } else {
        let (sender, connection) = http1::Builder::new().handshake(io).await?;
        Ok((Sender::Http1(sender), Box::pin(connection)))
    }
}

/// HTTP/2 carries the authority in `:authority`, so `host` goes; and it
/// has no connection-level headers, which the h2 codec refuses outright
/// (guests cannot set most of them; `te` they can, and only `trailers`
/// survives).
fn for_http2(request: &mut http::Request<WasiBody>) {
    let headers = request.headers_mut();
    headers.remove(header::HOST);
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    let only_trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
    headers.remove(header::TE);
    if only_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    *request.version_mut() = http::Version::HTTP_2;
}

/// Waits for the answer's head while driving the connection that brings
/// it; the connection, unless it has ended, is left for the transport.
async fn answered(
    answer: impl Future<Output = hyper::Result<hyper::Response<Incoming>>>,
    connection: &mut Option<Connection>,
) -> Result<hyper::Response<Incoming>, Error> {
    let mut answer = pin!(answer);
    poll_fn(|cx| {
        if let Poll::Ready(answered) = answer.as_mut().poll(cx) {
            return Poll::Ready(answered.map_err(from_hyper));
        }
        let Some(driving) = connection.as_mut() else {
            return Poll::Pending;
        };
        match driving.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(ended) => {
                *connection = None;
                match ended {
                    Err(error) => Poll::Ready(Err(from_hyper(error))),
                    // hyper answers a request whose connection ended.
                    Ok(()) => answer.as_mut().poll(cx).map_err(from_hyper),
                }
            }
        }
    })
    .await
}

fn from_hyper(error: hyper::Error) -> Error {
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::Hyper(error)
    }
}

/// A response body that fails with `connection-read-timeout` when no piece
/// of it comes for `limit`.
struct BetweenBytes {
    body: Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now()
                    .checked_add(self.limit)
                    .unwrap_or_else(far_future);
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(from_hyper(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A deadline for a guest's limit too large to add to now.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// One client configuration for the process: ring, TLS 1.2 and 1.3, the
/// roots described above, ALPN h2 then http/1.1.
static CLIENT_TLS: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let system = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    if ignored > 0 || !system.errors.is_empty() {
        tracing::warn!(
            added,
            ignored,
            errors = ?system.errors,
            "some of the system's CA certificates could not be used"
        );
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .expect("ring offers TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
});
