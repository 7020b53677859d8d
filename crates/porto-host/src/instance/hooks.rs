//! The outbound hooks an instance's `wasi:http` calls go through, and the
//! request each call is made for.
//!
//! A WASI 0.2 instance serves one request at a time: its hooks are that
//! request's. A WASI 0.3 instance serves several at once, each as its own
//! guest task; wasmtime hands `send_request` no task, so the p3 client
//! (`p3_client.rs`) names the task making the call just before, and the
//! hooks pick that task's request. A call from a task porto did not start
//! (none today) goes out under the instance's own hooks: the service's
//! rules, no request id.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard, RwLock};

use http::HeaderName;
use wasmtime::component::GuestTaskId;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::attribution::Attribution;
use crate::instance::outbound::{Outbound, Sent};
use crate::telemetry::RequestSpan;

/// What one WASI 0.3 request lends the instance serving it: its outbound
/// hooks (given back when the request ends, with the span they hold) and
/// its id.
pub(crate) struct TaskRequest {
    /// None once the request has ended.
    lent: Mutex<Option<Lent>>,
    pub request_id: Arc<str>,
    /// The attribution of the instance serving it, once one does: when the
    /// request ends it lets go of the request's span there too.
    serving: Mutex<Option<Arc<RwLock<Attribution>>>>,
}

struct Lent {
    outbound: Outbound,
    span: RequestSpan,
}

impl TaskRequest {
    pub(crate) fn new(outbound: Outbound, request_id: Arc<str>, span: RequestSpan) -> Arc<Self> {
        Arc::new(Self {
            lent: Mutex::new(Some(Lent { outbound, span })),
            request_id,
            serving: Mutex::new(None),
        })
    }

    fn lent(&self) -> MutexGuard<'_, Option<Lent>> {
        self.lent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_flight(&self) -> bool {
        self.lent().is_some()
    }

    /// The request's span, while it is in flight.
    pub(crate) fn span(&self) -> Option<RequestSpan> {
        self.lent().as_ref().map(|lent| lent.span.clone())
    }

    /// The request is over: its hooks and span are let go of, and output
    /// the instance prints from now on is no longer logged under it.
    pub(crate) fn end(&self) {
        drop(self.lent().take());
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(attribution) = serving {
            let mut attribution = attribution.write().unwrap_or_else(|p| p.into_inner());
            if attribution.request_id == self.request_id {
                attribution.span = None;
            }
        }
    }
}

pub(crate) struct Hooks {
    /// The request's (WASI 0.2), or the instance's own (WASI 0.3).
    pub own: Outbound,
    /// WASI 0.3: the requests in flight, by the guest task serving each.
    tasks: Vec<(GuestTaskId, Arc<TaskRequest>)>,
    /// The task whose call is being made now.
    current: Option<GuestTaskId>,
}

impl Hooks {
    pub(crate) fn new(own: Outbound) -> Self {
        Self {
            own,
            tasks: Vec::new(),
            current: None,
        }
    }

    /// `task` serves `request` from now on; requests that have ended are
    /// forgotten (a task id is reused once its task is gone). Returns how
    /// many are in flight now, this one included.
    pub(crate) fn begin_task(
        &mut self,
        task: GuestTaskId,
        request: Arc<TaskRequest>,
        attribution: &Arc<RwLock<Attribution>>,
    ) -> usize {
        self.tasks
            .retain(|(id, request)| *id != task && request.in_flight());
        *request.serving.lock().unwrap_or_else(|p| p.into_inner()) = Some(attribution.clone());
        self.tasks.push((task, request));
        self.tasks.len()
    }

    /// The calls made from now on are `task`'s.
    pub(crate) fn set_current(&mut self, task: Option<GuestTaskId>) {
        self.current = task;
    }

    pub(crate) fn end_request(&mut self) {
        self.own.end_request();
    }
}

/// wasi:http's own list of the headers a guest neither sees nor sets,
/// made once: its default hook makes a new closure for every header of
/// every request.
static FORBIDDEN_HEADERS: LazyLock<ForbiddenHeaderFilter> =
    LazyLock::new(|| Arc::new(|name| DEFAULT_FORBIDDEN_HEADERS.contains(name)));

impl WasiHttpHooks for Hooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        FORBIDDEN_HEADERS.clone()
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let task = self.current.take();
        let requester = task.and_then(|task| {
            self.tasks
                .iter()
                .find(|(id, _)| *id == task)
                .map(|(_, request)| request.clone())
        });
        if let Some(requester) = requester
            && let Some(lent) = requester.lent().as_mut()
        {
            return lent.outbound.send_request(request, options, fut);
        }
        self.own.send_request(request, options, fut)
    }
}
