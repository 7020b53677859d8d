//! Instance reuse, the policy and every rule of it. A WASI 0.2 service
//! with `max_requests > 1` (opt-in) keeps an instance that answered
//! cleanly and gives it the service's next request, one request at a time,
//! instead of instantiating afresh. A WASI 0.3 instance serves up to
//! `max_concurrent` requests at once and `max_requests` in its life by
//! default, as `wasmtime serve` does: the world is made for it (every
//! request is its own async task, and the guest says when it can take
//! more). The kept instances themselves wait in
//! `instance::pool`, which applies what [`Reuse::expired`] and the
//! component's generation say; [`Reuse::after_request`] decides the rest.
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
use std::time::Duration;

/// A service's reuse policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Requests one instance may serve in its life; unset, the default of
    /// its guest's world ([`Reuse::p2_requests`], [`Reuse::p3_requests`]).
    pub max_requests: Option<NonZeroU32>,
    /// Requests one WASI 0.3 instance may serve at once (WASI 0.2
    /// instances serve one at a time); unset, [`DEFAULT_P3_CONCURRENCY`].
    pub max_concurrent: Option<NonZeroU32>,
    /// A kept instance not given a request for this long is dropped.
    pub idle_timeout: Duration,
    /// An instance whose linear memory has grown past this is not kept.
    pub max_memory_bytes: u64,
}

pub const DEFAULT_REUSE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REUSE_MAX_MEMORY_MIB: u64 = 16;
/// `wasmtime serve`'s defaults for WASI 0.3 components (BENCHMARKS.md).
pub const DEFAULT_P3_REUSE: u32 = 128;
pub const DEFAULT_P3_CONCURRENCY: u32 = 16;

impl Default for Reuse {
    fn default() -> Self {
        Self {
            max_requests: None,
            max_concurrent: None,
            idle_timeout: DEFAULT_REUSE_IDLE_TIMEOUT,
            max_memory_bytes: DEFAULT_REUSE_MAX_MEMORY_MIB * 1024 * 1024,
        }
    }
}

impl Reuse {
    /// The policy the configuration keys give (`max_instance_reuse`,
    /// `max_instance_concurrency`, `reuse_idle_timeout_ms`,
    /// `reuse_max_memory_mib`), defaults for the ones not set: one
    /// definition for every front end.
    pub fn from_keys(
        max_instance_reuse: Option<NonZeroU32>,
        max_instance_concurrency: Option<NonZeroU32>,
        reuse_idle_timeout_ms: Option<u64>,
        reuse_max_memory_mib: Option<u64>,
    ) -> Self {
        let defaults = Self::default();
        Self {
            max_requests: max_instance_reuse,
            max_concurrent: max_instance_concurrency,
            idle_timeout: reuse_idle_timeout_ms
                .map_or(defaults.idle_timeout, Duration::from_millis),
            max_memory_bytes: reuse_max_memory_mib
                .map_or(defaults.max_memory_bytes, |mib| mib * 1024 * 1024),
        }
    }

    /// Whether a WASI 0.2 instance is kept for more than one request.
    pub fn enabled(&self) -> bool {
        self.p2_requests() > 1
    }

    /// Requests a WASI 0.2 instance serves, one after another (default 1:
    /// a fresh instance per request).
    pub fn p2_requests(&self) -> u32 {
        self.max_requests.map_or(1, NonZeroU32::get)
    }

    /// Requests a WASI 0.3 instance serves in its life.
    pub fn p3_requests(&self) -> u32 {
        self.max_requests.map_or(DEFAULT_P3_REUSE, NonZeroU32::get)
    }

    /// Requests a WASI 0.3 instance serves at once.
    pub fn p3_concurrency(&self) -> u32 {
        self.max_concurrent
            .map_or(DEFAULT_P3_CONCURRENCY, NonZeroU32::get)
    }
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
    /// Its service runs another component now (the pool finds it under an
    /// older generation).
    Reloaded,
    /// It trapped, ran out of time, gave no response or a failed one.
    Failed,
    /// The instance pool was full: kept instances give their slots back.
    PoolFull,
}

