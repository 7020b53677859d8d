//! `porto build`: build every component and report its size and digest,
//! and on request the interfaces it needs from whatever runtime hosts it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use porto_host::{Inspector, Interfaces};

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub compose: super::ComposeFiles,

    /// Build only these services and those they depend on (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Also list each component's imports and exports: the interfaces any
    /// runtime (porto, `wasmtime serve`, a containerd shim) must provide.
    #[arg(long)]
    pub interfaces: bool,

    /// Where --interfaces keeps compiled components (shared with `porto up`).
    #[arg(long, default_value = ".porto/cache")]
    pub cache_dir: PathBuf,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let mut app = args.compose.load()?;
    app.select(&args.services)?;
    // One engine for every component's interfaces.
    let inspector = args
        .interfaces
        .then(|| Inspector::new(&args.cache_dir))
        .transpose()?;
    // Written, not println!-ed: a closed pipe (`porto build | head`) is an
    // error to report, not a panic.
    let mut out = std::io::stdout().lock();
    for spec in &app.services {
        let component = super::component(spec, Path::new(".porto/images"))?;
        writeln!(
            out,
            "{:<16} {:>9} bytes  {:>7.1} KiB  sha256:{}  {}",
            spec.name(),
            component.wasm.len(),
            component.wasm.len() as f64 / 1024.0,
            component.digest,
            component.path.display()
        )?;
        if let Some(inspector) = &inspector {
            let Interfaces { imports, exports } =
                inspector.interfaces(spec.name(), &component.wasm)?;
            for name in imports {
                writeln!(out, "    import {name}")?;
            }
            for name in exports {
                writeln!(out, "    export {name}")?;
            }
        }
    }
    Ok(())
}
