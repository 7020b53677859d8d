//! `porto build`: build every component and report its size and digest.

use std::path::PathBuf;

use clap::Args;

use crate::app::App;
use crate::components;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Compose file describing the application.
    #[arg(short = 'f', long = "file", default_value = "compose.yaml")]
    pub file: PathBuf,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let app = App::load(&args.file)?;
    for spec in &app.services {
        let component = components::resolve(spec, std::path::Path::new(".porto/images"))?;
        println!(
            "{:<16} {:>9} bytes  {:>7.1} KiB  sha256:{}  {}",
            spec.name,
            component.wasm.len(),
            component.wasm.len() as f64 / 1024.0,
            component.digest,
            component.path.display()
        );
    }
    Ok(())
}
