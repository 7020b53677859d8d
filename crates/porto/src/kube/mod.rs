//! Kubernetes manifests derived from the Compose file (`porto kube`).
//!
//! The Compose file stays the one description of the application: each
//! wasi/wasm service becomes a workload on the `porto` RuntimeClass (porto's
//! containerd shim) and a Service. A service that declares `x-porto.buckets`
//! keeps data; on the embedded store that data lives on a volume, so it
//! becomes a one-replica StatefulSet with a PersistentVolumeClaim, and on a
//! Redis/PostgreSQL backend a Deployment like the others, the backend's URL
//! in a Secret. Everything porto enforces per service (allow-lists, buckets,
//! limits, reuse) reaches the shim as its `PORTO_*` variables, so the
//! cluster runs a service under the same rules as `porto up`.
//!
//! The output is a function of the Compose file and the options alone:
//! objects in the file's service order, fields in a fixed order, no
//! timestamps, so it can be checked in and compared.

mod objects;
mod quantity;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use porto_host::container_env as var;
use porto_kv::KvSpec;
use porto_oci::Reference;
use serde::Serialize;

use crate::app::{App, ComponentSource, ServiceSpec};

/// The RuntimeClass, and the containerd runtime handler, pods run under.
pub const RUNTIME_CLASS: &str = "porto";
/// The Secret holding a Redis/PostgreSQL backend's URL (key `url`).
pub const KV_SECRET: &str = "porto-kv";
/// Where the shim keeps the embedded store (`PORTO_DATA`'s default).
pub const DATA_DIR: &str = "/data";
/// The port the shim serves on unless told otherwise (`PORTO_LISTEN`).
const SHIM_PORT: u16 = 80;

/// What `porto kube` was asked for, besides the Compose file.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: Option<String>,
    /// `registry/path`: a built service's image is `PREFIX/NAME:TAG`.
    pub image_prefix: String,
    pub tag: String,
    /// The key-value backend on the cluster, overriding `x-porto.kv`.
    pub kv: Option<KvSpec>,
    /// Replicas of every workload that may have more than one (default:
    /// the service's `deploy.replicas`, else 1).
    pub replicas: Option<u32>,
    /// The size of each embedded store's volume.
    pub volume_size: String,
    /// Reference images by the digest in this local image store.
    pub pin_from: Option<PathBuf>,
}

/// One file of output: a header comment and its objects.
#[derive(Debug)]
pub struct Manifest {
    pub file_name: String,
    pub documents: Vec<Document>,
}

/// One Kubernetes object as YAML, with the comment printed above it.
#[derive(Debug)]
pub struct Document {
    pub comment: Option<String>,
    pub yaml: String,
}

impl Document {
    fn new(comment: Option<String>, object: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Self {
            comment,
            yaml: serde_yaml_ng::to_string(object).context("writing a manifest as YAML")?,
        })
    }
}

/// The manifests of `app`: the RuntimeClass, a workload and a Service per
/// wasi/wasm service, and the backend's Secret when there is one.
pub fn manifests(app: &App, options: &Options) -> anyhow::Result<Vec<Manifest>> {
    check_names(app, options)?;
    let kv = options.kv.clone().unwrap_or_else(|| app.kv.clone());
    let mut out = vec![Manifest {
        file_name: "runtimeclass.yaml".into(),
        documents: vec![Document::new(
            Some(objects::RUNTIME_CLASS_COMMENT.into()),
            &objects::runtime_class(&app.project),
        )?],
    }];
    if let KvSpec::Url(url) = &kv {
        out.push(Manifest {
            file_name: format!("{KV_SECRET}-secret.yaml"),
            documents: vec![Document::new(
                Some(objects::KV_SECRET_COMMENT.into()),
                &objects::kv_secret(&app.project, options.namespace.as_deref(), url),
            )?],
        });
    }
    // Services in the file's order of dependencies first, as porto starts them.
    for spec in &app.services {
        let plan = Plan::of(app, spec, &kv, options)
            .with_context(|| format!("service {:?}", spec.name()))?;
        out.push(Manifest {
            file_name: format!("{}.yaml", spec.name()),
            documents: plan.documents()?,
        });
    }
    Ok(out)
}

