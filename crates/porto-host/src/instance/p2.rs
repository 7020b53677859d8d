//! Running one request in a `wasi:http@0.2` guest (the `proxy` world):
//! a store whose epoch deadline is the request timeout, the instance
//! (instantiated from the [`Prepared`] component, or a kept one), its
//! `incoming-handler.handle`; the guest's answer, or why there is none;
//! and what became of the instance, for the dispatcher to keep or drop.
//!
//! A second guest ABI is a sibling of this module with the same shape: an
//! instance type for the pool and a `run` that returns a [`Ran`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::buffered_body::Buffered;
use crate::failure::Failure;
use crate::instance::component::{Prepared, Runner};
use crate::instance::host::Host;
use crate::instance::outbound::Outbound;
use crate::instance::outcome::{GuestFailure, PoolRelief, failure_of};
use crate::metrics::{InFlight, ServiceMetrics};
use crate::policy::limits::ticks;
use crate::telemetry::RequestSpan;

/// An instance between requests, and how many it has served.
pub(crate) struct Kept {
    store: Store<Host>,
    proxy: Proxy,
    served: u32,
    /// The [`Prepared::generation`] it is an instance of.
    generation: u64,
}

impl Kept {
    /// Requests it has served.
    pub(crate) fn served(&self) -> u32 {
        self.served
    }

    /// The generation of the component it is an instance of.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The largest its linear memory has grown to, in bytes.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.store.data().memory_bytes() as u64
    }

    /// Lets go of the request it served (its span), before it waits.
    pub(crate) fn end_request(&mut self) {
        self.store.data_mut().end_request();
    }

    /// Makes it ready for a new request: that request's id, span and
    /// outbound hooks.
    pub(crate) fn begin_request(
        mut self,
        request_id: Arc<str>,
        span: RequestSpan,
        outbound: Outbound,
    ) -> Instance {
        self.store
            .data_mut()
            .begin_request(request_id, span, outbound);
        Instance {
            store: self.store,
            source: Source::Kept(self.proxy),
            served: self.served,
        }
    }
}

/// The instance a request runs on.
pub(crate) struct Instance {
    store: Store<Host>,
    source: Source,
    /// Requests it served before this one.
    served: u32,
}

enum Source {
    Kept(Proxy),
    Fresh,
}

impl Instance {
    /// A new instance's store, whose memory `host` limits.
    pub(crate) fn fresh(engine: &Engine, host: Host) -> Self {
        let mut store = Store::new(engine, host);
        store.limiter(|host| &mut host.limits);
        Self {
            store,
            source: Source::Fresh,
            served: 0,
        }
    }
}

/// What one request needs besides its instance.
pub(crate) struct Call {
    pub component: Arc<Prepared>,
    pub timeout: Duration,
    pub metrics: ServiceMetrics,
    pub relief: Arc<dyn PoolRelief>,
    /// Whether the instance may be kept: then, if the guest has ended once
    /// it answers, it is handed back at once, not from a task.
    pub reusing: bool,
}

/// How a request's guest went.
pub(crate) struct Ran {
    pub answer: Result<hyper::Response<HyperOutgoingBody>, GuestFailure>,
    /// The rest of the guest, and its instance when it may be kept.
    pub rest: Rest,
}

/// What became of the instance once its guest ends: `Some` when the guest
/// answered and returned cleanly, `None` when it must not be kept.
pub(crate) enum Rest {
    Ended(Option<Kept>),
    /// It still runs (streaming its body): spawn this to finish it.
    Running(Pin<Box<dyn Future<Output = Option<Kept>> + Send>>),
}

/// One request's instance, from instantiation to the end of its handler.
type Guest = Pin<Box<dyn Future<Output = Ended> + Send>>;

/// How a guest ended: its handler's outcome, and its instance when it got
/// one.
struct Ended {
    outcome: wasmtime::Result<()>,
    instance: Option<Kept>,
}

type Answer = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// What came first: the guest's answer, or the end of the guest.
enum Stage {
    Answered(Result<Answer, oneshot::error::RecvError>),
    Ended(Result<Ended, String>),
}

