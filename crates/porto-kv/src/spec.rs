//! Naming a backend and opening it.
//!
//! A user names a backend in one string (`x-porto.kv`, `--kv`,
//! `PORTO_KV`): `embedded`, or a driver URL with porto's optional
//! `?namespace=`. [`KvSpec`] is that string parsed once; [`connect`] opens
//! it and proves a network server answers before anyone is told the host
//! is ready.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::url::split_namespace;
use crate::{Embedded, KvBackend, KvError, PostgresBackend, RedisBackend};

/// Connections kept to a Redis or PostgreSQL server unless a user says
/// otherwise.
pub const DEFAULT_POOL_SIZE: NonZeroUsize = NonZeroUsize::new(16).expect("16 is not zero");

/// Which backend stores the guests' data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KvSpec {
    /// A redb file in the data directory.
    #[default]
    Embedded,
    /// `redis://…` or `postgres://…` (`postgresql://…`).
    Url(String),
}

impl FromStr for KvSpec {
    type Err = ConnectError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "" | "embedded" => Ok(Self::Embedded),
            url if url.starts_with("redis://")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://") =>
            {
                Ok(Self::Url(url.to_string()))
            }
            other => Err(ConnectError::UnknownBackend(other.to_string())),
        }
    }
}

impl KvSpec {
    /// What to tell a person: the data directory of the embedded store, or
    /// the URL without its password.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            Self::Embedded => format!("embedded ({})", data_dir.display()),
            Self::Url(url) => redact(url),
        }
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("key-value backend: expected `embedded`, `redis://…` or `postgres://…`, found {0:?}")]
    UnknownBackend(String),
    #[error("{0}")]
    Namespace(String),
    #[error("creating data directory {path}")]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening store {path}")]
    Embedded {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("{backend} at {url}")]
    Server {
        backend: &'static str,
        /// Without its password.
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConnectError {
    pub(crate) fn server(
        backend: &'static str,
        url: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Server {
            backend,
            url: redact(url),
            source: source.into(),
        }
    }
}

/// Opens the backend `spec` names: the embedded store in `data_dir`, or a
/// pool of at most `pool_size` connections to a server, which must answer
/// before this returns.
pub async fn connect(
    spec: &KvSpec,
    data_dir: &Path,
    pool_size: NonZeroUsize,
) -> Result<Arc<dyn KvBackend>, ConnectError> {
    let url = match spec {
        KvSpec::Embedded => return Ok(Arc::new(Embedded::open(data_dir)?)),
        KvSpec::Url(url) => url,
    };
    let (driver_url, namespace) = split_namespace(url).map_err(ConnectError::Namespace)?;
    if driver_url.starts_with("redis://") {
        let backend = RedisBackend::connect(&driver_url, &namespace, pool_size)?;
        backend
            .exists("porto", "probe")
            .await
            .map_err(|e: KvError| ConnectError::server("redis", &driver_url, e))?;
        Ok(Arc::new(backend))
    } else {
        Ok(Arc::new(
            PostgresBackend::connect(&driver_url, &namespace, pool_size).await?,
        ))
    }
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:secret@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn specs_name_one_of_three_backends() {
        assert_eq!("".parse::<KvSpec>().ok(), Some(KvSpec::Embedded));
        assert_eq!(" embedded ".parse::<KvSpec>().ok(), Some(KvSpec::Embedded));
        assert_eq!(
            "redis://127.0.0.1:6379".parse::<KvSpec>().ok(),
            Some(KvSpec::Url("redis://127.0.0.1:6379".into()))
        );
        let err = "mysql://x".parse::<KvSpec>().expect_err("not a backend");
        assert!(err.to_string().contains("mysql://x"), "{err}");
    }

    #[test]
    fn descriptions_never_show_a_password() {
        let spec: KvSpec = "postgres://app:secret@db/x".parse().expect("url");
        assert_eq!(spec.describe(Path::new("d")), "postgres://app:***@db/x");
        assert_eq!(
            KvSpec::Embedded.describe(Path::new(".porto/data")),
            "embedded (.porto/data)"
        );
    }
}
