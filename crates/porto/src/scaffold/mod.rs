//! `porto new`: a working service in one step.
//!
//! A new service is a crate on service-kit under `services/NAME` (a health
//! route, one example resource with validation; with state, its own bucket
//! through `wasi:keyvalue`), a workspace member and a Compose entry. All of
//! it is prepared and checked in memory first; then the crate is written,
//! and the two edited files replace the old ones whole, so a failure
//! leaves the project as it was.

mod compose_edit;
mod workspace_edit;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_yaml_ng::Value;

use compose_edit::ServiceBlock;

/// What to create.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub stateful: bool,
    /// A gRPC API beside REST (`.proto`, `build.rs`, `src/rpc.rs`).
    pub grpc: bool,
    /// The published port; `None` takes the next one after the file's.
    pub port: Option<u16>,
}

/// What was created, for the command to report.
#[derive(Debug)]
pub struct Created {
    pub crate_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub workspace_manifest: PathBuf,
    pub port: u16,
    pub bucket: Option<String>,
}

/// Names that would clash with Rust, cargo's own directories or reserved
/// device names once the service is a crate and a directory.
const RESERVED: &[&str] = &[
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
    "self",
    "super",
    "crate",
    "build",
    "deps",
    "examples",
    "incremental",
    "con",
    "aux",
    "nul",
    "prn",
    "fn",
    "mod",
    "type",
    "impl",
    "use",
    "async",
    "await",
    "dyn",
    "move",
    "ref",
    "static",
    "loop",
    "match",
    "where",
    "while",
    "for",
    "if",
    "else",
    "let",
    "mut",
    "pub",
    "return",
    "struct",
    "enum",
    "trait",
    "true",
    "false",
    "const",
    "extern",
    "unsafe",
    "in",
    "as",
    "break",
    "continue",
];

/// A name that is a valid Compose service, cargo package, directory and
/// Kubernetes object name (RFC 1035 label) at once.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.len() < 2 || !crate::kube::is_dns_label(name) {
        bail!(
            "{name:?} is not a valid service name: use 2 to 63 lower-case letters, digits \
             and `-`, starting with a letter and ending with a letter or digit (a Compose \
             service, a cargo package and a Kubernetes name at once)"
        );
    }
    if RESERVED.contains(&name) {
        bail!("{name:?} is reserved (a Rust keyword, crate or cargo directory name)");
    }
    Ok(())
}