/// Runs `request` in `instance`.
pub(crate) async fn run(call: Call, instance: Instance, request: hyper::Request<Buffered>) -> Ran {
    let Instance {
        mut store,
        source,
        served,
    } = instance;
    let timeout = call.timeout;
    let generation = call.component.generation;
    set_deadline(&mut store, timeout);
    let (sender, mut receiver) = oneshot::channel();
    let (incoming, outparam) = match handler_arguments(&mut store, request, sender) {
        Ok(arguments) => arguments,
        Err(failure) => {
            return Ran {
                answer: Err(GuestFailure {
                    kind: None,
                    failure,
                }),
                rest: Rest::Ended(None),
            };
        }
    };
    let mut guest: Guest = Box::pin(async move {
        // Dropped when the instance is done or its future dropped.
        let _in_flight = InFlight::enter(call.metrics.in_flight);
        let proxy = match source {
            Source::Kept(proxy) => {
                call.metrics.reused.inc();
                proxy
            }
            Source::Fresh => {
                let started = Instant::now();
                match instantiate(&call.component, &mut store, &*call.relief).await {
                    Ok(proxy) => {
                        call.metrics
                            .instantiation
                            .observe(started.elapsed().as_secs_f64());
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
            instance: Some(Kept {
                store,
                proxy,
                served: served + 1,
                generation,
            }),
        }
    });
    // The guest runs in this connection's task until it answers, and is
    // spawned only if it still has work then (streaming the rest of a
    // body). A guest that answers without waiting, like hello, costs no
    // task and no wake-up of another worker.
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
    match first {
        // Dropping the guest drops its instance.
        Err(_) => failed("timeout".into(), Failure::timeout(timeout)),
        Ok(Stage::Answered(Ok(answer))) => {
            let answered = answer.is_ok();
            // A reusing guest has most likely ended by now: then its
            // instance goes back before the response leaves, ready for
            // the next request.
            let now = if call.reusing {
                std::future::poll_fn(|cx| Poll::Ready(poll_guest(&mut guest, cx))).await
            } else {
                Poll::Pending
            };
            let rest = match now {
                Poll::Ready(ended) => Rest::Ended(keepable(answered, ended)),
                Poll::Pending => Rest::Running(Box::pin(async move {
                    let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
                    keepable(answered, ended)
                })),
            };
            Ran {
                answer: answer.map_err(error_response),
                rest,
            }
        }
        Ok(Stage::Answered(Err(_))) => {
            // The guest dropped its response slot unset: find out why once
            // it ends.
            let ended = std::future::poll_fn(|cx| poll_guest(&mut guest, cx)).await;
            let (kind, failure) = diagnose(ended.map(|e| e.outcome), timeout);
            failed(kind, failure)
        }
        Ok(Stage::Ended(ended)) => match receiver.try_recv() {
            Ok(answer) => Ran {
                rest: Rest::Ended(keepable(answer.is_ok(), ended)),
                answer: answer.map_err(error_response),
            },
            Err(_) => {
                let (kind, failure) = diagnose(ended.map(|e| e.outcome), timeout);
                failed(kind, failure)
            }
        },
    }
}

/// Every tick a running guest yields to tokio, so a guest that never
/// awaits (an infinite loop) cannot hold a worker thread; once its time is
/// up it traps. Set for each request: a kept instance gets the whole
/// timeout again.
fn set_deadline(store: &mut Store<Host>, timeout: Duration) {
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
}

type HandlerArguments = (
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
);

/// The request and the response slot, as the guest's handler takes them.
fn handler_arguments(
    store: &mut Store<Host>,
    request: hyper::Request<Buffered>,
    sender: oneshot::Sender<Answer>,
) -> Result<HandlerArguments, Failure> {
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
    Ok((incoming, outparam))
}

fn failed(kind: String, failure: Failure) -> Ran {
    Ran {
        answer: Err(GuestFailure {
            kind: Some(kind),
            failure,
        }),
        rest: Rest::Ended(None),
    }
}

fn error_response(code: ErrorCode) -> GuestFailure {
    GuestFailure {
        kind: Some("error_response".into()),
        failure: Failure::internal(format!("guest answered with an error: {code:?}")),
    }
}

/// The instance of a guest that ended, when it may serve again: it
/// answered, and its handler returned cleanly.
fn keepable(answered: bool, ended: Result<Ended, String>) -> Option<Kept> {
    match ended {
        Ok(Ended {
            outcome: Ok(()),
            instance,
        }) if answered => instance,
        _ => None,
    }
}

/// Instantiates `component`; when the pool is full, first has kept
/// instances give back their slots, and tries once more.
async fn instantiate(
    component: &Prepared,
    store: &mut Store<Host>,
    relief: &dyn PoolRelief,
) -> wasmtime::Result<Proxy> {
    let Runner::Wasip2(pre) = &component.runner else {
        wasmtime::bail!("not a WASI 0.2 component");
    };
    match pre.instantiate_async(&mut *store).await {
        Err(error)
            if error.is::<wasmtime::PoolConcurrencyLimitError>() && relief.drop_kept() > 0 =>
        {
            pre.instantiate_async(store).await
        }
        result => result,
    }
}

/// Why a guest ended without answering, and the kind it is counted as.
fn diagnose(ended: Result<wasmtime::Result<()>, String>, timeout: Duration) -> (String, Failure) {
    match ended {
        Ok(Ok(())) => (
            "no_response".to_string(),
            Failure::internal("returned without setting a response".into()),
        ),
        Ok(Err(error)) => failure_of(&error, timeout),
        Err(panic) => (
            "host_error".to_string(),
            Failure::internal(format!("host panicked while running the guest: {panic}")),
        ),
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
