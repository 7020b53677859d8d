//! The per-request store data: what one guest instance may touch.
//!
//! A [`Host`] is built fresh for every request and dropped with it. It
//! holds the instance's WASI context (environment from Compose, output
//! captured to the log, no preopened directories, no socket addresses
//! allowed), its wasi:http context with porto's [`Outbound`] hooks, its
//! key-value view (only its service's buckets) and its memory limits.

use std::sync::Arc;

use opentelemetry::trace::SpanContext;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guest_output::GuestOutput;
use crate::kv::{self, KvView};
use crate::outbound::Outbound;
use crate::runtime::{Runtime, ServiceRuntime};

pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    kv: KvView,
    outbound: Outbound,
    pub limits: StoreLimits,
}

impl Host {
    pub fn new(
        runtime: &Arc<Runtime>,
        service: &Arc<ServiceRuntime>,
        request_id: &str,
        trace: SpanContext,
    ) -> Self {
        let request_id: Arc<str> = Arc::from(request_id);
        let wasi = WasiCtx::builder()
            .envs(&service.spec.env)
            .stdout(GuestOutput::new(
                service.name.clone(),
                request_id.clone(),
                "stdout",
            ))
            .stderr(GuestOutput::new(
                service.name.clone(),
                request_id.clone(),
                "stderr",
            ))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            kv: KvView {
                backend: runtime.kv.clone(),
                buckets: service.buckets.clone(),
                service: service.name.clone(),
            },
            outbound: Outbound::new(runtime.clone(), service.clone(), request_id, trace),
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(service.spec.max_memory_bytes).unwrap_or(usize::MAX))
                .instances(64)
                .trap_on_grow_failure(true)
                .build(),
        }
    }

    pub fn kv(&mut self) -> kv::bindings::KvCtx<'_> {
        kv::bindings::KvCtx {
            table: &mut self.table,
            kv: &self.kv,
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
            hooks: &mut self.outbound,
        }
    }
}
