//! Ctrl-C and SIGTERM as one shutdown signal, the one [`crate::Stack::serve`]
//! drains on: for every front end (a terminal's Ctrl-C, `docker stop`,
//! a kubelet's SIGTERM).

use tokio::sync::watch;

/// A receiver that changes once, when the process is asked to stop (SIGINT
/// or SIGTERM). Call it inside a tokio runtime.
pub fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = sender.send(true);
        // Keep the sender alive so receivers do not see a spurious close.
        std::future::pending::<()>().await;
    });
    receiver
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
