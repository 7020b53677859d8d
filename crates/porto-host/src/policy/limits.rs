//! The limits porto puts on a request, an instance or the instance pool,
//! with their defaults. Three kinds live beside what they bound instead:
//! the reuse bounds (`policy/reuse.rs`), the key-value backends' operation
//! deadline (porto-kv) and the 64 route classes a service's metrics keep
//! (metrics.rs); the worker's timer heartbeat (serve/server.rs) is a cost
//! measure, not a limit.
//!
//! Per service ([`Limits`]): how long a request may run, how much memory
//! an instance may grow to, how many instances may run at once and how
//! large a body may be. For every request alike: the size of its head.
//! For the process: the pool's capacity. The checks that need no guest
//! (head size, declared and actual body size, body arrival time) run here,
//! before an instance exists.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt as _;
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::buffered_body::Buffered;
use crate::failure::Failure;

/// What one service's requests and instances may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From request to response head; then 504, and a guest still
    /// running is interrupted.
    pub request_timeout: Duration,
    /// Linear memory one instance may grow to; growing past it traps.
    pub max_memory_bytes: u64,
    /// Instances at once; past it a request waits for one to finish, up
    /// to [`MAX_SLOT_WAIT`], then gets 503 with `Retry-After`.
    pub max_concurrency: usize,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: u64,
}

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 128;
/// Per service; three services at the default, every request holding two
/// instances (through the gateway), stay inside the pool of
/// [`DEFAULT_INSTANCE_POOL`].
pub const DEFAULT_MAX_CONCURRENCY: usize = 300;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

