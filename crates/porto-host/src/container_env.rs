//! The `PORTO_*` variables that configure porto's containerd shim inside a
//! container. One list for both ends: `porto kube` writes these names into
//! manifests and the shim reads them, and names any other `PORTO_*`
//! variable in its log at start, so a misspelt setting is seen rather than
//! silently missing.

/// What every variable of the host's starts with; the rest of the
/// environment is the guest's.
pub const PREFIX: &str = "PORTO_";

pub const SERVICE: &str = "PORTO_SERVICE";
pub const LISTEN: &str = "PORTO_LISTEN";
pub const BUCKETS: &str = "PORTO_BUCKETS";
pub const KV: &str = "PORTO_KV";
pub const KV_POOL_SIZE: &str = "PORTO_KV_POOL_SIZE";
pub const DATA: &str = "PORTO_DATA";
pub const ALLOW_HOSTS: &str = "PORTO_ALLOW_HOSTS";
pub const REQUEST_TIMEOUT_MS: &str = "PORTO_REQUEST_TIMEOUT_MS";
pub const MAX_MEMORY_MIB: &str = "PORTO_MAX_MEMORY_MIB";
pub const MAX_CONCURRENCY: &str = "PORTO_MAX_CONCURRENCY";
pub const MAX_BODY_BYTES: &str = "PORTO_MAX_BODY_BYTES";
pub const MAX_INSTANCE_REUSE: &str = "PORTO_MAX_INSTANCE_REUSE";
pub const REUSE_IDLE_TIMEOUT_MS: &str = "PORTO_REUSE_IDLE_TIMEOUT_MS";
pub const REUSE_MAX_MEMORY_MIB: &str = "PORTO_REUSE_MAX_MEMORY_MIB";
pub const DRAIN_TIMEOUT: &str = "PORTO_DRAIN_TIMEOUT";
pub const LOG: &str = "PORTO_LOG";
pub const ALLOCATOR: &str = "PORTO_ALLOCATOR";

/// Every variable the shim reads.
pub const ALL: &[&str] = &[
    SERVICE,
    LISTEN,
    BUCKETS,
    KV,
    KV_POOL_SIZE,
    DATA,
    ALLOW_HOSTS,
    REQUEST_TIMEOUT_MS,
    MAX_MEMORY_MIB,
    MAX_CONCURRENCY,
    MAX_BODY_BYTES,
    MAX_INSTANCE_REUSE,
    REUSE_IDLE_TIMEOUT_MS,
    REUSE_MAX_MEMORY_MIB,
    DRAIN_TIMEOUT,
    LOG,
    ALLOCATOR,
];
