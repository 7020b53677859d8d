//! What the two network backends share: a deadline on every operation, so
//! a server that does not answer is a fast `Unavailable` well inside any
//! request timeout, and batches that need no round trip at all.

use std::future::Future;
use std::time::Duration;

use crate::KvError;

/// A network backend that has not answered within this is reported as
/// unavailable. Also the pools' wait, connect and recycle timeouts.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one operation of `backend` under [`OP_TIMEOUT`].
pub(crate) async fn within_deadline<T>(
    backend: &'static str,
    op: impl Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(KvError::Unavailable(format!(
                "{backend}: no answer within {OP_TIMEOUT:?}"
            )))
        })
}

/// A batch operation: nothing to send for an empty batch (whose answer is
/// the empty one), otherwise one round trip under [`OP_TIMEOUT`].
pub(crate) async fn batch<T: Default>(
    backend: &'static str,
    is_empty: bool,
    op: impl Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    if is_empty {
        return Ok(T::default());
    }
    within_deadline(backend, op).await
}
