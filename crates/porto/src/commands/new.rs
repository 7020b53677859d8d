//! `porto new`: add a service to the project.

use std::path::PathBuf;

use clap::Args;

use crate::scaffold::{self, Request};

/// A new service on service-kit: crate, workspace member, Compose entry.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The service's name: its Compose service, cargo package, directory
    /// (`services/NAME`) and, under `porto kube`, Kubernetes objects.
    /// Lower-case letters, digits and `-`, starting with a letter.
    pub name: String,

    /// Give it its own bucket (named after it) in the key-value store:
    /// the example resource is then stored (`POST /items`, `GET` and
    /// `DELETE /items/{id}`) instead of computed (`POST /greetings`).
    #[arg(long)]
    pub stateful: bool,

    /// The host port it is published on (default: the one after the
    /// highest port the Compose file publishes). Refused if the file
    /// publishes it already.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// The Compose file to add it to; the crate goes into `services/`
    /// beside it, in the Cargo workspace at or above it.
    #[arg(short = 'f', long = "file", default_value = "compose.yaml")]
    pub file: PathBuf,
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let created = scaffold::create(
        &args.file,
        &Request {
            name: args.name.clone(),
            stateful: args.stateful,
            port: args.port,
        },
    )?;
    let name = &args.name;
    println!("created {}", created.crate_dir.display());
    for file in &created.files {
        println!("  {}", file.display());
    }
    println!(
        "added {name} to the workspace members in {}",
        created.workspace_manifest.display()
    );
    println!(
        "added {name} to {} on port {}{}",
        args.file.display(),
        created.port,
        created
            .bucket
            .as_ref()
            .map(|b| format!(", with bucket {b}"))
            .unwrap_or_default()
    );
    let (path, body) = if created.bucket.is_some() {
        ("items", r#"{"name":"Ada"}"#)
    } else {
        ("greetings", r#"{"name":"Ada"}"#)
    };
    println!("\nnext:\n  porto up {name}");
    println!(
        "  curl -X POST http://127.0.0.1:{}/{path} -H 'content-type: application/json' -d '{body}'",
        created.port
    );
    println!("  cargo test -p {name}");
    Ok(())
}