/// An RFC 1035 label, what Kubernetes requires of a Service's name: 1 to
/// 63 lower-case letters, digits and `-`, starting with a letter and
/// ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What Kubernetes would refuse, refused here with the reason, before
/// anything is printed.
fn check_names(app: &App, options: &Options) -> anyhow::Result<()> {
    for spec in &app.services {
        if !is_dns_label(spec.name()) {
            bail!(
                "service {:?} cannot name Kubernetes objects: use 1 to 63 lower-case letters, \
                 digits and `-`, starting with a letter",
                spec.name()
            );
        }
    }
    let label_value = |v: &str| {
        v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !label_value(&app.project) {
        bail!(
            "the project name {:?} (the Compose file's `name`) is not a Kubernetes label \
             value: at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a \
             letter or digit",
            app.project
        );
    }
    // A namespace is an RFC 1123 label: like a Service's name, but it may
    // also start with a digit.
    if let Some(namespace) = &options.namespace
        && !(namespace.len() <= 63 && is_dns_label(&format!("n{namespace}")))
    {
        bail!(
            "--namespace {namespace:?} is not a Kubernetes namespace name (lower-case letters, digits and `-`)"
        );
    }
    if !is_quantity(&options.volume_size) {
        bail!(
            "--volume-size {:?} is not a Kubernetes quantity like 1Gi or 500Mi",
            options.volume_size
        );
    }
    Ok(())
}

/// A Kubernetes quantity: a decimal number with an optional binary
/// (Ki…Ei) or decimal (k, M…E) suffix.
fn is_quantity(text: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let number = suffixes
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        && number.bytes().any(|b| b != b'0' && b != b'.')
}

/// Everything decided about one service before objects are written.
struct Plan<'a> {
    spec: &'a ServiceSpec,
    project: &'a str,
    namespace: Option<&'a str>,
    image: String,
    port: u16,
    replicas: u32,
    /// `Some(size)`: a StatefulSet whose store lives on a claim of this size.
    volume: Option<&'a str>,
    env: Vec<objects::Env>,
}

impl<'a> Plan<'a> {
    fn of(
        app: &'a App,
        spec: &'a ServiceSpec,
        kv: &KvSpec,
        options: &'a Options,
    ) -> anyhow::Result<Self> {
        let port = match spec.container_ports.as_slice() {
            [] => SHIM_PORT,
            [port] => *port,
            several => bail!(
                "maps to container ports {several:?}, but its component serves one \
                 (PORTO_LISTEN); give every `ports` entry the same target"
            ),
        };
        let embedded_state = spec.keeps_state && *kv == KvSpec::Embedded;
        let wanted = options.replicas.or(spec.deploy.replicas).unwrap_or(1);
        let replicas = if embedded_state {
            if spec.deploy.replicas.is_some_and(|r| r > 1) {
                bail!(
                    "deploy.replicas is {}, but its data is in the embedded store, which \
                     one replica owns; give porto kube --kv redis://… or postgres://… to \
                     run replicas over a shared store",
                    spec.deploy.replicas.unwrap_or_default()
                );
            }
            1
        } else {
            wanted
        };
        Ok(Self {
            spec,
            project: &app.project,
            namespace: options.namespace.as_deref(),
            image: image_for(spec, options)?,
            port,
            replicas,
            volume: embedded_state.then_some(options.volume_size.as_str()),
            env: environment(app, spec, kv, port),
        })
    }

    fn documents(&self) -> anyhow::Result<Vec<Document>> {
        let name = self.spec.name();
        let workload = if let Some(size) = self.volume {
            Document::new(
                Some(format!(
                    "{name} keeps its data in the embedded store: one replica, the store\n\
                     on a PersistentVolumeClaim at {DATA_DIR} (porto kube --kv for replicas)."
                )),
                &objects::stateful_set(self, size)?,
            )?
        } else {
            let comment = self.spec.keeps_state.then(|| {
                format!(
                    "{name} keeps its data in the backend whose URL is in Secret\n\
                     {KV_SECRET}: every replica shares it."
                )
            });
            Document::new(comment, &objects::deployment(self)?)?
        };
        Ok(vec![
            workload,
            Document::new(None, &objects::service(self))?,
        ])
    }
}

/// The image a service's pods run: its `image:` if it names one, else
/// `PREFIX/NAME:TAG`; pinned to the local store's digest when asked.
fn image_for(spec: &ServiceSpec, options: &Options) -> anyhow::Result<String> {
    let reference = match &spec.source {
        ComponentSource::Image(reference) => reference.clone(),
        ComponentSource::Cargo { .. } | ComponentSource::File(_) => format!(
            "{}/{}:{}",
            options.image_prefix.trim_end_matches('/'),
            spec.name(),
            options.tag
        ),
    };
    let parsed = Reference::parse(&reference).with_context(|| {
        format!("{reference:?} is not an image reference (--image-prefix, --tag)")
    })?;
    let Some(store) = &options.pin_from else {
        return Ok(reference);
    };
    let image = porto_oci::read_image(store, &parsed).with_context(|| {
        format!(
            "--pin: {reference} is not in {} (porto image build {} -t {reference})",
            store.display(),
            spec.name()
        )
    })?;
    Ok(format!("{reference}@{}", image.digest()))
}

