//! Running one request's guest: a new [`Store`] with a fresh [`Host`], an
//! epoch deadline for the service's request timeout, `instantiate_async`
//! from the `ProxyPre` made at start-up, `call_handle`; and, when the guest
//! gives no answer, why (counted by kind).
//!
//! Nothing survives the request but what the guest wrote to the key-value
//! store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::trace::SpanContext;
use tokio::sync::oneshot;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::failure::Failure;
use crate::host::Host;
use crate::kv::KvView;
use crate::limits::ticks;
use crate::metrics::{InFlight, ServiceMetrics, snake_case};
use crate::outbound::Outbound;
use crate::runtime::Runtime;
use crate::service::Service;

/// One request's instance, from instantiation to the end of its handler.
type Guest = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// What came first: the guest's answer, or the end of the guest.
enum Stage {
    Answered(
        Result<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>, oneshot::error::RecvError>,
    ),
    Ended(Result<wasmtime::Result<()>, String>),
}

impl Runtime {
    /// The store data of one instance of `service`.
    fn host(self: &Arc<Self>, service: &Service, request_id: &str, trace: SpanContext) -> Host {
        let request_id: Arc<str> = Arc::from(request_id);
        let kv = KvView {
            backend: self.kv.clone(),
            buckets: service.buckets.clone(),
            service: service.name.clone(),
        };
        let outbound = Outbound::new(
            self.clone(),
            self.metrics.clone(),
            service.name.clone(),
            service.config.clone(),
            request_id.clone(),
            trace,
        );
        Host::new(
            service.name.clone(),
            &service.config,
            request_id,
            kv,
            outbound,
        )
    }

    pub(crate) async fn run_guest(
        self: &Arc<Self>,
        service: &Arc<Service>,
        request: hyper::Request<Full<Bytes>>,
        request_id: &str,
        trace: &SpanContext,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Failure> {
        let timeout = service.config.limits.request_timeout;
        let mut store = Store::new(&self.engine, self.host(service, request_id, trace.clone()));
        store.limiter(|host| &mut host.limits);
        // Every tick a running guest yields to tokio, so a guest that never
        // awaits (an infinite loop) cannot hold a worker thread; once its
        // time is up it traps.
        let allowed = ticks(timeout);
        let mut used = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            used += 1;
            Ok(if used >= allowed {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|e| Failure::bad_request(format!("unusable request: {e:#}")))?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| Failure::internal(format!("response slot: {e:#}")))?;
        let pre = service.current().pre.clone();
        let ServiceMetrics {
            in_flight,
            instantiation,
        } = service
            .metrics
            .get_or_init(|| self.metrics.for_service(&service.name))
            .clone();
        let mut guest: Guest = Box::pin(async move {
            // Dropped when the instance is done or its future dropped.
            let _in_flight = InFlight::enter(in_flight);
            let started = std::time::Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            instantiation.observe(started.elapsed().as_secs_f64());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        });
        // The guest runs in this connection's task until it answers, and
        // is spawned only if it still has work then (streaming the rest of
        // a body). A guest that answers without waiting, like hello, costs
        // no task and no wake-up of another worker.
        let first = tokio::time::timeout(
            timeout,
            std::future::poll_fn(|cx| {
                if let Poll::Ready(answer) = Pin::new(&mut receiver).poll(cx) {
                    return Poll::Ready(Stage::Answered(answer));
                }
                poll_guest(&mut guest, cx).map(Stage::Ended)
            }),
        )
        .await;
        let answer = match first {
            Err(_) => {
                // Dropping the guest drops its instance.
                self.metrics.guest_failure(&service.name, "timeout");
                return Err(Failure::timeout(timeout));
            }
            Ok(Stage::Answered(Ok(answer))) => {
                tokio::spawn(async move {
                    let _ = guest.await;
                });
                answer
            }
            Ok(Stage::Answered(Err(_))) => {
                // The guest dropped its response slot unset: find out why
                // once it ends.
                let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
                return Err(self.diagnose(service, ended, timeout));
            }
            Ok(Stage::Ended(ended)) => match receiver.try_recv() {
                Ok(answer) => answer,
                Err(_) => return Err(self.diagnose(service, ended, timeout)),
            },
        };
        answer.map_err(|code| {
            self.metrics.guest_failure(&service.name, "error_response");
            Failure::internal(format!("guest answered with an error: {code:?}"))
        })
    }

    /// Why a guest ended without answering, counted by kind.
    fn diagnose(
        &self,
        service: &Service,
        ended: Result<wasmtime::Result<()>, String>,
        timeout: Duration,
    ) -> Failure {
        let (kind, failure) = match ended {
            Ok(Ok(())) => (
                "no_response".to_string(),
                Failure::internal("returned without setting a response".into()),
            ),
            Ok(Err(error)) if error.is::<wasmtime::PoolConcurrencyLimitError>() => (
                "pool_exhausted".to_string(),
                Failure::overloaded("instance_pool", format!("{error:#}")),
            ),
            Ok(Err(error)) => match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => {
                    ("timeout".to_string(), Failure::timeout(timeout))
                }
                Some(trap) => (
                    snake_case(&format!("{trap:?}")),
                    Failure::internal(format!("trapped: {error:?}")),
                ),
                None => (
                    "host_error".to_string(),
                    Failure::internal(format!("failed: {error:?}")),
                ),
            },
            Err(panic) => (
                "host_error".to_string(),
                Failure::internal(format!("host panicked while running the guest: {panic}")),
            ),
        };
        self.metrics.guest_failure(&service.name, &kind);
        failure
    }
}

/// Polls `guest`, turning a panic in the host code it runs into an error
/// for its request alone, as a panicking task would have been.
fn poll_guest(
    guest: &mut Guest,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<wasmtime::Result<()>, String>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| guest.as_mut().poll(cx))) {
        Ok(poll) => poll.map(Ok),
        Err(panic) => Poll::Ready(Err(panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".into()))),
    }
}
