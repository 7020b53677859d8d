//! porto-host: runs WebAssembly HTTP components on wasmtime, as porto's
//! CLI and any other front end need: a fresh instance per request, or, for
//! a service that opts in ([`Reuse`]), a kept one serving requests one
//! after another.
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
//! The crate is in layers, each using only those below it
//! (ARCHITECTURE.md draws them): `policy/` is plain data — a service's
//! configuration, limits, reuse and outbound rules; `instance/` is the
//! guest machinery — the prepared component, the store data (`host.rs`,
//! with `kv/` and the outbound hooks), the kept-instance pool, and running
//! one request in a guest (`p2.rs`); `serve/` is the dispatcher, which
//! gives every request its id, span, limits and slot and an instance, and
//! the server's worker threads; [`Stack`] starts and owns it all.
//! Failures that leave no guest answer become one JSON error
//! (`failure.rs`). Nothing here reads a Compose file or prints: that is the
//! front end's business, and the host logs through `tracing`.

#![warn(unreachable_pub)]

mod abi;
mod attribution;
mod buffered_body;
pub mod container_env;
mod engine;
mod error;
mod failure;
mod held_body;
mod instance;
mod kv;
mod memory;
mod metrics;
mod policy;
mod request_ids;
mod serve;
mod shutdown;
mod stack;
mod stats;
pub mod telemetry;
mod worlds;

pub use engine::{
    Allocator, CacheOutcome, Inspector, Interfaces, library_backtraces_off_unless_asked,
    wasm_digest,
};
pub use error::HostError;
pub use policy::limits::{
    DEFAULT_INSTANCE_POOL, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_MEMORY_MIB,
    DEFAULT_REQUEST_TIMEOUT, Limits, MAX_SLOT_WAIT,
};
pub use policy::outbound::check_allow_host;
pub use policy::reuse::{
    DEFAULT_P3_CONCURRENCY, DEFAULT_P3_REUSE, DEFAULT_REUSE_IDLE_TIMEOUT,
    DEFAULT_REUSE_MAX_MEMORY_MIB, Reuse,
};
pub use policy::service::{ServiceConfig, TlsFiles, check_bucket};
pub use serve::server::raise_open_file_limit;
pub use shutdown::shutdown_on_signal;
pub use stack::{Reload, ServiceStatus, Serving, Stack, StackConfig, Started};
pub use stats::Snapshot;
/// The body of a response from [`Stack::handle`].
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody as ResponseBody;
