//! The per-request store data: what one guest instance may touch.
//!
//! A [`Host`] is built with its instance and dropped with it: for every
//! request, or for several one after another when its service reuses
//! instances, and then [`Host::begin_request`] gives it each request's own
//! state. It holds the instance's WASI context (its service's environment,
//! output captured to the log, no preopened directories, no sockets), its
//! wasi:http context with the [`Outbound`] hooks, its key-value view (only
//! its service's buckets) and its memory limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::attribution::Attribution;
use crate::instance::guest_output::GuestOutput;
use crate::instance::hooks::{Hooks, TaskRequest};
use crate::instance::outbound::Outbound;
use crate::kv::{KvCtx, KvView};
use crate::policy::limits::MAX_INSTANCES_PER_STORE;
use crate::policy::service::ServiceConfig;
use crate::telemetry::RequestSpan;

pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    kv: KvView,
    hooks: Hooks,
    attribution: Arc<RwLock<Attribution>>,
    pub(crate) limits: InstanceLimits,
}

impl Host {
    pub(crate) fn new(
        service: Arc<str>,
        config: &ServiceConfig,
        request_id: Arc<str>,
        span: Option<RequestSpan>,
        kv: KvView,
        outbound: Outbound,
    ) -> Self {
        let attribution = Attribution::new(request_id, span);
        let wasi = WasiCtx::builder()
            .envs(&config.env)
            .stdout(GuestOutput::new(
                service.clone(),
                attribution.clone(),
                "stdout",
            ))
            .stderr(GuestOutput::new(service, attribution.clone(), "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            kv,
            hooks: Hooks::new(outbound),
            attribution,
            limits: InstanceLimits {
                limits: StoreLimitsBuilder::new()
                    .memory_size(
                        usize::try_from(config.limits.max_memory_bytes).unwrap_or(usize::MAX),
                    )
                    .instances(MAX_INSTANCES_PER_STORE)
                    .trap_on_grow_failure(true)
                    .build(),
                memory_bytes: 0,
                watched: None,
            },
        }
    }

    /// Makes a kept instance's host state that of a new request: its id
    /// (for output and logs), its span and the outbound hooks carrying its
    /// id and trace. Nothing of the previous request's remains.
    pub(crate) fn begin_request(
        &mut self,
        request_id: Arc<str>,
        span: RequestSpan,
        outbound: Outbound,
    ) {
        *self.attribution.write().unwrap_or_else(|p| p.into_inner()) = Attribution {
            request_id,
            span: Some(span),
        };
        self.hooks.own = outbound;
    }

    /// WASI 0.3: guest task `task` serves `request` from now on. Output
    /// the instance prints is logged under the request while it is the
    /// only one in flight, under no request while several are.
    pub(crate) fn begin_task(&mut self, task: GuestTaskId, request: Arc<TaskRequest>) {
        let request_id = request.request_id.clone();
        let span = request.span();
        let in_flight = self.hooks.begin_task(task, request, &self.attribution);
        let mut attribution = self.attribution.write().unwrap_or_else(|p| p.into_inner());
        *attribution = if in_flight == 1 {
            Attribution { request_id, span }
        } else {
            Attribution {
                request_id: Arc::from(""),
                span: None,
            }
        };
    }

    /// WASI 0.3: the `wasi:http` calls made from now on are `task`'s.
    pub(crate) fn set_current_task(&mut self, task: Option<GuestTaskId>) {
        self.hooks.set_current(task);
    }

    /// Keeps `memory` up to date with the largest the instance's linear
    /// memory has grown to, for whoever decides on its reuse without the
    /// store at hand.
    pub(crate) fn watch_memory(&mut self, memory: Arc<AtomicU64>) {
        memory.store(self.limits.memory_bytes as u64, Ordering::Relaxed);
        self.limits.watched = Some(memory);
    }

    /// Lets go of what ties a kept instance to the request it served: its
    /// span (and so the trace span's end, which an export waits for)
    /// until the next request begins.
    pub(crate) fn end_request(&mut self) {
        self.attribution
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .span = None;
        self.hooks.end_request();
    }

    /// The largest linear memory of the instance, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.limits.memory_bytes
    }

    pub(crate) fn kv(&mut self) -> KvCtx<'_> {
        KvCtx {
            table: &mut self.table,
            kv: &self.kv,
            attribution: &self.attribution,
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The instance's [`StoreLimits`], and the size its memory has grown to
/// (what reuse decides on).
pub(crate) struct InstanceLimits {
    limits: StoreLimits,
    memory_bytes: usize,
    watched: Option<Arc<AtomicU64>>,
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes = self.memory_bytes.max(desired);
            if let Some(watched) = &self.watched {
                watched.store(self.memory_bytes as u64, Ordering::Relaxed);
            }
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
