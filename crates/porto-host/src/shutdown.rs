//! Ctrl-C and SIGTERM as one shutdown signal, the one [`crate::Stack::serve`]
//! drains on: for every front end (a terminal's Ctrl-C, `docker stop`,
//! a kubelet's SIGTERM).

use tokio::sync::watch;

/// A receiver that changes once, when the process is asked to stop (SIGINT
/// or SIGTERM). Call it inside a tokio runtime, before saying "ready": the
/// handlers are in place when it returns, so a signal sent from then on
/// drains instead of killing the process.
pub fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    let signalled = signals();
    tokio::spawn(async move {
        signalled.await;
        let _ = sender.send(true);
        // Keep the sender alive so receivers do not see a spurious close.
        std::future::pending::<()>().await;
    });
    receiver
}

/// Registers for SIGINT and SIGTERM now, and resolves at the first.
#[cfg(unix)]
fn signals() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            // Without signal handlers nothing can stop the process but a
            // kill; serve on rather than stop at once.
            _ => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
fn signals() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
