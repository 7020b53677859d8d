//! The `PORTO_*` variables that configure porto's containerd shim inside a
//! container: their names, their defaults and how a service's limits and
//! reuse become them. One definition for both ends: `porto kube` writes
//! manifests from it and the shim reads containers by it, and names any
//! other `PORTO_*` variable in its log at start, so a misspelt setting is
//! seen rather than silently missing.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use crate::policy::limits::Limits;
use crate::policy::reuse::Reuse;
use crate::policy::service::ServiceConfig;

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
pub const MAX_INSTANCE_CONCURRENCY: &str = "PORTO_MAX_INSTANCE_CONCURRENCY";
pub const REUSE_IDLE_TIMEOUT_MS: &str = "PORTO_REUSE_IDLE_TIMEOUT_MS";
pub const REUSE_MAX_MEMORY_MIB: &str = "PORTO_REUSE_MAX_MEMORY_MIB";
pub const DRAIN_TIMEOUT: &str = "PORTO_DRAIN_TIMEOUT";
pub const LOG: &str = "PORTO_LOG";
pub const ALLOCATOR: &str = "PORTO_ALLOCATOR";
pub const TLS_CERT: &str = "PORTO_TLS_CERT";
pub const TLS_KEY: &str = "PORTO_TLS_KEY";

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
    MAX_INSTANCE_CONCURRENCY,
    REUSE_IDLE_TIMEOUT_MS,
    REUSE_MAX_MEMORY_MIB,
    DRAIN_TIMEOUT,
    LOG,
    ALLOCATOR,
    TLS_CERT,
    TLS_KEY,
];

/// The variables that configure a container's host process rather than
/// its service: porto, which runs every service in one process, takes
/// these from its own command line and `x-porto` instead, and passes over
/// them in a Compose service's `environment`.
pub const CONTAINER_ONLY: &[&str] = &[
    SERVICE,
    LISTEN,
    KV,
    KV_POOL_SIZE,
    DATA,
    DRAIN_TIMEOUT,
    LOG,
    ALLOCATOR,
    TLS_CERT,
    TLS_KEY,
];

/// A service's own settings, as its `PORTO_*` variables give them (each
/// `None` when unset): what the shim reads from a container's environment
/// and porto from a Compose service's `environment`, so one spelling in
/// compose.yaml configures both alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceVars {
    pub buckets: Option<Vec<String>>,
    pub allow_hosts: Option<Vec<String>>,
    pub request_timeout_ms: Option<u64>,
    pub max_memory_mib: Option<u64>,
    pub max_concurrency: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub max_instance_reuse: Option<NonZeroU32>,
    pub max_instance_concurrency: Option<NonZeroU32>,
    pub reuse_idle_timeout_ms: Option<u64>,
    pub reuse_max_memory_mib: Option<u64>,
}

/// A `PORTO_*` variable whose value is no valid setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {why}")]
pub struct VarError {
    pub variable: String,
    pub value: String,
    pub why: String,
}

impl VarError {
    pub fn new(variable: &str, value: &str, why: &str) -> Self {
        Self {
            variable: variable.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        }
    }
}

