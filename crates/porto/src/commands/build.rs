//! `porto build`: build every component and report its size and digest,
//! and on request the interfaces it needs from whatever runtime hosts it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use wasmtime::Engine;

use crate::app::DEFAULT_MAX_MEMORY_MIB;
use crate::{components, engine};

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub compose: super::ComposeFiles,

    /// Also list each component's imports and exports: the interfaces any
    /// runtime (porto, `wasmtime serve`, a containerd shim) must provide.
    #[arg(long)]
    pub interfaces: bool,

    /// Where --interfaces keeps compiled components (shared with `porto up`).
    #[arg(long, default_value = ".porto/cache")]
    pub cache_dir: PathBuf,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let app = args.compose.load()?;
    let engine = if args.interfaces {
        Some(
            engine::new_engine(
                DEFAULT_MAX_MEMORY_MIB * 1024 * 1024,
                engine::Allocator::Auto,
            )?
            .engine,
        )
    } else {
        None
    };
    // Written, not println!-ed: a closed pipe (`porto build | head`) is an
    // error to report, not a panic.
    let mut out = std::io::stdout().lock();
    for spec in &app.services {
        let component = components::resolve(spec, Path::new(".porto/images"))?;
        writeln!(
            out,
            "{:<16} {:>9} bytes  {:>7.1} KiB  sha256:{}  {}",
            spec.name,
            component.wasm.len(),
            component.wasm.len() as f64 / 1024.0,
            component.digest,
            component.path.display()
        )?;
        if let Some(engine) = &engine {
            print_interfaces(&mut out, engine, &component.wasm, &args.cache_dir)?;
        }
    }
    Ok(())
}

fn print_interfaces(
    out: &mut impl std::io::Write,
    engine: &Engine,
    wasm: &[u8],
    cache_dir: &Path,
) -> anyhow::Result<()> {
    let (component, _) = engine::load_component(engine, wasm, cache_dir)?;
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        writeln!(out, "    import {name}")?;
    }
    for (name, _) in ty.exports(engine) {
        writeln!(out, "    export {name}")?;
    }
    Ok(())
}