impl Limits {
    /// The limits the configuration keys give (`request_timeout_ms`,
    /// `max_memory_mib`, `max_concurrency`, `max_body_bytes`), defaults for
    /// the ones not set: one definition for every front end.
    pub fn from_keys(
        request_timeout_ms: Option<u64>,
        max_memory_mib: Option<u64>,
        max_concurrency: Option<usize>,
        max_body_bytes: Option<u64>,
    ) -> Self {
        let defaults = Self::default();
        Self {
            request_timeout: request_timeout_ms
                .map_or(defaults.request_timeout, Duration::from_millis),
            max_memory_bytes: max_memory_mib
                .map_or(defaults.max_memory_bytes, |mib| mib * 1024 * 1024),
            max_concurrency: max_concurrency.unwrap_or(defaults.max_concurrency),
            max_body_bytes: max_body_bytes.unwrap_or(defaults.max_body_bytes),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_memory_bytes: DEFAULT_MAX_MEMORY_MIB * 1024 * 1024,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// The largest request line plus headers a guest is given (431 beyond).
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;

/// hyper's read buffer: a bound on what one connection can make porto hold
/// before the head is parsed.
pub(crate) const MAX_CONNECTION_BUFFER_BYTES: usize = 64 * 1024;

/// Longest a request waits for a concurrency slot (in arrival order)
/// before it is refused with 503; never longer than its request timeout.
/// Refusing at once looked cheaper, but clients that retry at once (most
/// load generators, many retry loops) then spend the capacity on
/// refusals: under 2,000 connections, goodput fell to under half of it.
/// Waiting briefly keeps every slot busy with admitted work instead.
pub const MAX_SLOT_WAIT: Duration = Duration::from_secs(1);

/// Request bodies held in memory at once, across all services: a body is
/// read whole before its instance runs, so this bounds what slow or large
/// uploads can make porto hold. A request that would pass it gets 503.
pub(crate) const MAX_BUFFERED_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Longest wait for the next piece of a request body; then 408. The whole
/// body must also arrive within the request timeout.
pub(crate) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a request head, counted from when the connection is
/// ready for one: it bounds clients that send their head slowly and
/// keep-alive connections left idle.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2's own limits, per connection. Each stream is a request with the
/// same per-request limits as over HTTP/1.1; these bound what one
/// connection can make porto hold or do besides.
///
/// Streams open at once: the recommended minimum (RFC 9113, 6.5.2) rounded
/// up. A client wanting more opens another connection, which the
/// connection limit counts.
pub(crate) const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// A request's decoded header list, as over HTTP/1.1 ([`MAX_HEAD_BYTES`]).
/// Header blocks are checked while they arrive, CONTINUATION frames
/// included, so a flood of them ends the connection instead of growing a
/// buffer (the 2024 CONTINUATION flood).
pub(crate) const H2_MAX_HEADER_LIST_BYTES: u32 = MAX_HEAD_BYTES as u32;
/// Flow-control windows: what a client may send before porto reads. A
/// stream's window is the default body limit, so a body within it never
/// waits on a window update; the connection's lets eight such bodies
/// arrive at once.
pub(crate) const H2_STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
pub(crate) const H2_CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
/// The protocol's default frame size.
pub(crate) const H2_MAX_FRAME_BYTES: u32 = 16 * 1024;
/// Response bytes buffered per stream ahead of the client's window.
pub(crate) const H2_MAX_SEND_BUFFER_BYTES: usize = 256 * 1024;
/// Streams the client resets before porto has taken them up: past it the
/// connection is ended with GOAWAY (ENHANCE_YOUR_CALM). This is the
/// defence against rapid reset (CVE-2023-44487), where a client opens and
/// cancels streams as fast as it can to make the server start work it
/// never pays for.
pub(crate) const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams porto itself resets for a client's protocol errors before it
/// ends the connection instead.
pub(crate) const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// A PING every so often, and the connection is closed if the client does
/// not answer one within the timeout: a peer that vanished without a FIN
/// stops holding a connection.
pub(crate) const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// An HTTP/2 connection with no stream open and nothing read for this long
/// is closed, as an idle HTTP/1.1 keep-alive one is after
/// [`HEADER_READ_TIMEOUT`].
pub(crate) const H2_IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;
pub(crate) const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Open client connections, across all listeners. Past it a new one is
/// answered 503 and closed at once, so a connection flood costs a write,
/// not a task and buffers.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;

/// Instances one request's store may create (a component is a handful of
/// core instances).
pub(crate) const MAX_INSTANCES_PER_STORE: usize = 64;

/// Component instances the pool holds at once, across all services, by
/// default: one per request inside a guest, so 1,000 requests through the
/// gateway (two instances each) fit. Beyond it a request is refused with
/// 503 `overloaded`. Each slot reserves address space (not memory) for the
/// largest memory a service may have, so a host with little address space
/// runs a smaller pool (`StackConfig::instance_pool`).
pub const DEFAULT_INSTANCE_POOL: NonZeroU32 = NonZeroU32::new(2_000).expect("non-zero");

/// Core instances (and tables) the pool keeps per component instance. A
/// wasm32-wasip2 component made by Rust has three core instances (its
/// module and wit-component's shim and fixups modules); sized for one
/// more. The first pool, sized 1,000 in core instances, turned away
/// every request beyond 333 in flight (bench/in-flight).
pub(crate) const CORE_INSTANCES_PER_COMPONENT: u32 = 4;

/// Linear memory kept mapped and zeroed when an instance ends, instead of
/// `madvise`d away and faulted back in by the next one.
pub(crate) const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;
pub(crate) const KEEP_RESIDENT_TABLE_BYTES: usize = 64 * 1024;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Epoch ticks a request of `timeout` may run for.
pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// A concurrency slot of `slots`, at once if one is free, else the first
/// to come free within [`MAX_SLOT_WAIT`] (and the request timeout).
pub(crate) async fn take_slot(
    slots: &Arc<Semaphore>,
    limits: &Limits,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    let wait = MAX_SLOT_WAIT.min(limits.request_timeout);
    tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Refuses a request whose head or declared body is too large, before any
/// of its body is read.
pub(crate) fn check_head<B>(request: &hyper::Request<B>, limits: &Limits) -> Result<(), Failure> {
    let head_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + uri_len(request.uri());
    if head_bytes > MAX_HEAD_BYTES {
        return Err(Failure::headers_too_large());
    }
    if declared_length(request).is_some_and(|n| n > limits.max_body_bytes) {
        return Err(Failure::payload_too_large(format!(
            "declared body over {} bytes",
            limits.max_body_bytes
        )));
    }
    Ok(())
}

/// Reads `request`'s body up to `max_body_bytes`: each piece within
/// [`BODY_IDLE_TIMEOUT`], the whole within the request timeout, and every
/// byte counted against `budget` (the bytes all buffered bodies may take)
/// until the returned permit is dropped.
pub(crate) async fn read_body<B>(
    request: hyper::Request<B>,
    limits: &Limits,
    budget: &Arc<Semaphore>,
) -> Result<(hyper::Request<Buffered>, Option<OwnedSemaphorePermit>), Failure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return Ok((hyper::Request::from_parts(parts, Buffered::default()), None));
    }
    let limit = usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX);
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let mut body = std::pin::pin!(body);
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut total = 0usize;
    let mut trailers: Option<HeaderMap> = None;
    loop {
        let wait = deadline.min(tokio::time::Instant::now() + BODY_IDLE_TIMEOUT);
        let frame = match tokio::time::timeout_at(wait, body.frame()).await {
            Err(_) => return Err(Failure::body_timeout()),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let e: wasmtime_wasi_http::Error = e.into();
                return Err(Failure::bad_request(format!("reading the body: {e}")));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(more);
                }
                continue;
            }
        };
        total += data.len();
        if total > limit {
            return Err(Failure::payload_too_large(format!(
                "body over {limit} bytes"
            )));
        }
        let permit = u32::try_from(data.len())
            .ok()
            .and_then(|n| budget.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                Failure::overloaded(
                    "buffered_bodies",
                    "request bodies in memory at their limit".into(),
                )
            })?;
        match &mut held {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        pieces.push(data);
    }
    let bytes = match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().unwrap_or_default(),
        _ => Bytes::from(pieces.concat()),
    };
    Ok((
        hyper::Request::from_parts(parts, Buffered::new(bytes, trailers)),
        held,
    ))
}