impl ServiceVars {
    /// Reads the service's variables through `get` (a variable's value, if
    /// set); lists are comma-separated, and every bucket and host entry is
    /// checked as `x-porto`'s are.
    pub fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, VarError> {
        // A list, each item passing `check`, or the item that does not.
        let checked_list = |name: &str, check: fn(&str) -> Result<(), String>| {
            get(name)
                .map(|value| {
                    split_list(value)
                        .map(|item| match check(&item) {
                            Ok(()) => Ok(item),
                            Err(why) => {
                                Err(VarError::new(name, value, &format!("{item:?}: {why}")))
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
        };
        Ok(Self {
            buckets: checked_list(BUCKETS, crate::check_bucket)?,
            allow_hosts: checked_list(ALLOW_HOSTS, crate::check_allow_host)?,
            request_timeout_ms: parsed(&get, REQUEST_TIMEOUT_MS)?,
            max_memory_mib: parsed(&get, MAX_MEMORY_MIB)?,
            max_concurrency: parsed(&get, MAX_CONCURRENCY)?,
            max_body_bytes: parsed(&get, MAX_BODY_BYTES)?,
            max_instance_reuse: parsed(&get, MAX_INSTANCE_REUSE)?,
            max_instance_concurrency: parsed(&get, MAX_INSTANCE_CONCURRENCY)?,
            reuse_idle_timeout_ms: parsed(&get, REUSE_IDLE_TIMEOUT_MS)?,
            reuse_max_memory_mib: parsed(&get, REUSE_MAX_MEMORY_MIB)?,
        })
    }

    pub fn limits(&self) -> Limits {
        Limits::from_keys(
            self.request_timeout_ms,
            self.max_memory_mib,
            self.max_concurrency,
            self.max_body_bytes,
        )
    }

    pub fn reuse(&self) -> Reuse {
        Reuse::from_keys(
            self.max_instance_reuse,
            self.max_instance_concurrency,
            self.reuse_idle_timeout_ms,
            self.reuse_max_memory_mib,
        )
    }
}

/// A comma-separated list's items, trimmed, empty ones dropped.
pub fn split_list(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
}

/// Variable `name` through `get`, parsed as `T`, if set.
pub fn parsed<'a, T: FromStr>(
    get: &impl Fn(&str) -> Option<&'a str>,
    name: &str,
) -> Result<Option<T>, VarError>
where
    T::Err: std::fmt::Display,
{
    get(name)
        .map(|value| {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| VarError::new(name, value, &e.to_string()))
        })
        .transpose()
}

/// The port the shim serves on when `PORTO_LISTEN` is unset (on every
/// address of the container's network namespace).
pub const DEFAULT_LISTEN_PORT: u16 = 80;
/// Where the embedded store (and the compile cache) live when `PORTO_DATA`
/// is unset: mount a volume there.
pub const DEFAULT_DATA_DIR: &str = "/data";
/// `PORTO_ALLOW_HOSTS` when unset: any host, the container network being
/// the boundary.
pub const DEFAULT_ALLOW_HOSTS: &str = "*";
/// What in-flight requests get after SIGTERM when `PORTO_DRAIN_TIMEOUT`
/// is unset.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// `PORTO_LOG` when unset.
pub const DEFAULT_LOG: &str = "info";

/// The variables that carry `config`'s limits and reuse settings, only
/// those that differ from the defaults (which the shim applies itself).
pub fn limit_settings(config: &ServiceConfig) -> Vec<(&'static str, String)> {
    let (limits, default_limits) = (&config.limits, Limits::default());
    let (reuse, default_reuse) = (&config.reuse, Reuse::default());
    let mib = |bytes: u64| (bytes / (1024 * 1024)).to_string();
    let ms = |duration: Duration| duration.as_millis().to_string();
    let candidates = [
        (
            REQUEST_TIMEOUT_MS,
            limits.request_timeout != default_limits.request_timeout,
            ms(limits.request_timeout),
        ),
        (
            MAX_MEMORY_MIB,
            limits.max_memory_bytes != default_limits.max_memory_bytes,
            mib(limits.max_memory_bytes),
        ),
        (
            MAX_CONCURRENCY,
            limits.max_concurrency != default_limits.max_concurrency,
            limits.max_concurrency.to_string(),
        ),
        (
            MAX_BODY_BYTES,
            limits.max_body_bytes != default_limits.max_body_bytes,
            limits.max_body_bytes.to_string(),
        ),
        (
            MAX_INSTANCE_REUSE,
            reuse.max_requests.is_some(),
            reuse.max_requests.map_or(0, |n| n.get()).to_string(),
        ),
        (
            MAX_INSTANCE_CONCURRENCY,
            reuse.max_concurrent.is_some(),
            reuse.max_concurrent.map_or(0, |n| n.get()).to_string(),
        ),
        (
            REUSE_IDLE_TIMEOUT_MS,
            reuse.idle_timeout != default_reuse.idle_timeout,
            ms(reuse.idle_timeout),
        ),
        (
            REUSE_MAX_MEMORY_MIB,
            reuse.max_memory_bytes != default_reuse.max_memory_bytes,
            mib(reuse.max_memory_bytes),
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, differs, _)| *differs)
        .map(|(name, _, value)| (name, value))
        .collect()
}
