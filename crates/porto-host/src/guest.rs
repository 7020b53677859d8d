//! Running one request's guest: a [`Store`] with a fresh [`Host`] (or a
//! kept instance given the request's host state, when the service reuses
//! instances: `reuse.rs`), an epoch deadline for the service's request
//! timeout, `instantiate_async` from the `ProxyPre` made at start-up,
//! `call_handle`; and, when the guest gives no answer, why (counted by
//! kind).
//!
//! Nothing survives the request but what the guest wrote to the key-value
//! store, and, with reuse, the instance itself.

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
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::failure::Failure;
use crate::host::Host;
use crate::kv::KvView;
use crate::limits::ticks;
use crate::metrics::{InFlight, ServiceMetrics, snake_case};
use crate::outbound::Outbound;
use crate::reuse::Retired;
use crate::runtime::Runtime;
use crate::service::{Loaded, Service};
use crate::telemetry::RequestSpan;

/// One request's instance, from instantiation (or being taken from the
/// kept ones) to the end of its handler.
type Guest = Pin<Box<dyn Future<Output = Ended> + Send>>;

/// How a guest ended: its handler's outcome, and its instance when it got
/// one, to be kept or dropped.
struct Ended {
    outcome: wasmtime::Result<()>,
    instance: Option<(Store<Host>, Proxy)>,
}

/// What came first: the guest's answer, or the end of the guest.
enum Stage {
    Answered(
        Result<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>, oneshot::error::RecvError>,
    ),
    Ended(Result<Ended, String>),
}

/// The instance a request runs on, and how many requests it served before.
struct Instance {
    store: Store<Host>,
    source: Source,
    loaded: Arc<Loaded>,
    served: u32,
}

/// Where the request's instance comes from.
enum Source {
    Kept(Proxy),
    Fresh(ProxyPre<Host>),
}

impl Runtime {
    /// The outbound hooks of one request of `service`.
    fn outbound(
        self: &Arc<Self>,
        service: &Service,
        request_id: &Arc<str>,
        span: &RequestSpan,
        trace: SpanContext,
    ) -> Outbound {
        Outbound::new(
            self.clone(),
            self.metrics.clone(),
            service.name.clone(),
            service.config.clone(),
            request_id.clone(),
            span.clone(),
            trace,
        )
    }

    /// A kept instance of `service` made ready for this request, or a new
    /// store for a fresh one.
    fn instance_for(
        self: &Arc<Self>,
        service: &Service,
        request_id: Arc<str>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> Instance {
        let loaded = service.current();
        let outbound = self.outbound(service, &request_id, span, trace.clone());
        if service.config.reuse.enabled() {
            let (kept, stale) = service.idle.take(&loaded);
            self.metrics
                .retired(&service.name, Retired::Reloaded, stale);
            if let Some(kept) = kept {
                let mut store = kept.store;
                store
                    .data_mut()
                    .begin_request(request_id, span.clone(), outbound);
                return Instance {
                    store,
                    source: Source::Kept(kept.proxy),
                    loaded,
                    served: kept.served,
                };
            }
        }
        let kv = KvView {
            backend: self.kv.clone(),
            buckets: service.buckets.clone(),
            service: service.name.clone(),
        };
        let host = Host::new(
            service.name.clone(),
            &service.config,
            request_id,
            span.clone(),
            kv,
            outbound,
        );
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limits);
        Instance {
            store,
            source: Source::Fresh(loaded.pre.clone()),
            loaded,
            served: 0,
        }
    }

