//! Where each service's component bytes come from: a cargo build, a
//! `.wasm` file, or (not yet) an OCI image.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::app::{ComponentSource, ServiceSpec};
use crate::builder;
use crate::engine::wasm_digest;

pub struct ComponentBytes {
    pub path: PathBuf,
    pub wasm: Vec<u8>,
    pub digest: String,
}

/// Builds or reads the component of `spec`.
pub fn resolve(spec: &ServiceSpec) -> anyhow::Result<ComponentBytes> {
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
        ComponentSource::Image(reference) => bail!(
            "{}: image {reference:?} is an OCI reference; this porto runs components from `build:` or a local .wasm path",
            spec.name
        ),
    };
    let wasm = std::fs::read(&path)
        .with_context(|| format!("{}: reading {}", spec.name, path.display()))?;
    let digest = wasm_digest(&wasm);
    Ok(ComponentBytes { path, wasm, digest })
}