/// Creates the service `request` describes next to the Compose file.
pub fn create(compose_path: &Path, request: &Request) -> anyhow::Result<Created> {
    let name = request.name.as_str();
    check_name(name)?;
    let compose_text = std::fs::read_to_string(compose_path)
        .with_context(|| format!("reading {}", compose_path.display()))?;
    let compose_dir = std::path::absolute(compose_path)?
        .parent()
        .map(Path::to_path_buf)
        .context("the Compose file has no directory")?;
    let document: Value = serde_yaml_ng::from_str(&compose_text)
        .with_context(|| format!("parsing {}", compose_path.display()))?;
    if document["services"].get(name).is_some() {
        bail!(
            "{} already has a service named {name:?}",
            compose_path.display()
        );
    }
    let taken = crate::app::published_ports(
        &crate::compose::parse(&compose_text)
            .with_context(|| format!("reading {}", compose_path.display()))?,
    );
    let port = match request.port {
        Some(0) => bail!("--port must be from 1 to 65535"),
        Some(port) if taken.contains(&port) => bail!(
            "port {port} is already published in {}; choose another with --port",
            compose_path.display()
        ),
        Some(port) => port,
        None => next_free_port(&taken)?,
    };

    let root = workspace_edit::find_root(&compose_dir)?;
    let workspace_manifest = root.join("Cargo.toml");
    let workspace_text = std::fs::read_to_string(&workspace_manifest)
        .with_context(|| format!("reading {}", workspace_manifest.display()))?;
    workspace_edit::check_dependencies(&workspace_text, request.grpc)?;
    if workspace_edit::member_packages(&root, &workspace_text)?
        .iter()
        .any(|p| p == name)
    {
        bail!("the workspace already has a package named {name:?}");
    }
    let crate_dir = compose_dir.join("services").join(name);
    if crate_dir.exists() {
        bail!("{} already exists", crate_dir.display());
    }
    let member = crate_dir
        .strip_prefix(&root)
        .context("the Compose file's directory is outside the workspace")?
        .to_string_lossy()
        .replace('\\', "/");

    let bucket = request.stateful.then(|| name.to_string());
    let files = crate_files(name, bucket.as_deref(), request.grpc);
    let new_workspace = workspace_edit::add_member(&workspace_text, &member)?;
    let workspace = workspace_from(&compose_dir, &root)?;
    let block = service_block(&document, name, port, bucket.as_deref(), &workspace);
    let mut new_compose = compose_edit::add_service(&compose_text, &block)
        .with_context(|| format!("editing {}", compose_path.display()))?;
    if bucket.is_some() {
        new_compose = compose_edit::add_volume(&new_compose, &data_volume(name))
            .with_context(|| format!("editing {}", compose_path.display()))?;
    }

    let written = write_crate(&crate_dir, &files)?;
    let replaced = replace(&workspace_manifest, &new_workspace).and_then(|()| {
        replace(compose_path, &new_compose).inspect_err(|_| {
            // Put the workspace back as it was; the crate goes below.
            let _ = replace(&workspace_manifest, &workspace_text);
        })
    });
    if let Err(error) = replaced {
        let _ = std::fs::remove_dir_all(&crate_dir);
        return Err(error);
    }
    Ok(Created {
        crate_dir,
        files: written,
        workspace_manifest,
        port,
        bucket,
    })
}

/// The port after the highest published one, or 8080 in an empty file.
fn next_free_port(taken: &BTreeSet<u16>) -> anyhow::Result<u16> {
    let start = taken.last().map_or(8080, |p| p.saturating_add(1));
    (start..=u16::MAX)
        .find(|p| !taken.contains(p))
        .context("no free port above the file's highest; choose one with --port")
}

/// The Compose entry, for porto and for Docker with porto's shim alike:
/// the shim's runtime, the Dockerfile's workspace context, the bucket and
/// a volume for its store when it keeps state, and the same `networks` as
/// the file's other wasi/wasm services.
fn service_block(
    document: &Value,
    name: &str,
    port: u16,
    bucket: Option<&str>,
    workspace: &str,
) -> ServiceBlock {
    let sibling = document["services"]
        .as_mapping()
        .and_then(|s| s.values().find(|v| v["platform"] == "wasi/wasm"));
    let mut lines = vec![
        "build:".to_string(),
        format!("  context: services/{name}"),
        "  additional_contexts:".to_string(),
        format!("    workspace: {workspace}"),
        "platform: wasi/wasm".to_string(),
        format!("runtime: {SHIM_RUNTIME}"),
        "ports:".to_string(),
        format!("  - \"{port}:80\""),
    ];
    if let Some(bucket) = bucket {
        lines.push("environment:".to_string());
        lines.push(format!("  PORTO_BUCKETS: {bucket}"));
        lines.push("volumes:".to_string());
        lines.push(format!("  - {}:/data", data_volume(name)));
    }
    let networks: Vec<&str> = sibling
        .and_then(|s| s["networks"].as_sequence())
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !networks.is_empty() {
        lines.push(format!("networks: [{}]", networks.join(", ")));
    }
    ServiceBlock {
        name: name.to_string(),
        lines,
    }
}

/// The runtime Docker and containerd run porto's components with.
const SHIM_RUNTIME: &str = "io.containerd.porto.v1";

/// The named volume a stateful service keeps its store on in a container.
fn data_volume(name: &str) -> String {
    format!("{name}-data")
}

