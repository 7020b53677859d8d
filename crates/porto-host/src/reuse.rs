//! Opt-in instance reuse: a service with `max_requests > 1` keeps an
//! instance that answered cleanly and gives it the service's next
//! request, one request at a time, instead of instantiating afresh.
//!
//! What a kept instance carries over is its own: its linear memory and
//! globals, and the resources it still holds. Nothing of porto's per-request
//! state does: before each request the host gets the request's id, trace
//! context, outbound hooks and output attribution anew
//! ([`crate::host::Host::begin_request`]), a fresh epoch deadline and a
//! fresh in-flight count. An instance is retired instead of kept after a
//! trap, a timeout, a missing or failed response, once it has served
//! `max_requests`, once its memory has grown past `max_memory_bytes`, when
//! its service is reloaded, and after `idle_timeout` without a request.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::host::Host;
use crate::runtime::Runtime;
use crate::server::{current_worker, worker_count};
use crate::service::Loaded;

/// A service's reuse policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Requests one instance may serve, one after another; 1 (the
    /// default) is a fresh instance per request.
    pub max_requests: u32,
    /// A kept instance not given a request for this long is dropped.
    pub idle_timeout: Duration,
    /// An instance whose linear memory has grown past this is not kept.
    pub max_memory_bytes: u64,
}

pub const DEFAULT_REUSE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REUSE_MAX_MEMORY_MIB: u64 = 16;

impl Default for Reuse {
    fn default() -> Self {
        Self {
            max_requests: 1,
            idle_timeout: DEFAULT_REUSE_IDLE_TIMEOUT,
            max_memory_bytes: DEFAULT_REUSE_MAX_MEMORY_MIB * 1024 * 1024,
        }
    }
}

impl Reuse {
    /// The policy the configuration keys give (`max_instance_reuse`,
    /// `reuse_idle_timeout_ms`, `reuse_max_memory_mib`), defaults for the
    /// ones not set: one definition for every front end.
    pub fn from_keys(
        max_instance_reuse: Option<NonZeroU32>,
        reuse_idle_timeout_ms: Option<u64>,
        reuse_max_memory_mib: Option<u64>,
    ) -> Self {
        let defaults = Self::default();
        Self {
            max_requests: max_instance_reuse.map_or(defaults.max_requests, NonZeroU32::get),
            idle_timeout: reuse_idle_timeout_ms
                .map_or(defaults.idle_timeout, Duration::from_millis),
            max_memory_bytes: reuse_max_memory_mib
                .map_or(defaults.max_memory_bytes, |mib| mib * 1024 * 1024),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_requests > 1
    }
}

/// An instance between requests.
pub(crate) struct Kept {
    pub store: Store<Host>,
    pub proxy: Proxy,
    /// The component it is an instance of: a reload retires it.
    pub loaded: Arc<Loaded>,
    /// Requests it has served so far.
    pub served: u32,
    idle_since: Instant,
}

/// Why an instance was not kept, for `porto_instances_retired_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// It served `max_requests`.
    Used,
    /// Its memory grew past `max_memory_bytes`.
    Memory,
    /// No request came within `idle_timeout`.
    Idle,
    /// Its service runs another component now.
    Reloaded,
    /// It trapped, ran out of time, gave no response or a failed one.
    Failed,
    /// The instance pool was full: kept instances give their slots back.
    PoolFull,
}

impl Retired {
    pub fn label(self) -> &'static str {
        match self {
            Self::Used => "used",
            Self::Memory => "memory",
            Self::Idle => "idle",
            Self::Reloaded => "reloaded",
            Self::Failed => "failed",
            Self::PoolFull => "pool_full",
        }
    }
}

/// One service's kept instances, by the worker that last ran them, the
/// most recently used last. A request takes one its own worker ran if
/// there is one: its memory and host state are still in that core's
/// caches, and what the last request allocated is freed on the thread
/// that allocated it.
pub(crate) struct Idle {
    by_worker: Box<[Mutex<Vec<Kept>>]>,
}

