//! The Cargo workspace a new service joins, edited with `toml_edit` so
//! its comments and layout stay as they were.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use toml_edit::{DocumentMut, Value};

/// The nearest `Cargo.toml` with a `[workspace]` at or above `dir`.
pub fn find_root(dir: &Path) -> anyhow::Result<PathBuf> {
    for candidate in dir.ancestors() {
        let manifest = candidate.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && text
                .parse::<DocumentMut>()
                .is_ok_and(|doc| doc.contains_key("workspace"))
        {
            return Ok(candidate.to_path_buf());
        }
    }
    bail!(
        "no Cargo workspace at or above {}: porto new adds services to a porto project \
         (a workspace with service-kit in [workspace.dependencies])",
        dir.display()
    )
}

/// Checks the workspace can build a service on service-kit.
pub fn check_dependencies(text: &str, grpc: bool) -> anyhow::Result<()> {
    let doc: DocumentMut = text.parse().context("parsing the workspace Cargo.toml")?;
    let deps = doc
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table_like());
    let for_grpc: &[&str] = if grpc {
        &["prost", "service-kit-build"]
    } else {
        &[]
    };
    for needed in ["service-kit", "serde", "serde_json"]
        .iter()
        .chain(for_grpc)
    {
        if !deps.is_some_and(|d| d.contains_key(needed)) {
            bail!("the workspace Cargo.toml has no `{needed}` in [workspace.dependencies]");
        }
    }
    Ok(())
}

/// Package names of the workspace's members, so a new crate's name is
/// not already taken.
pub fn member_packages(root: &Path, text: &str) -> anyhow::Result<Vec<String>> {
    let doc: DocumentMut = text.parse().context("parsing the workspace Cargo.toml")?;
    let mut names = Vec::new();
    for member in members(&doc) {
        let manifest = root.join(&member).join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(name) = text
            .parse::<DocumentMut>()
            .ok()
            .and_then(|d| d.get("package")?.get("name")?.as_str().map(str::to_string))
        {
            names.push(name);
        }
    }
    Ok(names)
}

fn members(doc: &DocumentMut) -> Vec<String> {
    doc.get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `text` with `member` in `workspace.members`: after the last member in
/// the same directory (`services/…`), else last, formatted like its
/// neighbour.
pub fn add_member(text: &str, member: &str) -> anyhow::Result<String> {
    let mut doc: DocumentMut = text.parse().context("parsing the workspace Cargo.toml")?;
    if members(&doc).iter().any(|m| m == member) {
        bail!("{member} is already a workspace member");
    }
    let members = doc
        .get_mut("workspace")
        .and_then(|w| w.get_mut("members"))
        .and_then(|m| m.as_array_mut())
        .context("the workspace Cargo.toml has no `members` list")?;
    let parent = member.rsplit_once('/').map_or("", |(p, _)| p);
    let siblings: Vec<bool> = members
        .iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.rsplit_once('/'))
                .is_some_and(|(p, _)| p == parent)
        })
        .collect();
    let after = siblings
        .iter()
        .rposition(|&sibling| sibling)
        .or_else(|| members.len().checked_sub(1));
    let mut value = Value::from(member);
    if let Some(prefix) = after
        .and_then(|i| members.get(i))
        .and_then(|v| v.decor().prefix())
        .and_then(|p| p.as_str())
    {
        value.decor_mut().set_prefix(prefix.to_string());
    }
    members.insert_formatted(after.map_or(0, |i| i + 1), value);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSPACE: &str = "\
[workspace]
# guests first
members = [
    \"crates/kit\",
    \"services/a\",
    \"services/b\",
    \"crates/host\",
]

[workspace.dependencies]
service-kit = { path = \"crates/kit\" }
serde = \"1\"
serde_json = \"1\"
";

    #[test]
    fn joins_its_siblings_in_the_same_layout() {
        let out = add_member(WORKSPACE, "services/c").expect("added");
        assert_eq!(
            out,
            WORKSPACE.replace(
                "    \"services/b\",\n",
                "    \"services/b\",\n    \"services/c\",\n"
            )
        );
        assert!(add_member(&out, "services/c").is_err(), "twice");
    }

    #[test]
    fn needs_the_service_kit_dependencies() {
        assert!(check_dependencies(WORKSPACE, false).is_ok());
        assert!(check_dependencies(WORKSPACE, true).is_err());
        assert!(check_dependencies("[workspace]\nmembers = []\n", false).is_err());
    }
}
