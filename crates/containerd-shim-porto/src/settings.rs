//! What a container tells the shim, through its environment: which
//! service it is, where to listen, where its state lives, what it may
//! reach and its limits. Every `PORTO_*` variable is the host's and never
//! reaches the guest (a `PORTO_KV` URL may hold a password); every other
//! variable is the guest's environment, as under porto. The names are
//! porto-host's `container_env`, the list `porto kube` writes from; a
//! `PORTO_*` variable not on it is reported at start.
//!
//! | variable | default |
//! | --- | --- |
//! | `PORTO_SERVICE` | the component's file name (`/user-service.wasm`: `user-service`) |
//! | `PORTO_LISTEN` | `0.0.0.0:80` |
//! | `PORTO_BUCKETS` | the service name; comma-separated |
//! | `PORTO_KV` | `embedded`, in `PORTO_DATA`; or `redis://…`, `postgres://…` |
//! | `PORTO_KV_POOL_SIZE` | 16 |
//! | `PORTO_DATA` | `/data` (mount a volume there) |
//! | `PORTO_ALLOW_HOSTS` | `*`: any host, the container network being the boundary; comma-separated `host` or `host:port` narrows it, empty allows none |
//! | `PORTO_REQUEST_TIMEOUT_MS`, `PORTO_MAX_MEMORY_MIB`, `PORTO_MAX_CONCURRENCY`, `PORTO_MAX_BODY_BYTES` | as porto's `x-porto` limits |
//! | `PORTO_MAX_INSTANCE_REUSE`, `PORTO_MAX_INSTANCE_CONCURRENCY`, `PORTO_REUSE_IDLE_TIMEOUT_MS`, `PORTO_REUSE_MAX_MEMORY_MIB` | as porto's `x-porto` reuse keys (default: a fresh instance per request for WASI 0.2, 128 requests, 16 at once, for WASI 0.3) |
//! | `PORTO_DRAIN_TIMEOUT` | 10 (seconds in-flight requests get after SIGTERM) |
//! | `PORTO_LOG` | `info` |
//! | `PORTO_ALLOCATOR` | `auto` (`pooling`, `on-demand`) |
//! | `PORTO_TLS_CERT`, `PORTO_TLS_KEY` | none: plain text; both set, TLS with these PEM files (a mounted Secret), reloaded when they change |

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use porto_host::container_env::{self as var, PREFIX, ServiceVars, VarError};
use porto_host::{Allocator, ServiceConfig, TlsFiles};
use porto_kv::KvSpec;

#[derive(Debug)]
pub struct Settings {
    pub service: ServiceConfig,
    pub listen: SocketAddr,
    pub kv: KvSpec,
    pub kv_pool_size: NonZeroUsize,
    pub data_dir: PathBuf,
    pub drain: Duration,
    pub log: String,
    pub allocator: Allocator,
    /// `PORTO_*` variables that are no setting (a misspelling, or another
    /// tool's): neither the host's nor passed to the guest.
    pub unknown: Vec<String>,
}

pub type SettingsError = VarError;