impl Default for Idle {
    fn default() -> Self {
        Self {
            by_worker: (0..worker_count()).map(|_| Mutex::default()).collect(),
        }
    }
}

fn lock(kept: &Mutex<Vec<Kept>>) -> MutexGuard<'_, Vec<Kept>> {
    kept.lock().unwrap_or_else(|p| p.into_inner())
}

impl Idle {
    /// This worker's list of kept instances.
    fn own(&self) -> usize {
        current_worker() % self.by_worker.len()
    }

    /// The most recently used kept instance of `current`, this worker's
    /// first, then another's; and how many kept instances of another
    /// component were dropped on the way.
    pub fn take(&self, current: &Arc<Loaded>) -> (Option<Kept>, usize) {
        let mut stale = Vec::new();
        let (own, workers) = (self.own(), self.by_worker.len());
        let found = (0..workers).find_map(|offset| {
            let mut kept = lock(&self.by_worker[(own + offset) % workers]);
            loop {
                match kept.pop() {
                    Some(k) if Arc::ptr_eq(&k.loaded, current) => break Some(k),
                    Some(k) => stale.push(k),
                    None => break None,
                }
            }
        });
        // Dropped outside the lock: dropping an instance resets its pool
        // slot, which is not free.
        (found, stale.len())
    }

    /// Keeps an instance that has served `served` requests, or says why
    /// not.
    pub fn keep(
        &self,
        mut store: Store<Host>,
        proxy: Proxy,
        loaded: Arc<Loaded>,
        served: u32,
        policy: &Reuse,
    ) -> Result<(), Retired> {
        if served >= policy.max_requests {
            return Err(Retired::Used);
        }
        if store.data().memory_bytes() as u64 > policy.max_memory_bytes {
            return Err(Retired::Memory);
        }
        store.data_mut().end_request();
        let kept = Kept {
            store,
            proxy,
            loaded,
            served,
            idle_since: Instant::now(),
        };
        lock(&self.by_worker[self.own()]).push(kept);
        Ok(())
    }

    /// Drops the instances idle for `idle_timeout` or longer; how many.
    pub fn expire(&self, idle_timeout: Duration) -> usize {
        let expired: Vec<Kept> = self
            .by_worker
            .iter()
            .flat_map(|kept| {
                let mut kept = lock(kept);
                // Oldest first: the expired ones are a prefix.
                let fresh = kept
                    .iter()
                    .position(|k| k.idle_since.elapsed() < idle_timeout)
                    .unwrap_or(kept.len());
                kept.drain(..fresh).collect::<Vec<_>>()
            })
            .collect();
        expired.len()
    }

    /// Drops every kept instance (a full instance pool, a reload); how many.
    pub fn clear(&self) -> usize {
        let all: Vec<Vec<Kept>> = self
            .by_worker
            .iter()
            .map(|kept| std::mem::take(&mut *lock(kept)))
            .collect();
        all.iter().map(Vec::len).sum()
    }
}

/// Drops kept instances once they have been idle for their service's
/// `idle_timeout`, checking a few times per timeout, for as long as the
/// runtime lives.
pub(crate) async fn expire_idle(runtime: Weak<Runtime>) {
    let services: Vec<_> = match runtime.upgrade() {
        Some(runtime) => runtime
            .services()
            .into_iter()
            .filter(|s| s.config.reuse.enabled())
            .collect(),
        None => return,
    };
    let Some(shortest) = services.iter().map(|s| s.config.reuse.idle_timeout).min() else {
        return;
    };
    let mut ticks = tokio::time::interval(
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        for service in &services {
            let expired = service.idle.expire(service.config.reuse.idle_timeout);
            runtime
                .metrics
                .retired(&service.name, Retired::Idle, expired);
        }
    }
}
