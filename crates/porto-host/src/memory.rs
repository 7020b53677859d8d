//! Gives the memory a burst of traffic leaves behind back to the system.
//!
//! A flood of connections or large bodies grows the host's heap (glibc's
//! per-thread arenas); when the burst ends the memory is free inside the
//! heap but stays resident, since glibc returns pages to the kernel only
//! from the very top of an arena. Measured: ~20 MiB idle, ~165 MiB after
//! a 2,000-connection flood, still ~165 MiB minutes later. [`spawn_trimmer`]
//! asks glibc to release every free page (`malloc_trim`) once the traffic
//! since its last pass has stopped growing, so resident memory falls back
//! near idle within [`TRIM_EVERY`] of a burst's end (SECURITY.md, "Memory").
//! Instances' linear memories are the pool's business: it already returns
//! everything above `KEEP_RESIDENT_BYTES` per slot when an instance ends.

use std::time::Duration;

use tokio::sync::watch;

/// How often the trimmer looks; a burst's memory is returned within two
/// of these of its end.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Starts the trimmer thread of one `Stack::serve`, which watches
/// `served` (requests served so far; `None` once the stack is gone). It
/// ends within [`TRIM_EVERY`] of `shutdown` or of `served` giving `None`,
/// so a stack that stops serving and is dropped takes this thread with it.
pub(crate) fn spawn_trimmer(
    served: impl Fn() -> Option<u64> + Send + 'static,
    shutdown: watch::Receiver<bool>,
) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let stopped = move || *shutdown.borrow() || shutdown.has_changed().is_err();
    let spawned = std::thread::Builder::new()
        .name("porto-trim".into())
        .spawn(move || {
            let Some(start) = served() else { return };
            let (mut trimmed_at, mut previous) = (start, start);
            loop {
                std::thread::sleep(TRIM_EVERY);
                let Some(now) = served().filter(|_| !stopped()) else {
                    return;
                };
                // Traffic since the last pass, and none or little since
                // the last look: the burst is over.
                let quiet = now.saturating_sub(previous) <= now.saturating_sub(trimmed_at) / 10;
                if now != trimmed_at && quiet {
                    release_free_heap();
                    trimmed_at = now;
                }
                previous = now;
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "memory trimmer not started");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "returned free heap memory");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}
