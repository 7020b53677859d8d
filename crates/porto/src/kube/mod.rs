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

mod names;
mod objects;
mod plan;
mod quantity;
mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use porto_kv::KvSpec;
use serde::Serialize;

use self::names::check_names;
pub use self::names::is_dns_label;
use self::plan::Plan;
pub use self::render::{render_stream, write_dir};
use crate::app::App;

/// The RuntimeClass, and the containerd runtime handler, pods run under.
pub const RUNTIME_CLASS: &str = "porto";
/// The Secret holding a Redis/PostgreSQL backend's URL (key `url`).
pub const KV_SECRET: &str = "porto-kv";

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

#[cfg(test)]
mod tests;