/// The workspace root as the Compose file names paths: relative to the
/// file's directory (`.` when they are one).
fn workspace_from(compose_dir: &Path, root: &Path) -> anyhow::Result<String> {
    let below = compose_dir
        .strip_prefix(root)
        .context("the Compose file's directory is outside the workspace")?;
    let depth = below.components().count();
    Ok(if depth == 0 {
        ".".to_string()
    } else {
        vec![".."; depth].join("/")
    })
}

/// The crate's files, relative to its directory, with their text.
fn crate_files(name: &str, bucket: Option<&str>, grpc: bool) -> Vec<(String, String)> {
    let description = match bucket {
        Some(bucket) => format!("items kept in the {bucket} bucket"),
        None => "greetings, validated".to_string(),
    };
    let input = if bucket.is_some() {
        "NewItem"
    } else {
        "NewGreeting"
    };
    let package = name.replace('-', "_");
    let grpc_dependencies = if grpc {
        "prost.workspace = true\n\n[build-dependencies]\nservice-kit-build.workspace = true\n"
    } else {
        ""
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{description}}", &description)
            .replace("{{bucket}}", bucket.unwrap_or_default())
            .replace("{{input}}", input)
            .replace("{{package}}", &package)
            .replace("{{Service}}", &pascal_case(name))
            .replace("{{grpc_dependencies}}", grpc_dependencies)
    };
    let lib = if bucket.is_some() {
        include_str!("../../templates/service/lib_stateful.rs.tmpl")
    } else {
        include_str!("../../templates/service/lib.rs.tmpl")
    };
    let mut lib = fill(lib);
    if grpc {
        lib = lib
            .replace("pub mod domain;\n", "pub mod domain;\npub mod rpc;\n")
            .replace(
                "service_kit::export_service!(crate::handle);",
                "service_kit::export_service!(crate::handle, grpc: crate::rpc::serve);",
            )
            .replacen(
                ".\n//!\n",
                &format!(
                    ".\n//!\n//! gRPC, on the same port: `{package}.v1.{}` ([`rpc`]) and\n//! `grpc.health.v1.Health`.\n//!\n",
                    pascal_case(name)
                ),
                1,
            );
    }
    let mut files = vec![
        (
            "Cargo.toml".to_string(),
            fill(include_str!("../../templates/service/Cargo.toml.tmpl")),
        ),
        (
            "src/domain.rs".to_string(),
            fill(include_str!("../../templates/service/domain.rs.tmpl")),
        ),
        ("src/lib.rs".to_string(), lib),
        (
            "Dockerfile".to_string(),
            fill(include_str!("../../templates/service/Dockerfile.tmpl")),
        ),
    ];
    if bucket.is_some() {
        files.push((
            "src/store.rs".to_string(),
            fill(include_str!("../../templates/service/store.rs.tmpl")),
        ));
    }
    if grpc {
        let (proto, rpc) = if bucket.is_some() {
            (
                include_str!("../../templates/service/items.proto.tmpl"),
                include_str!("../../templates/service/rpc_items.rs.tmpl"),
            )
        } else {
            (
                include_str!("../../templates/service/greeter.proto.tmpl"),
                include_str!("../../templates/service/rpc_greeter.rs.tmpl"),
            )
        };
        files.push((format!("proto/{package}/v1/{package}.proto"), fill(proto)));
        files.push((
            "build.rs".to_string(),
            fill(include_str!("../../templates/service/build.rs.tmpl")),
        ));
        files.push(("src/rpc.rs".to_string(), fill(rpc)));
    }
    files
}

/// `OrderHistory` for `order-history`: a proto service's name.
fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn write_crate(dir: &Path, files: &[(String, String)]) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(relative);
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(error) = result {
            let _ = std::fs::remove_dir_all(dir);
            return Err(error).with_context(|| format!("writing {}", path.display()));
        }
        written.push(path);
    }
    Ok(written)
}

/// Replaces `path` whole (a new file renamed over it), so a reader never
/// sees half of it.
fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .context("a path with no file name")?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{file_name}.porto-new"));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
