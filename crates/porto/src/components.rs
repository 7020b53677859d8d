//! Where each service's component bytes come from: a cargo build, a
//! `.wasm` file, or an image in porto's local image store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use porto_host::wasm_digest;
use porto_oci::{Reference, load_component};

use crate::app::{ComponentSource, ServiceSpec};
use crate::builder;

pub struct ComponentBytes {
    pub path: PathBuf,
    pub wasm: Vec<u8>,
    pub digest: String,
    /// How long the cargo build took, when one ran.
    pub build_time: Option<Duration>,
}

/// Builds or reads the component of `spec`; `image:` references are looked
/// up in the local image store `images`.
pub fn resolve(spec: &ServiceSpec, images: &Path) -> anyhow::Result<ComponentBytes> {
    let name = spec.name();
    let (path, build_time) = match &spec.source {
        ComponentSource::Cargo { dir } => {
            let built = builder::build(name, dir)?;
            (built.wasm, Some(built.elapsed))
        }
        ComponentSource::File(path) => (path.clone(), None),
        ComponentSource::Image(reference) => {
            let parsed = Reference::parse(reference).with_context(|| format!("{name}: image"))?;
            let wasm = load_component(images, &parsed)
                .with_context(|| format!("{name}: image {reference}"))?;
            let digest = wasm_digest(&wasm);
            return Ok(ComponentBytes {
                path: images.join(format!("{}@{}", parsed.full(), &digest[..12])),
                wasm,
                digest,
                build_time: None,
            });
        }
    };
    let wasm =
        std::fs::read(&path).with_context(|| format!("{name}: reading {}", path.display()))?;
    let digest = wasm_digest(&wasm);
    Ok(ComponentBytes {
        path,
        wasm,
        digest,
        build_time,
    })
}
