//! One module per subcommand, and what several of them share.

pub mod build;
pub mod image;
pub mod kube;
pub mod new;
pub mod ps;
pub mod up;

use std::path::{Path, PathBuf};

use clap::Args;

use crate::app::{App, ServiceSpec};
use crate::components::{self, ComponentBytes};

/// `-f`, as in `docker compose`: repeat it to lay override files over the
/// base one (mappings merge key by key, other values replace).
#[derive(Debug, Clone, Args)]
pub struct ComposeFiles {
    /// The Compose file describing the application; give -f again for
    /// override files applied in order.
    #[arg(short = 'f', long = "file", default_value = "compose.yaml")]
    pub files: Vec<PathBuf>,
}

impl ComposeFiles {
    pub fn load(&self) -> anyhow::Result<App> {
        App::load(&self.files)
    }
}

impl std::fmt::Display for ComposeFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        f.write_str(&names.join(" + "))
    }
}

/// The component of `spec` (built first if it has `build:`), saying on
/// stderr what was built.
pub fn component(spec: &ServiceSpec, images: &Path) -> anyhow::Result<ComponentBytes> {
    let component = components::resolve(spec, images)?;
    if let Some(took) = component.build_time {
        eprintln!(
            "porto: built {} in {:.1}s ({})",
            spec.name(),
            took.as_secs_f64(),
            component.path.display()
        );
    }
    Ok(component)
}