/// The length of `uri` as written, without writing it.
fn uri_len(uri: &http::Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path_and_query = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    scheme + authority + path_and_query
}

fn declared_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_at_least_one_tick_and_rounds_down() {
        assert_eq!(ticks(Duration::from_millis(1)), 2);
        assert_eq!(ticks(Duration::from_millis(95)), 10);
        assert_eq!(ticks(Duration::from_secs(30)), 3001);
    }

    #[test]
    fn heads_and_declared_bodies_are_checked_before_reading() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let request = |length: &str| {
            hyper::Request::builder()
                .header(http::header::CONTENT_LENGTH, length)
                .body(())
                .expect("request")
        };
        assert!(check_head(&request("10"), &limits).is_ok());
        assert_eq!(
            check_head(&request("11"), &limits).map_err(|f| f.status),
            Err(413)
        );
        let huge = hyper::Request::builder()
            .header("x-big", "a".repeat(MAX_HEAD_BYTES))
            .body(())
            .expect("request");
        assert_eq!(check_head(&huge, &limits).map_err(|f| f.status), Err(431));
    }

    /// Waiters for a full service's slots are served in arrival order, so
    /// a request that has waited longest goes next, never starved by later
    /// ones.
    #[tokio::test]
    async fn slots_go_to_waiters_in_arrival_order() {
        let slots = Arc::new(Semaphore::new(1));
        let limits = Limits::default();
        let held = take_slot(&slots, &limits).await.expect("a free slot");
        let (served, mut order) = tokio::sync::mpsc::unbounded_channel();
        let arrive = |waiter: usize| {
            let (slots, served) = (slots.clone(), served.clone());
            tokio::spawn(async move {
                let slot = take_slot(&slots, &Limits::default()).await;
                let _ = served.send((waiter, slot.is_some()));
            });
        };
        for waiter in 0..5 {
            arrive(waiter);
            // Let it queue before the next one arrives.
            tokio::task::yield_now().await;
        }
        drop(held);
        // One that arrives just as the slot comes free does not jump the
        // queue.
        arrive(5);
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(order.recv().await.expect("a waiter answers"));
        }
        assert_eq!(got, (0..6).map(|w| (w, true)).collect::<Vec<_>>());
    }

    /// A waiter gives up after MAX_SLOT_WAIT, or sooner when its request
    /// timeout is shorter, and not before.
    #[tokio::test]
    async fn the_slot_wait_is_bounded_by_the_request_timeout() {
        let slots = Arc::new(Semaphore::new(1));
        let _held = take_slot(&slots, &Limits::default())
            .await
            .expect("a free slot");
        let short = Limits {
            request_timeout: Duration::from_millis(120),
            ..Limits::default()
        };
        let started = std::time::Instant::now();
        assert!(take_slot(&slots, &short).await.is_none());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(120) && waited < MAX_SLOT_WAIT,
            "gave up after {waited:?}"
        );
        let started = std::time::Instant::now();
        assert!(take_slot(&slots, &Limits::default()).await.is_none());
        let waited = started.elapsed();
        assert!(
            waited >= MAX_SLOT_WAIT && waited < MAX_SLOT_WAIT * 3,
            "gave up after {waited:?}"
        );
    }

    #[test]
    fn a_uri_is_measured_as_written() {
        for uri in [
            "/",
            "/users/7?x=1",
            "http://user-service/users/7",
            "http://h:8080/a?b",
            "*",
        ] {
            let parsed: http::Uri = uri.parse().expect("uri");
            assert_eq!(uri_len(&parsed), parsed.to_string().len(), "{uri}");
        }
    }
}
