//! HTTP/1.1 listeners for published ports.
//!
//! [`serve`] takes an already-bound listener and a shutdown signal: when
//! the signal fires it stops accepting, lets every open connection finish
//! its in-flight request (keep-alive connections are told to close), and
//! returns once they have, or when the drain timeout runs out.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::runtime::{Runtime, ServiceRuntime};

/// hyper's read buffer: a bound on what one connection can make porto hold
/// before the head is parsed (the head itself is limited in `runtime`).
const MAX_HEADER_BYTES: usize = 64 * 1024;

pub async fn serve(
    listener: TcpListener,
    runtime: Arc<Runtime>,
    service: Arc<ServiceRuntime>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(service = %service.name, error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (runtime, service) = (runtime.clone(), service.clone());
                let handler = service_fn(move |request| {
                    let (runtime, service) = (runtime.clone(), service.clone());
                    async move { Ok::<_, std::convert::Infallible>(runtime.handle(&service, request).await) }
                });
                let connection = http1::Builder::new()
                    .keep_alive(true)
                    // Request line and headers beyond this get 431.
                    .max_buf_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(stream), handler);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(service = %service.name, "drain timeout: closing remaining connections");
    }
}

/// Raises the soft limit on open files to the hard one: every request
/// in flight holds a connection, and the usual soft limit of 1,024 would
/// refuse connections before the instance pool is full.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let soft = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(
                from = soft,
                to = limit.rlim_max,
                "raised the open-file limit"
            );
        }
    }
}
