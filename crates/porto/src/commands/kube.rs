//! `porto kube`: Kubernetes manifests from the Compose file.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::kube::{self, Options};

/// Where the Compose file's services go on a cluster with porto's shim.
#[derive(Debug, Args)]
pub struct KubeArgs {
    #[command(flatten)]
    pub compose: super::ComposeFiles,

    /// Put every namespaced object in this namespace (default: none set, so
    /// `kubectl apply -n NS` or the context's namespace decides).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Registry and path of the images `porto image build -t` tagged and
    /// `porto image push` pushed: a service built from source runs
    /// `PREFIX/SERVICE:TAG`. A service with an OCI `image:` keeps it.
    #[arg(
        long,
        value_name = "REGISTRY/PATH",
        default_value = "localhost:5000/porto"
    )]
    pub image_prefix: String,

    /// The tag of those images.
    #[arg(long, default_value = "latest")]
    pub tag: String,

    /// Reference each image by digest (`REF@sha256:…`) as found in porto's
    /// local image store, where `porto image build -t REF` put it, so pods
    /// run exactly the component that was built; an image missing there
    /// is an error.
    #[arg(long)]
    pub pin: bool,

    /// porto's local image store, for --pin.
    #[arg(long, default_value = ".porto/images")]
    pub store: PathBuf,

    /// The key-value backend on the cluster, overriding `x-porto.kv`:
    /// `redis://…` or `postgres://…` puts its URL in a Secret and makes
    /// every service a Deployment that may have replicas; `embedded`
    /// (the default) gives each service that declares `x-porto.buckets`
    /// a one-replica StatefulSet with its store on a volume.
    #[arg(long, value_name = "URL")]
    pub kv: Option<String>,

    /// Replicas of every Deployment (default: each service's
    /// `deploy.replicas`, else 1). A StatefulSet on the embedded store
    /// always has one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: Option<u32>,

    /// Size of the volume each embedded store gets.
    #[arg(long, value_name = "QUANTITY", default_value = "1Gi")]
    pub volume_size: String,

    /// Write one file per object group into this directory (RuntimeClass,
    /// Secret, one per service) instead of one stream on stdout; files an
    /// earlier run wrote for services no longer in the Compose file are
    /// removed.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

pub fn run(args: KubeArgs) -> anyhow::Result<()> {
    let app = args.compose.load()?;
    if app.services.is_empty() {
        anyhow::bail!(
            "{} has no service with `platform: wasi/wasm`; nothing to deploy",
            args.compose
        );
    }
    let kv = args
        .kv
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--kv")?;
    let options = Options {
        namespace: args.namespace.clone(),
        image_prefix: args.image_prefix.clone(),
        tag: args.tag.clone(),
        kv,
        replicas: args.replicas,
        volume_size: args.volume_size.clone(),
        pin_from: args.pin.then(|| args.store.clone()),
    };
    let manifests = kube::manifests(&app, &options)?;
    for other in &app.others {
        eprintln!(
            "porto: {} is not a wasi/wasm service; deploy it with its own chart or operator",
            other.name
        );
    }
    let source = args.compose.to_string();
    match &args.output {
        Some(dir) => {
            for path in kube::write_dir(dir, &manifests, &source)? {
                eprintln!("porto: wrote {}", path.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(kube::render_stream(&manifests, &source).as_bytes())?;
        }
    }
    Ok(())
}
