//! Where each service's component bytes come from: a cargo build, a
//! `.wasm` file, or (not yet) an OCI image.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::app::{ComponentSource, ServiceSpec};
use crate::builder;
use crate::engine::wasm_digest;
use crate::image::layout::{Reference, load_component};

pub struct ComponentBytes {
    pub path: PathBuf,
    pub wasm: Vec<u8>,
    pub digest: String,
}

/// Builds or reads the component of `spec`; `image:` references are looked
/// up in the local image store `images`.
pub fn resolve(spec: &ServiceSpec, images: &Path) -> anyhow::Result<ComponentBytes> {
    let path = match &spec.source {
        ComponentSource::Cargo { dir } => {
            let built = builder::build(&spec.name, dir)?;
            eprintln!(
                "porto: built {} in {:.1}s ({})",
                spec.name,
                built.elapsed.as_secs_f64(),
                built.wasm.display()
            );
            built.wasm
        }
        ComponentSource::File(path) => path.clone(),
        ComponentSource::Image(reference) => {
            let parsed =
                Reference::parse(reference).with_context(|| format!("{}: image", spec.name))?;
            let wasm = load_component(images, &parsed)
                .with_context(|| format!("{}: image {reference}", spec.name))?;
            let digest = wasm_digest(&wasm);
            return Ok(ComponentBytes {
                path: images.join(format!("{}@{}", parsed.full(), &digest[..12])),
                wasm,
                digest,
            });
        }
    };
    let wasm = std::fs::read(&path)
        .with_context(|| format!("{}: reading {}", spec.name, path.display()))?;
    let digest = wasm_digest(&wasm);
    Ok(ComponentBytes { path, wasm, digest })
}
