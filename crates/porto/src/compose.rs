//! The Compose file as written: raw serde types, no judgement.
//!
//! Only the parts porto acts on are modelled; every other Compose key is
//! accepted and ignored, so the file stays usable by Docker unchanged.
//! porto's own settings live under `x-porto` keys, which Docker ignores;
//! those are strict (`deny_unknown_fields`) so a typo is an error, not a
//! silently missing limit. [`crate::app`] turns this into the validated
//! [`crate::app::App`].

use std::path::PathBuf;

use anyhow::Context as _;
use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ComposeFile {
    /// The project name (Compose's top-level `name`).
    pub name: Option<String>,
    #[serde(default)]
    pub services: IndexMap<String, Service>,
    #[serde(rename = "x-porto", default)]
    pub porto: AppExtension,
}

#[derive(Debug, Default, Deserialize)]
pub struct Service {
    pub image: Option<String>,
    pub build: Option<Build>,
    pub platform: Option<String>,
    pub runtime: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub depends_on: DependsOn,
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Container ports other services reach without publishing them.
    #[serde(default)]
    pub expose: Vec<PublishedPort>,
    /// What an orchestrator reads: replicas and resources (`porto kube`).
    #[serde(default)]
    pub deploy: Deploy,
    #[serde(rename = "x-porto", default)]
    pub porto: ServiceExtension,
}

/// The parts of Compose's `deploy` that `porto kube` carries over.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deploy {
    pub replicas: Option<u32>,
    #[serde(default)]
    pub resources: DeployResources,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeployResources {
    pub limits: Option<Resources>,
    pub reservations: Option<Resources>,
}

/// `cpus: "0.5"` (or a number) and `memory: 256M` (Compose byte units).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    pub cpus: Option<Scalar>,
    pub memory: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Build {
    Context(String),
    Detailed { context: Option<String> },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Port {
    Number(u32),
    Short(String),
    Long {
        target: u32,
        published: Option<PublishedPort>,
        host_ip: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PublishedPort {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    #[default]
    Empty,
    Map(IndexMap<String, Option<Scalar>>),
    List(Vec<String>),
}

/// A YAML scalar as Compose allows in `environment` maps (`PORT: 80`,
/// `DEBUG: true`), kept as its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    #[default]
    Empty,
    List(Vec<String>),
    Map(IndexMap<String, serde_yaml_ng::Value>),
}

/// Top-level `x-porto`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppExtension {
    /// `embedded` (default), `redis://…` or `postgres://…`.
    pub kv: Option<String>,
    /// Connections each network backend keeps (default 16).
    pub kv_pool_size: Option<std::num::NonZeroUsize>,
}

/// Per-service `x-porto`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceExtension {
    /// A local `.wasm` file to run instead of building `build.context`.
    pub component: Option<String>,
    /// Key-value buckets the service may open (default: its own name).
    pub buckets: Option<Vec<String>>,
    /// Services it may call besides those in `depends_on`.
    #[serde(default)]
    pub allow_services: Vec<String>,
    /// Other hosts (`host` or `host:port`) it may call over the network.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    pub request_timeout_ms: Option<u64>,
    pub max_memory_mib: Option<u64>,
    /// Instances of this service running at once; more requests wait for
    /// one briefly, then get 503.
    pub max_concurrency: Option<usize>,
    /// Largest request body porto accepts for this service (413 beyond).
    pub max_body_bytes: Option<u64>,
    /// Requests one instance may serve in its life (default: 1, a fresh
    /// instance per request, for WASI 0.2 components; 128 for WASI 0.3).
    pub max_instance_reuse: Option<std::num::NonZeroU32>,
    /// Requests one WASI 0.3 instance may serve at once (default 16).
    pub max_instance_concurrency: Option<std::num::NonZeroU32>,
    /// A kept instance idle this long is dropped (default 10 s).
    pub reuse_idle_timeout_ms: Option<u64>,
    /// An instance whose memory grew past this is not kept (default 16).
    pub reuse_max_memory_mib: Option<u64>,
    /// Serve its published ports over TLS with this certificate.
    pub tls: Option<TlsExtension>,
}

/// `x-porto.tls`: PEM files, relative to the Compose file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsExtension {
    /// The certificate chain, the service's own certificate first.
    pub cert: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

