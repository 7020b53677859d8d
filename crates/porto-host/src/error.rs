//! Why the host could not start or change what it runs. Failures of a
//! single request are not errors here: they become that request's JSON
//! error response (`failure.rs`).

/// The error a wasmtime or I/O call gave, with its chain of causes.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "this riscv64 CPU has no V (vector) extension, which wasmtime's Cranelift needs to compile \
         components here; use an RVA23 CPU (under qemu: QEMU_CPU=rv64,v=true,vlen=128)"
    )]
    NoVectorUnit,
    #[error("the pooling allocator cannot be set up on this machine")]
    PoolingUnavailable(#[source] Cause),
    #[error("setting up the wasmtime engine")]
    Engine(#[source] Cause),
    #[error("linking WASI, wasi:http and wasi:keyvalue")]
    Link(#[source] Cause),
    #[error("{service}: compiling its component")]
    Compile {
        service: String,
        #[source]
        source: Cause,
    },
    #[error("{service}: {why}")]
    NotServable { service: String, why: String },
    #[error("{service}: the component is not a wasi:http proxy porto can run")]
    NotAProxy {
        service: String,
        #[source]
        source: Cause,
    },
    #[error("{service}: TLS: {why}")]
    Tls { service: String, why: String },
    #[error("no service {0:?} in this stack")]
    UnknownService(String),
    #[error("starting the worker threads")]
    Workers(#[source] std::io::Error),
}
