//! What the host needs to know about a service: plain data, however a
//! front end came by it (porto reads it from a Compose file, the
//! containerd shim from the container's environment).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::policy::limits::Limits;
use crate::policy::reuse::Reuse;

/// One service: its name, what its guest sees and may reach, its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// How other services call it (`http://NAME`) and how logs name it.
    pub name: String,
    /// The guest's environment (`wasi:cli/environment`).
    pub env: Vec<(String, String)>,
    /// Services of this host it may call in-process.
    pub allowed_services: BTreeSet<String>,
    /// Network hosts it may call (`host` for any port, `host:port`, or
    /// `*` for any).
    pub allowed_hosts: Vec<String>,
    /// `wasi:keyvalue` buckets it may open; any other is access-denied.
    pub buckets: BTreeSet<String>,
    pub limits: Limits,
    /// Whether an instance may serve more than one request (off by default).
    pub reuse: Reuse,
    /// Its listeners speak TLS with this certificate (plain text without).
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key, read at start and again
/// whenever either file changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServiceConfig {
    /// A service that may open the bucket of its own name and call
    /// nothing, with the default limits.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            buckets: BTreeSet::from([name.clone()]),
            name,
            env: Vec::new(),
            allowed_services: BTreeSet::new(),
            allowed_hosts: Vec::new(),
            limits: Limits::default(),
            reuse: Reuse::default(),
            tls: None,
        }
    }
}

/// Whether `name` can name a bucket everywhere a service runs: the shim
/// reads its buckets from one comma-separated variable, trimmed, so a name
/// with a comma, or blank at either end, would become other buckets there
/// than under porto; front ends refuse it where they read the
/// configuration.
pub fn check_bucket(name: &str) -> Result<(), String> {
    if name.is_empty() || name.trim() != name {
        return Err("a bucket name needs a character and no blank at either end".to_string());
    }
    if name.contains(',') || name.chars().any(char::is_control) {
        return Err("a bucket name may not hold a comma or a control character".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_survive_the_shim_s_list() {
        for good in ["users", "orders-2026", "a.b_c"] {
            assert_eq!(super::check_bucket(good), Ok(()), "{good}");
        }
        for bad in ["", " users", "users ", "users,orders", "a\nb"] {
            assert!(super::check_bucket(bad).is_err(), "{bad:?} accepted");
        }
    }
}