impl Scalar {
    pub fn into_text(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

impl Environment {
    /// `(name, value)` pairs; a list entry without `=` or a map entry with
    /// no value takes the value from porto's own environment, as Compose does.
    pub fn into_pairs(self) -> Vec<(String, Option<String>)> {
        match self {
            Self::Empty => Vec::new(),
            Self::Map(map) => map
                .into_iter()
                .map(|(k, v)| (k, v.map(Scalar::into_text)))
                .collect(),
            Self::List(list) => list
                .into_iter()
                .map(|entry| match entry.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (entry, None),
                })
                .collect(),
        }
    }
}

impl DependsOn {
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Empty => Vec::new(),
            Self::List(list) => list.clone(),
            Self::Map(map) => map.keys().cloned().collect(),
        }
    }
}

pub fn parse(text: &str) -> anyhow::Result<ComposeFile> {
    Ok(serde_yaml_ng::from_str(text)?)
}

/// Reads Compose files in order, each laid over the ones before it, as
/// `docker compose -f base.yaml -f override.yaml` does: mappings merge key
/// by key (so an override names only what it changes), any other value,
/// lists included, replaces the earlier one.
pub fn load_all(paths: &[PathBuf]) -> anyhow::Result<ComposeFile> {
    let mut merged = serde_yaml_ng::Value::Null;
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let layer: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        merge(&mut merged, layer);
    }
    let described = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    serde_yaml_ng::from_value(merged).with_context(|| format!("parsing {described}"))
}

fn merge(base: &mut serde_yaml_ng::Value, layer: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, layer) {
        (Value::Mapping(base), Value::Mapping(layer)) => {
            for (key, value) in layer {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, layer) => *base = layer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_override_key_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("compose.yaml");
        let layer = dir.path().join("override.yaml");
        std::fs::write(
            &base,
            "services:\n  a:\n    platform: wasi/wasm\n    build: a\n    ports: [\"8080:80\"]\n    environment:\n      X: \"1\"\n",
        )
        .expect("write");
        std::fs::write(
            &layer,
            "services:\n  a:\n    ports: [\"9090:80\"]\n    environment:\n      Y: \"2\"\n    x-porto:\n      component: a.wasm\n",
        )
        .expect("write");
        let file = load_all(&[base, layer]).expect("merged");
        let a = &file.services["a"];
        assert_eq!(a.platform.as_deref(), Some("wasi/wasm"));
        assert_eq!(a.porto.component.as_deref(), Some("a.wasm"));
        assert!(matches!(&a.ports[..], [Port::Short(p)] if p == "9090:80"));
        assert_eq!(
            a.environment.clone().into_pairs(),
            vec![
                ("X".into(), Some("1".into())),
                ("Y".into(), Some("2".into()))
            ]
        );
    }

    #[test]
    fn reads_both_environment_forms() {
        let f = parse(
            "services:\n  a:\n    environment:\n      X: 1\n      Y: hi\n      Z:\n  b:\n    environment: [\"X=1\", \"Y\"]\n",
        )
        .expect("parses");
        let a = f.services["a"].environment.clone().into_pairs();
        assert_eq!(
            a,
            vec![
                ("X".into(), Some("1".into())),
                ("Y".into(), Some("hi".into())),
                ("Z".into(), None)
            ]
        );
        let b = f.services["b"].environment.clone().into_pairs();
        assert_eq!(b, vec![("X".into(), Some("1".into())), ("Y".into(), None)]);
    }

    #[test]
    fn reads_both_depends_on_forms() {
        let f = parse(
            "services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on:\n      c:\n        condition: service_started\n  c: {}\n",
        )
        .expect("parses");
        assert_eq!(f.services["a"].depends_on.names(), vec!["b"]);
        assert_eq!(f.services["b"].depends_on.names(), vec!["c"]);
    }

    #[test]
    fn unknown_compose_keys_are_ignored_but_porto_keys_are_strict() {
        assert!(
            parse(
                "services:\n  a:\n    restart: always\n    healthcheck: {test: x}\nvolumes: {}\n"
            )
            .is_ok()
        );
        assert!(parse("services:\n  a:\n    x-porto:\n      bukets: [x]\n").is_err());
        assert!(parse("x-porto:\n  kvv: redis://x\nservices: {}\n").is_err());
    }
}
