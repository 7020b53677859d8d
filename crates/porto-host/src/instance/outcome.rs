//! What a guest's run ends in when it gives no usable answer, for either
//! world's runner: the failure the client gets and the kind it is
//! counted as; and the relief a full instance pool asks for.

use std::time::Duration;

use crate::failure::Failure;
use crate::metrics::snake_case;

/// Frees instance-pool slots held by kept instances, when instantiating
/// finds the pool full.
pub(crate) trait PoolRelief: Send + Sync + 'static {
    /// Drops kept instances (of every service); how many.
    fn drop_kept(&self) -> usize;
}

/// A guest gave no usable answer: the error for the client, and the kind
/// counted in `porto_guest_failures_total` (none for a request that never
/// reached the guest).
pub(crate) struct GuestFailure {
    pub kind: Option<String>,
    pub failure: Failure,
}

/// What an error that ended a guest (or kept it from starting) means for
/// its request, and the kind it is counted as.
pub(crate) fn failure_of(error: &wasmtime::Error, timeout: Duration) -> (String, Failure) {
    if error.is::<wasmtime::PoolConcurrencyLimitError>() {
        return (
            "pool_exhausted".to_string(),
            Failure::overloaded("instance_pool", format!("{error:#}")),
        );
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => ("timeout".to_string(), Failure::timeout(timeout)),
        Some(trap) => (
            snake_case(&format!("{trap:?}")),
            Failure::internal(format!("trapped: {error:?}")),
        ),
        None => (
            "host_error".to_string(),
            Failure::internal(format!("failed: {error:?}")),
        ),
    }
}