impl Settings {
    /// Reads `KEY=VALUE` pairs (the container's environment); `file_name`
    /// is the component's, the service name when `PORTO_SERVICE` is unset.
    pub fn from_env(pairs: &[String], file_name: Option<&str>) -> Result<Self, SettingsError> {
        let mut porto = BTreeMap::new();
        let mut env = Vec::new();
        let mut unknown = Vec::new();
        for pair in pairs {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !key.starts_with(PREFIX) {
                env.push((key.to_string(), value.to_string()));
            } else if var::ALL.contains(&key) {
                porto.insert(key.to_string(), value.to_string());
            } else {
                // Not refused: Kubernetes adds `NAME_SERVICE_HOST` and the
                // like for every Service in the namespace, and one named
                // `porto-…` would stop every pod. Said at start instead.
                unknown.push(key.to_string());
            }
        }
        let get = |name: &str| porto.get(name).map(String::as_str);
        let name = get(var::SERVICE)
            .or(file_name)
            .filter(|n| !n.is_empty())
            .unwrap_or("service")
            .to_string();
        let vars = ServiceVars::read(get)?;
        let buckets: BTreeSet<String> = match &vars.buckets {
            Some(list) => list.iter().cloned().collect(),
            None => BTreeSet::from([name.clone()]),
        };
        let allowed_hosts = vars
            .allow_hosts
            .clone()
            .unwrap_or_else(|| vec![var::DEFAULT_ALLOW_HOSTS.to_string()]);
        let (limits, reuse) = (vars.limits(), vars.reuse());
        let kv = var::parsed(&get, var::KV)?.unwrap_or_default();
        let allocator = match get(var::ALLOCATOR).unwrap_or("auto") {
            "auto" => Allocator::Auto,
            "pooling" => Allocator::Pooling,
            "on-demand" => Allocator::OnDemand,
            other => {
                return Err(VarError::new(
                    var::ALLOCATOR,
                    other,
                    "use auto, pooling or on-demand",
                ));
            }
        };
        let tls = match (get(var::TLS_CERT), get(var::TLS_KEY)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(cert), None) => {
                return Err(VarError::new(
                    var::TLS_CERT,
                    cert,
                    "needs PORTO_TLS_KEY too",
                ));
            }
            (None, Some(key)) => {
                return Err(VarError::new(var::TLS_KEY, key, "needs PORTO_TLS_CERT too"));
            }
        };
        Ok(Self {
            service: ServiceConfig {
                tls,
                name,
                env,
                // One service per container: others are other hosts.
                allowed_services: BTreeSet::new(),
                allowed_hosts,
                buckets,
                limits,
                reuse,
            },
            listen: var::parsed(&get, var::LISTEN)?
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], var::DEFAULT_LISTEN_PORT))),
            kv,
            kv_pool_size: var::parsed(&get, var::KV_POOL_SIZE)?
                .unwrap_or(porto_kv::DEFAULT_POOL_SIZE),
            data_dir: get(var::DATA).unwrap_or(var::DEFAULT_DATA_DIR).into(),
            drain: var::parsed(&get, var::DRAIN_TIMEOUT)?
                .map_or(var::DEFAULT_DRAIN_TIMEOUT, Duration::from_secs),
            log: get(var::LOG).unwrap_or(var::DEFAULT_LOG).to_string(),
            allocator,
            unknown,
        })
    }

    /// Compiled components are kept beside the embedded store, so a
    /// restarted container with a volume skips compiling.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("compiled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porto_host::{Limits, Reuse};

    fn env(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_bare_container_is_its_file_listening_on_port_80() {
        let settings = Settings::from_env(
            &env(&["PATH=/bin", "USER_SERVICE_URL=http://user-service:80"]),
            Some("user-service"),
        )
        .expect("valid");
        assert_eq!(settings.service.name, "user-service");
        assert_eq!(settings.listen, "0.0.0.0:80".parse().expect("address"));
        assert_eq!(
            settings.service.buckets,
            BTreeSet::from(["user-service".to_string()])
        );
        assert_eq!(settings.service.allowed_hosts, vec!["*"]);
        assert_eq!(settings.kv, KvSpec::Embedded);
        assert_eq!(settings.data_dir, PathBuf::from("/data"));
        assert_eq!(settings.service.limits, Limits::default());
        assert_eq!(
            settings.service.env,
            vec![
                ("PATH".to_string(), "/bin".to_string()),
                (
                    "USER_SERVICE_URL".to_string(),
                    "http://user-service:80".to_string()
                )
            ]
        );
    }

    #[test]
    fn porto_variables_configure_the_host_and_never_reach_the_guest() {
        let settings = Settings::from_env(
            &env(&[
                "PORTO_SERVICE=users",
                "PORTO_LISTEN=127.0.0.1:8081",
                "PORTO_BUCKETS=users, audit",
                "PORTO_KV=redis://:secret@redis:6379/?namespace=shop",
                "PORTO_ALLOW_HOSTS=order-service:80",
                "PORTO_REQUEST_TIMEOUT_MS=1500",
                "PORTO_MAX_MEMORY_MIB=64",
                "PORTO_MAX_CONCURRENCY=7",
                "PORTO_MAX_BODY_BYTES=100",
                "PORTO_DRAIN_TIMEOUT=3",
                "GREETING=hi",
            ]),
            Some("user-service"),
        )
        .expect("valid");
        assert_eq!(settings.service.name, "users");
        assert_eq!(
            settings.service.buckets,
            BTreeSet::from(["audit".to_string(), "users".to_string()])
        );
        assert!(matches!(settings.kv, KvSpec::Url(ref url) if url.starts_with("redis://")));
        assert_eq!(settings.service.allowed_hosts, vec!["order-service:80"]);
        assert_eq!(
            settings.service.limits,
            Limits {
                request_timeout: Duration::from_millis(1500),
                max_memory_bytes: 64 * 1024 * 1024,
                max_concurrency: 7,
                max_body_bytes: 100,
            }
        );
        assert_eq!(settings.drain, Duration::from_secs(3));
        assert_eq!(
            settings.service.env,
            vec![("GREETING".to_string(), "hi".to_string())]
        );
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_together() {
        let plain = Settings::from_env(&env(&[]), None).expect("valid");
        assert_eq!(plain.service.tls, None);
        let tls = Settings::from_env(
            &env(&[
                "PORTO_TLS_CERT=/etc/porto/tls/tls.crt",
                "PORTO_TLS_KEY=/etc/porto/tls/tls.key",
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(
            tls.service.tls,
            Some(TlsFiles {
                cert: "/etc/porto/tls/tls.crt".into(),
                key: "/etc/porto/tls/tls.key".into(),
            })
        );
        for alone in ["PORTO_TLS_CERT=/c.pem", "PORTO_TLS_KEY=/k.pem"] {
            let err = Settings::from_env(&env(&[alone]), None).expect_err(alone);
            assert!(err.to_string().contains("needs PORTO_TLS_"), "{err}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for bad in [
            "PORTO_LISTEN=nowhere",
            "PORTO_KV=mysql://x",
            "PORTO_KV_POOL_SIZE=0",
            "PORTO_MAX_CONCURRENCY=-1",
            "PORTO_ALLOCATOR=fast",
            "PORTO_ALLOW_HOSTS=https://api.example.com",
        ] {
            let err = Settings::from_env(&env(&[bad]), None).expect_err(bad);
            let variable = bad.split('=').next().unwrap_or_default();
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn a_misspelt_porto_variable_is_reported_and_reaches_no_one() {
        let settings = Settings::from_env(
            &env(&["PORTO_MAX_INSTANCE_REUS=128", "PORTO_SERVICE_HOST=10.0.0.1"]),
            None,
        )
        .expect("valid");
        assert_eq!(
            settings.unknown,
            vec!["PORTO_MAX_INSTANCE_REUS", "PORTO_SERVICE_HOST"]
        );
        assert!(settings.service.env.is_empty());
        assert_eq!(settings.service.reuse, Reuse::default());
    }

    /// What `porto kube` writes for a service's limits and reuse is what
    /// the shim reads back: the two ends share one definition.
    #[test]
    fn limits_and_reuse_written_for_a_container_read_back_the_same() {
        let mut config = ServiceConfig::new("users");
        for (limits, reuse) in [
            (Limits::default(), Reuse::default()),
            (
                Limits::from_keys(Some(1500), Some(64), Some(7), Some(100)),
                Reuse::from_keys(
                    std::num::NonZeroU32::new(128),
                    std::num::NonZeroU32::new(4),
                    Some(250),
                    Some(8),
                ),
            ),
            (
                Limits::from_keys(None, None, Some(1), None),
                Reuse::from_keys(std::num::NonZeroU32::new(2), None, None, None),
            ),
        ] {
            config.limits = limits;
            config.reuse = reuse;
            let pairs: Vec<String> = var::limit_settings(&config)
                .into_iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            let settings = Settings::from_env(&pairs, None).expect("valid");
            assert_eq!(settings.service.limits, limits, "{pairs:?}");
            assert_eq!(settings.service.reuse, reuse, "{pairs:?}");
            assert!(settings.unknown.is_empty(), "{pairs:?}");
        }
    }

    #[test]
    fn an_empty_bucket_list_opens_none() {
        let settings = Settings::from_env(&env(&["PORTO_BUCKETS="]), None).expect("valid");
        assert!(settings.service.buckets.is_empty());
    }

    #[test]
    fn an_empty_allow_list_allows_nothing() {
        let settings = Settings::from_env(&env(&["PORTO_ALLOW_HOSTS="]), None).expect("valid");
        assert!(settings.service.allowed_hosts.is_empty());
        assert_eq!(settings.service.name, "service");
    }
}