    pub(crate) async fn run_guest(
        self: &Arc<Self>,
        service: &Arc<Service>,
        request: hyper::Request<Full<Bytes>>,
        request_id: Arc<str>,
        span: &RequestSpan,
        trace: &SpanContext,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Failure> {
        let timeout = service.config.limits.request_timeout;
        let Instance {
            mut store,
            source,
            loaded,
            served,
        } = self.instance_for(service, request_id, span, trace);
        // Every tick a running guest yields to tokio, so a guest that never
        // awaits (an infinite loop) cannot hold a worker thread; once its
        // time is up it traps. Set for each request: a kept instance gets
        // the whole timeout again.
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
        let ServiceMetrics {
            in_flight,
            instantiation,
            reused,
        } = service
            .metrics
            .get_or_init(|| self.metrics.for_service(&service.name))
            .clone();
        let runtime = self.clone();
        let mut guest: Guest = Box::pin(async move {
            // Dropped when the instance is done or its future dropped.
            let _in_flight = InFlight::enter(in_flight);
            let proxy = match source {
                Source::Kept(proxy) => {
                    reused.inc();
                    proxy
                }
                Source::Fresh(pre) => {
                    let started = std::time::Instant::now();
                    match runtime.instantiate(&pre, &mut store).await {
                        Ok(proxy) => {
                            instantiation.observe(started.elapsed().as_secs_f64());
                            proxy
                        }
                        Err(error) => {
                            return Ended {
                                outcome: Err(error),
                                instance: None,
                            };
                        }
                    }
                }
            };
            let outcome = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await;
            Ended {
                outcome,
                instance: Some((store, proxy)),
            }
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
                self.retire_failed(service);
                return Err(Failure::timeout(timeout));
            }
            Ok(Stage::Answered(Ok(answer))) => {
                let answered = answer.is_ok();
                // A reusing service's guest has most likely ended by now:
                // then the instance is kept before the response leaves,
                // ready for the next request. Otherwise (and always without
                // reuse) the rest of the guest runs in a task of its own.
                let now = if service.config.reuse.enabled() {
                    std::future::poll_fn(|cx| Poll::Ready(poll_guest(&mut guest, cx))).await
                } else {
                    Poll::Pending
                };
                match now {
                    Poll::Ready(ended) => self.keep(service, loaded, served, answered, ended),
                    Poll::Pending => {
                        let (runtime, service) = (self.clone(), service.clone());
                        tokio::spawn(async move {
                            let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
                            runtime.keep(&service, loaded, served, answered, ended);
                        });
                    }
                }
                answer
            }
            Ok(Stage::Answered(Err(_))) => {
                // The guest dropped its response slot unset: find out why
                // once it ends.
                let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
                self.retire_failed(service);
                return Err(self.diagnose(service, ended.map(|e| e.outcome), timeout));
            }
            Ok(Stage::Ended(ended)) => match receiver.try_recv() {
                Ok(answer) => {
                    self.keep(service, loaded, served, answer.is_ok(), ended);
                    answer
                }
                Err(_) => {
                    self.retire_failed(service);
                    return Err(self.diagnose(service, ended.map(|e| e.outcome), timeout));
                }
            },
        };
        answer.map_err(|code| {
            self.metrics.guest_failure(&service.name, "error_response");
            Failure::internal(format!("guest answered with an error: {code:?}"))
        })
    }

    /// Instantiates from `pre`; when the pool is full, first gives back
    /// the kept instances of every service, which hold pool slots while
    /// they wait, and tries once more.
    async fn instantiate(
        &self,
        pre: &ProxyPre<Host>,
        store: &mut Store<Host>,
    ) -> wasmtime::Result<Proxy> {
        match pre.instantiate_async(&mut *store).await {
            Err(error)
                if error.is::<wasmtime::PoolConcurrencyLimitError>() && self.drop_kept() > 0 =>
            {
                pre.instantiate_async(store).await
            }
            result => result,
        }
    }

    /// Drops every kept instance of every service; how many.
    fn drop_kept(&self) -> usize {
        self.services()
            .iter()
            .map(|service| {
                let dropped = service.idle.clear();
                self.metrics
                    .retired(&service.name, Retired::PoolFull, dropped);
                dropped
            })
            .sum()
    }

    /// Keeps the instance of a request that ended cleanly with an answer
    /// for the service's next request, if its reuse policy allows.
    fn keep(
        &self,
        service: &Service,
        loaded: Arc<Loaded>,
        served_before: u32,
        answered: bool,
        ended: Result<Ended, String>,
    ) {
        let policy = &service.config.reuse;
        if !policy.enabled() {
            return;
        }
        let Ok(Ended {
            outcome: Ok(()),
            instance: Some((store, proxy)),
        }) = ended
        else {
            self.retire_failed(service);
            return;
        };
        if !answered {
            self.retire_failed(service);
            return;
        }
        if let Err(why) = service
            .idle
            .keep(store, proxy, loaded, served_before + 1, policy)
        {
            self.metrics.retired(&service.name, why, 1);
        }
    }

    fn retire_failed(&self, service: &Service) {
        if service.config.reuse.enabled() {
            self.metrics.retired(&service.name, Retired::Failed, 1);
        }
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
fn poll_guest(guest: &mut Guest, cx: &mut std::task::Context<'_>) -> Poll<Result<Ended, String>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| guest.as_mut().poll(cx))) {
        Ok(poll) => poll.map(Ok),
        Err(panic) => Poll::Ready(Err(panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".into()))),
    }
}