impl Retired {
    pub(crate) fn label(self) -> &'static str {
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

/// How a request left its instance, as far as reuse cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ending {
    /// The guest set a response that was not an error, and its handler
    /// returned without a trap, a timeout or a host error.
    pub clean: bool,
    /// Requests the instance has served, this one included.
    pub served: u32,
    /// The largest its linear memory grew to.
    pub memory_bytes: u64,
}

impl Reuse {
    /// Whether an instance that ended a request as `ending` says is kept
    /// for the next one (`Ok`), or why it is retired.
    pub(crate) fn after_request(&self, ending: Ending) -> Result<(), Retired> {
        if !ending.clean {
            return Err(Retired::Failed);
        }
        if ending.served >= self.p2_requests() {
            return Err(Retired::Used);
        }
        if ending.memory_bytes > self.max_memory_bytes {
            return Err(Retired::Memory);
        }
        Ok(())
    }

    /// Whether a kept instance idle for `idle_for` is dropped.
    pub(crate) fn expired(&self, idle_for: Duration) -> bool {
        idle_for >= self.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Reuse {
        Reuse {
            max_requests: NonZeroU32::new(3),
            max_concurrent: None,
            idle_timeout: Duration::from_millis(100),
            max_memory_bytes: 1024,
        }
    }

    fn clean(served: u32, memory_bytes: u64) -> Ending {
        Ending {
            clean: true,
            served,
            memory_bytes,
        }
    }

    #[test]
    fn a_clean_instance_under_every_bound_is_kept() {
        assert_eq!(policy().after_request(clean(1, 0)), Ok(()));
        assert_eq!(policy().after_request(clean(2, 1024)), Ok(()));
    }

    #[test]
    fn an_instance_that_served_max_requests_is_used_up() {
        assert_eq!(policy().after_request(clean(3, 0)), Err(Retired::Used));
        assert_eq!(policy().after_request(clean(4, 0)), Err(Retired::Used));
    }

    #[test]
    fn an_instance_grown_past_its_memory_bound_is_retired() {
        assert_eq!(policy().after_request(clean(1, 1025)), Err(Retired::Memory));
    }

    #[test]
    fn a_failed_request_retires_its_instance_whatever_else_holds() {
        let failed = Ending {
            clean: false,
            ..clean(1, 0)
        };
        assert_eq!(policy().after_request(failed), Err(Retired::Failed));
    }

    #[test]
    fn without_reuse_no_instance_is_kept() {
        let off = Reuse::default();
        assert!(!off.enabled());
        assert_eq!(off.after_request(clean(1, 0)), Err(Retired::Used));
    }

    #[test]
    fn each_world_has_its_own_defaults_and_the_keys_set_both() {
        let unset = Reuse::default();
        assert_eq!(
            (unset.p2_requests(), unset.p3_requests()),
            (1, DEFAULT_P3_REUSE)
        );
        assert_eq!(unset.p3_concurrency(), DEFAULT_P3_CONCURRENCY);
        let set = Reuse::from_keys(NonZeroU32::new(1), NonZeroU32::new(4), None, None);
        assert_eq!((set.p2_requests(), set.p3_requests()), (1, 1));
        assert_eq!(set.p3_concurrency(), 4);
    }

    #[test]
    fn idle_expiry_is_at_the_timeout_not_before() {
        assert!(!policy().expired(Duration::from_millis(99)));
        assert!(policy().expired(Duration::from_millis(100)));
    }

    #[test]
    fn keys_fill_in_the_defaults() {
        let reuse = Reuse::from_keys(NonZeroU32::new(128), None, None, Some(4));
        assert_eq!(reuse.p2_requests(), 128);
        assert_eq!(reuse.p3_concurrency(), DEFAULT_P3_CONCURRENCY);
        assert_eq!(reuse.idle_timeout, DEFAULT_REUSE_IDLE_TIMEOUT);
        assert_eq!(reuse.max_memory_bytes, 4 * 1024 * 1024);
        assert!(reuse.enabled());
    }
}
