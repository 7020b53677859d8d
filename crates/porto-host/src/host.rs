//! The per-request store data: what one guest instance may touch.
//!
//! A [`Host`] is built fresh for every request and dropped with it. It
//! holds the instance's WASI context (its service's environment, output
//! captured to the log, no preopened directories, no sockets), its
//! wasi:http context with the [`Outbound`] hooks, its key-value view (only
//! its service's buckets) and its memory limits.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::ServiceConfig;
use crate::guest_output::GuestOutput;
use crate::kv::{KvCtx, KvView};
use crate::limits::MAX_INSTANCES_PER_STORE;
use crate::outbound::Outbound;

pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    kv: KvView,
    outbound: Outbound,
    pub(crate) limits: StoreLimits,
}

impl Host {
    pub(crate) fn new(
        service: Arc<str>,
        config: &ServiceConfig,
        request_id: Arc<str>,
        kv: KvView,
        outbound: Outbound,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .envs(&config.env)
            .stdout(GuestOutput::new(
                service.clone(),
                request_id.clone(),
                "stdout",
            ))
            .stderr(GuestOutput::new(service, request_id, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            kv,
            outbound,
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(config.limits.max_memory_bytes).unwrap_or(usize::MAX))
                .instances(MAX_INSTANCES_PER_STORE)
                .trap_on_grow_failure(true)
                .build(),
        }
    }

    pub(crate) fn kv(&mut self) -> KvCtx<'_> {
        KvCtx {
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
