//! porto-host: runs WebAssembly HTTP components on wasmtime, one fresh
//! instance per request, as porto's CLI and any other front end need.
//!
//! A front end describes each service as a plain [`ServiceConfig`] (name,
//! environment, what it may call, its key-value buckets, its [`Limits`])
//! with its component's bytes, opens a key-value backend with
//! [`porto_kv::connect`], and starts a [`Stack`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::num::NonZeroUsize;
//! use porto_host::{Allocator, DEFAULT_INSTANCE_POOL, ServiceConfig, Stack, StackConfig};
//!
//! let wasm = std::fs::read("hello.wasm")?;
//! let kv = porto_kv::connect(&porto_kv::KvSpec::Embedded, "data".as_ref(), NonZeroUsize::MIN).await?;
//! let stack = Stack::start(StackConfig {
//!     services: vec![(ServiceConfig::new("hello"), wasm)],
//!     kv,
//!     allocator: Allocator::Auto,
//!     instance_pool: DEFAULT_INSTANCE_POOL,
//!     cache_dir: "cache".into(),
//! })?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let serving = stack.serve(vec![("hello".into(), listener)], shutdown, std::time::Duration::from_secs(10))?;
//! serving.stopped().await;
//! # Ok(()) }
//! ```
//!
//! (`examples/serve.rs` is that program, runnable.)
//!
//! The pieces, in the order a request meets them: `server.rs` accepts it
//! on a worker thread (`parse_errors.rs` envelopes what hyper refuses
//! before a request exists); `runtime.rs` gives it an id, a span, its
//! limits (`limits.rs`) and a slot; `guest.rs` runs a fresh instance (or,
//! opted in, a kept one: `reuse.rs`) whose store data is `host.rs`; `outbound.rs` routes the calls the guest makes,
//! in-process to another service when allowed, and `kv/` is its storage.
//! Failures that leave no guest answer become one JSON error
//! (`failure.rs`). Nothing here reads a Compose file or prints: that is the
//! front end's business, and the host logs through `tracing`.

mod config;
pub mod container_env;
mod engine;
mod error;
mod failure;
mod guest;
mod guest_output;
mod host;
mod kv;
mod limits;
mod memory;
mod metrics;
mod outbound;
mod parse_errors;
mod request_ids;
mod reuse;
mod runtime;
mod server;
mod service;
mod shutdown;
mod stack;
mod stats;
pub mod telemetry;
mod write_coalescing;

pub use config::ServiceConfig;
pub use engine::{
    Allocator, CacheOutcome, Inspector, Interfaces, library_backtraces_off_unless_asked,
    wasm_digest,
};
pub use error::HostError;
pub use limits::{
    DEFAULT_INSTANCE_POOL, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_MEMORY_MIB,
    DEFAULT_REQUEST_TIMEOUT, Limits, MAX_SLOT_WAIT,
};
pub use reuse::{DEFAULT_REUSE_IDLE_TIMEOUT, DEFAULT_REUSE_MAX_MEMORY_MIB, Reuse};
pub use server::raise_open_file_limit;
pub use shutdown::shutdown_on_signal;
pub use stack::{Reload, ServiceStatus, Serving, Stack, StackConfig, Started};
pub use stats::Snapshot;
/// The body of a response from [`Stack::handle`].
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody as ResponseBody;
