//! Adding a service to a Compose file as a person would: a new block at
//! the end of `services:`, every other byte of the file (comments, order,
//! quoting, blank lines) left as it was.
//!
//! The edit is made on the text, guided by the document's structure, and
//! then proven: the result is parsed again and must hold exactly the old
//! document plus the new service, or the edit is refused.

use anyhow::{Context as _, bail};
use serde_yaml_ng::{Mapping, Value};

/// A service block: its name and its properties as `(key, YAML lines)`.
pub struct ServiceBlock {
    pub name: String,
    /// The block's lines below `name:`, indented by one unit each level
    /// (two spaces); re-indented to the file's own unit on insertion.
    pub lines: Vec<String>,
}

/// `text` with `block` appended to its `services:` mapping.
pub fn add_service(text: &str, block: &ServiceBlock) -> anyhow::Result<String> {
    add_entry(text, "services", block)
}

/// `text` with a named volume declared under its top-level `volumes:`
/// (Compose creates it on first use).
pub fn add_volume(text: &str, name: &str) -> anyhow::Result<String> {
    let block = ServiceBlock {
        name: name.to_string(),
        lines: Vec::new(),
    };
    add_entry(text, "volumes", &block)
}

/// `text` with `block` appended to its top-level `key:` mapping.
fn add_entry(text: &str, key: &str, block: &ServiceBlock) -> anyhow::Result<String> {
    let before: Value = serde_yaml_ng::from_str(text).context("parsing the Compose file")?;
    let empty = Mapping::new();
    let root = match &before {
        Value::Mapping(root) => root,
        Value::Null => &empty,
        _ => bail!("the Compose file is not a mapping of top-level keys"),
    };
    let entries = root.get(key);
    if entries.and_then(|s| s.get(&block.name)).is_some() {
        bail!("`{key}` already has an entry named {:?}", block.name);
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let edited = match entries {
        Some(Value::Mapping(m)) if !m.is_empty() => insert_into(&lines, key, block)?,
        None | Some(Value::Null | Value::Mapping(_)) => start(text, &lines, key, block),
        Some(_) => bail!("`{key}` is not a mapping"),
    };
    // A file written with CRLF line ends keeps them.
    let edited = if text.contains("\r\n") {
        edited.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        edited
    };
    verify(&before, &edited, key, &block.name)?;
    Ok(edited)
}

/// A `key:` that holds nothing (no value, or `{}`: the one flow form
/// porto rewrites) gets the block below it, the line's comment kept; a
/// file without the key gets it appended.
fn start(text: &str, lines: &[&str], key: &str, block: &ServiceBlock) -> String {
    let mut out = String::new();
    let heading = format!("{key}:");
    if let Ok(at) = key_line(lines, key) {
        let rest = lines[at][heading.len()..].replacen("{}", "", 1);
        out.push_str(&lines[..at].concat());
        out.push_str(&heading);
        out.push_str(rest.trim_end());
        out.push('\n');
        out.push_str(&render(block, 2));
        out.push_str(&lines[at + 1..].concat());
        return out;
    }
    out.push_str(text);
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&heading);
    out.push('\n');
    out.push_str(&render(block, 2));
    out
}

/// The line index of the top-level `key:`.
fn key_line(lines: &[&str], key: &str) -> anyhow::Result<usize> {
    let heading = format!("{key}:");
    lines
        .iter()
        .position(|l| {
            l.strip_prefix(heading.as_str()).is_some_and(|rest| {
                let rest = rest.trim_start();
                let rest = rest.strip_prefix("{}").unwrap_or(rest).trim();
                rest.is_empty() || rest.starts_with('#')
            })
        })
        .with_context(|| format!("cannot find a top-level `{key}:` line to extend"))
}

fn insert_into(lines: &[&str], key: &str, block: &ServiceBlock) -> anyhow::Result<String> {
    let start = key_line(lines, key)?;
    let is_top_level = |l: &str| {
        let t = l.trim_end();
        !t.is_empty() && !t.starts_with([' ', '\t', '#'])
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_top_level(l))
        .map_or(lines.len(), |i| start + 1 + i);
    // After the last indented line of the block: column-0 comments and
    // blank lines before the next key belong to that key.
    let last = (start + 1..end)
        .rev()
        .find(|&i| lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty())
        .with_context(|| format!("`{key}:` has no indented entries to follow"))?;
    let unit = lines[start + 1..end]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .filter(|&n| n > 0)
        .unwrap_or(2);
    let mut out: String = lines[..=last].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    // A service is a block of its own; a volume one line among others.
    if !block.lines.is_empty() {
        out.push('\n');
    }
    out.push_str(&render(block, unit));
    out.push_str(&lines[last + 1..].concat());
    Ok(out)
}

