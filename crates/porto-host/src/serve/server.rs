//! Listeners for published ports.
//!
//! [`serve`] accepts on an already-bound listener and deals the
//! connections out to [`Workers`], one thread per core, which serve them
//! (`connection.rs`: TLS, HTTP/1.1 or HTTP/2) until the shutdown signal;
//! then they stop taking connections, let every open one finish its
//! in-flight requests (keep-alive HTTP/1.1 connections are told to close,
//! HTTP/2 ones get GOAWAY), and end once they have, or when the drain
//! timeout runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::failure::Failure;
use crate::policy::limits::MAX_CONNECTIONS;
use crate::serve::connection;
use crate::serve::dispatcher::Dispatcher;
use crate::serve::parse_errors;
use crate::serve::service::Service;
use crate::serve::worker::{become_worker, worker_count};

/// How far ahead each worker always has a timer pending. tokio's timer
/// driver interrupts its own sleep (an eventfd write and one more trip
/// round the event loop) whenever a timer is registered that is due before
/// the wake-up it planned, which is every timer when none was pending as it
/// last parked. Each request that waits registers two (porto's request
/// timeout and the guest's own `wasi:clocks` deadline): two syscalls per
/// gateway request under load, none with this heartbeat pending (for
/// deadlines further off than its next beat, as the default ones are).
const TIMER_HEARTBEAT: Duration = Duration::from_secs(1);

/// Threads that serve connections, each with a single-threaded tokio
/// runtime of its own. A connection's requests, their instances and the
/// in-process calls those make all stay on one thread: no work stealing,
/// no waking another worker for a task. Connections are dealt out in turn.
#[derive(Clone)]
pub(crate) struct Workers {
    inboxes: Arc<Vec<mpsc::UnboundedSender<Connection>>>,
    next: Arc<AtomicUsize>,
    /// One permit per open client connection, across all listeners.
    open: Arc<Semaphore>,
}

struct Connection {
    stream: std::net::TcpStream,
    dispatcher: Arc<Dispatcher>,
    service: Arc<Service>,
    _open: OwnedSemaphorePermit,
}

/// Waits for every worker to finish draining.
pub(crate) struct WorkersDone(Vec<oneshot::Receiver<()>>);

impl WorkersDone {
    pub(crate) async fn wait(self) {
        for done in self.0 {
            let _ = done.await;
        }
    }
}

impl Workers {
    /// One worker per core. On `shutdown` each stops taking connections,
    /// lets its open ones finish their in-flight request (keep-alive
    /// connections are told to close) and ends, or closes them when the
    /// drain timeout runs out.
    pub(crate) fn start(
        shutdown: &watch::Receiver<bool>,
        drain_timeout: Duration,
    ) -> std::io::Result<(Self, WorkersDone)> {
        let count = worker_count();
        let (mut inboxes, mut done) = (Vec::new(), Vec::new());
        for index in 0..count {
            let (inbox, connections) = mpsc::unbounded_channel();
            let (finished, finished_rx) = oneshot::channel();
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("porto-worker-{index}"))
                .spawn(move || {
                    become_worker(index);
                    tokio.block_on(work(connections, shutdown, drain_timeout));
                    let _ = finished.send(());
                })?;
            inboxes.push(inbox);
            done.push(finished_rx);
        }
        let workers = Self {
            inboxes: Arc::new(inboxes),
            next: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        };
        Ok((workers, WorkersDone(done)))
    }

    fn dispatch(&self, connection: Connection) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len();
        // A worker only goes away at shutdown, when nothing is accepted.
        let _ = self.inboxes[index].send(connection);
    }
}

async fn work(
    mut connections: mpsc::UnboundedReceiver<Connection>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    tokio::spawn(async {
        loop {
            tokio::time::sleep(TIMER_HEARTBEAT).await;
        }
    });
    loop {
        tokio::select! {
            received = connections.recv() => {
                let Some(Connection { stream, dispatcher, service, _open: open }) = received else { break };
                let Ok(stream) = TcpStream::from_std(stream) else { continue };
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    connection::serve(stream, dispatcher, service, watcher).await;
                    drop(open);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout: closing remaining connections");
    }
}

/// Accepts connections on `listener` for `service` and hands them to the
/// workers, until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher>,
    service: Arc<Service>,
    mut shutdown: watch::Receiver<bool>,
    workers: Workers,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(service = %service.name, error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(open) = workers.open.clone().try_acquire_owned() else {
                    dispatcher.refuse_connection(&service);
                    // Best effort and never waiting: the socket buffer of a
                    // new connection has room for this.
                    let refusal = Failure::overloaded("connections", "at the connection limit".into());
                    let _ = stream.try_write(&parse_errors::refusal(&refusal, None));
                    let _ = stream.into_std().map(|s| s.shutdown(std::net::Shutdown::Both));
                    continue;
                };
                match stream.set_nodelay(true).and_then(|()| stream.into_std()) {
                    Ok(stream) => workers.dispatch(Connection { stream, dispatcher: dispatcher.clone(), service: service.clone(), _open: open }),
                    Err(err) => tracing::debug!(service = %service.name, error = %err, "connection lost before it was served"),
                }
            }
            _ = shutdown.changed() => break,
        }
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