/// The container's environment: the service's own, then the shim's
/// settings that carry porto's rules for it.
fn environment(app: &App, spec: &ServiceSpec, kv: &KvSpec, port: u16) -> Vec<objects::Env> {
    use objects::Env;
    let config = &spec.config;
    let mut env: Vec<Env> = config.env.iter().map(|(k, v)| Env::value(k, v)).collect();
    if port != SHIM_PORT {
        env.push(Env::value(var::LISTEN, &format!("0.0.0.0:{port}")));
    }
    // Only services that declare buckets may open any, on the cluster as
    // in the Compose file; an undeclared default bucket would keep data on
    // a pod's disk and lose it with the pod.
    let buckets: Vec<&str> = if spec.keeps_state {
        config.buckets.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    env.push(Env::value(var::BUCKETS, &buckets.join(",")));
    if spec.keeps_state
        && let KvSpec::Url(_) = kv
    {
        env.push(Env::secret(var::KV, KV_SECRET, "url"));
        if app.kv_pool_size != porto_kv::DEFAULT_POOL_SIZE {
            env.push(Env::value(var::KV_POOL_SIZE, &app.kv_pool_size.to_string()));
        }
    }
    // What porto allows over in-process calls, by name on the cluster.
    let mut hosts: Vec<&str> = config
        .allowed_services
        .iter()
        .chain(&config.allowed_hosts)
        .map(String::as_str)
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    env.push(Env::value(var::ALLOW_HOSTS, &hosts.join(",")));
    for (key, value) in shim_limits(spec) {
        env.push(Env::value(key, &value));
    }
    env
}

/// `x-porto` limits and reuse settings that differ from porto's defaults,
/// as the shim's variables.
fn shim_limits(spec: &ServiceSpec) -> Vec<(&'static str, String)> {
    let (limits, defaults) = (&spec.config.limits, porto_host::Limits::default());
    let (reuse, reuse_defaults) = (&spec.config.reuse, porto_host::Reuse::default());
    let mib = |bytes: u64| (bytes / (1024 * 1024)).to_string();
    let mut out = Vec::new();
    if limits.request_timeout != defaults.request_timeout {
        let ms = limits.request_timeout.as_millis().to_string();
        out.push((var::REQUEST_TIMEOUT_MS, ms));
    }
    if limits.max_memory_bytes != defaults.max_memory_bytes {
        out.push((var::MAX_MEMORY_MIB, mib(limits.max_memory_bytes)));
    }
    if limits.max_concurrency != defaults.max_concurrency {
        out.push((var::MAX_CONCURRENCY, limits.max_concurrency.to_string()));
    }
    if limits.max_body_bytes != defaults.max_body_bytes {
        out.push((var::MAX_BODY_BYTES, limits.max_body_bytes.to_string()));
    }
    if reuse.max_requests != reuse_defaults.max_requests {
        out.push((var::MAX_INSTANCE_REUSE, reuse.max_requests.to_string()));
    }
    if reuse.idle_timeout != reuse_defaults.idle_timeout {
        let ms = reuse.idle_timeout.as_millis().to_string();
        out.push((var::REUSE_IDLE_TIMEOUT_MS, ms));
    }
    if reuse.max_memory_bytes != reuse_defaults.max_memory_bytes {
        out.push((var::REUSE_MAX_MEMORY_MIB, mib(reuse.max_memory_bytes)));
    }
    out
}

/// The Kubernetes recommended labels of one service's objects.
fn labels(project: &str, service: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/part-of".to_string(), project.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "porto".to_string(),
        ),
    ]);
    if let Some(service) = service {
        labels.insert("app.kubernetes.io/name".into(), service.into());
    }
    labels
}

/// The labels a service's selector matches: stable across versions, so
/// an upgrade never orphans pods.
fn selector_labels(project: &str, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), service.to_string()),
        ("app.kubernetes.io/part-of".to_string(), project.to_string()),
    ])
}

const GENERATED: &str =
    "# Generated by `porto kube` from the Compose file: change that and generate again.";

/// Every manifest as one YAML stream, for `kubectl apply -f -`.
pub fn render_stream(manifests: &[Manifest], source: &str) -> String {
    let mut out = header(source);
    for document in manifests.iter().flat_map(|m| &m.documents) {
        out.push_str("---\n");
        push_document(&mut out, document);
    }
    out
}

/// One manifest as a file of its own.
pub fn render_file(manifest: &Manifest, source: &str) -> String {
    let mut out = header(source);
    for (i, document) in manifest.documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        push_document(&mut out, document);
    }
    out
}

/// What every output starts with; `write_dir` knows its own files by it.
fn header(source: &str) -> String {
    format!("{GENERATED}\n# Source: {source}\n")
}

fn push_document(out: &mut String, document: &Document) {
    if let Some(comment) = &document.comment {
        for line in comment.lines() {
            out.push_str(if line.is_empty() { "#" } else { "# " });
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&document.yaml);
}

/// Writes one file per manifest into `dir`, and removes files an earlier
/// run generated there that this one did not (a service taken out of the
/// Compose file); files porto did not write are left alone.
pub fn write_dir(dir: &Path, manifests: &[Manifest], source: &str) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for manifest in manifests {
        let path = dir.join(&manifest.file_name);
        std::fs::write(&path, render_file(manifest, source))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|e| e == "yaml")
            && !written.contains(&path)
            && std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(GENERATED));
        if stale {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