/// The block at the file's indentation unit.
fn render(block: &ServiceBlock, unit: usize) -> String {
    if block.lines.is_empty() {
        return format!("{}{}: {{}}\n", " ".repeat(unit), block.name);
    }
    let mut out = format!("{}{}:\n", " ".repeat(unit), block.name);
    for line in &block.lines {
        let depth = (line.len() - line.trim_start_matches(' ').len()) / 2;
        out.push_str(&" ".repeat(unit * (depth + 2)));
        out.push_str(line.trim_start_matches(' '));
        out.push('\n');
    }
    out
}

/// The edited file must be the old document plus the new entry of `key`,
/// last.
fn verify(before: &Value, edited: &str, key: &str, name: &str) -> anyhow::Result<()> {
    let after: Value = serde_yaml_ng::from_str(edited)
        .context("porto's edit of the Compose file does not parse; the file was not changed")?;
    let strip = |doc: &Value| -> (Mapping, Mapping) {
        let mut root = doc.as_mapping().cloned().unwrap_or_default();
        let services = match root.remove(key) {
            Some(Value::Mapping(m)) => m,
            _ => Mapping::new(),
        };
        (root, services)
    };
    let (old_root, old_services) = strip(before);
    let (new_root, mut new_services) = strip(&after);
    let last = new_services.keys().last().cloned();
    let added_last = last.as_ref().and_then(Value::as_str) == Some(name);
    if let Some(last) = &last {
        new_services.remove(last);
    }
    let intact = old_root == new_root && old_services == new_services && added_last;
    if !intact {
        bail!(
            "porto could not add {name:?} without changing the rest of the Compose file; \
             the file was not changed (add the service by hand)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ServiceBlock {
        ServiceBlock {
            name: "widgets".into(),
            lines: vec![
                "build:".into(),
                "  context: services/widgets".into(),
                "platform: wasi/wasm".into(),
                "ports:".into(),
                "  - \"8083:80\"".into(),
            ],
        }
    }

    const FILE: &str = "\
# The application.
name: shop

services:
  # the front door
  gateway:
    build: services/gateway   # built with cargo
    platform: wasi/wasm
    ports: [\"8080:80\"]

  db:
    image: postgres:16

# Networks below.
networks:
  default: {}
";

    #[test]
    fn appends_the_service_and_keeps_every_other_byte() {
        let out = add_service(FILE, &block()).expect("edited");
        let inserted = "\n  widgets:\n    build:\n      context: services/widgets\n    platform: wasi/wasm\n    ports:\n      - \"8083:80\"\n";
        let last_line = "    image: postgres:16\n";
        let (head, tail) = FILE.split_at(FILE.find(last_line).expect("db") + last_line.len());
        assert_eq!(out, format!("{head}{inserted}{tail}"));
        let doc: Value = serde_yaml_ng::from_str(&out).expect("parses");
        let keys: Vec<_> = doc["services"]
            .as_mapping()
            .expect("services")
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, vec!["gateway", "db", "widgets"]);
    }

    #[test]
    fn follows_the_files_indentation() {
        let four = "services:\n    a:\n        image: x\n";
        let out = add_service(four, &block()).expect("edited");
        assert!(
            out.contains("\n    widgets:\n        build:\n            context: services/widgets\n"),
            "{out}"
        );
    }

    #[test]
    fn fills_an_empty_or_missing_services() {
        let commented = add_service("services: {}   # none yet\n", &block()).expect("edited");
        assert!(
            commented.starts_with("services:    # none yet\n  widgets:\n"),
            "{commented}"
        );
        for text in ["services: {}\n", "name: x\n", "services:\n", ""] {
            let out = add_service(text, &block()).expect("edited");
            let doc: Value = serde_yaml_ng::from_str(&out).expect("parses");
            assert_eq!(
                doc["services"]["widgets"]["platform"], "wasi/wasm",
                "{text:?} → {out}"
            );
        }
    }

    #[test]
    fn keeps_crlf_line_ends() {
        let out = add_service(&FILE.replace('\n', "\r\n"), &block()).expect("edited");
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        assert!(out.contains("\r\n  widgets:\r\n"));
    }

    #[test]
    fn refuses_what_it_cannot_edit_safely() {
        assert!(add_service("services: {a: {image: x}}\n", &block()).is_err());
        assert!(add_service("services:\n  widgets:\n    image: x\n", &block()).is_err());
        assert!(add_service("- a\n- b\n", &block()).is_err());
    }
}
