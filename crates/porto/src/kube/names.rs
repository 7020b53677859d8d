//! What Kubernetes would refuse of the names and sizes `porto kube` writes,
//! refused here first with the reason, before anything is printed.

use anyhow::bail;

use super::Options;
use crate::app::App;

/// An RFC 1035 label, what Kubernetes requires of a Service's name: 1 to
/// 63 lower-case letters, digits and `-`, starting with a letter and
/// ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What Kubernetes would refuse, refused here with the reason, before
/// anything is printed.
pub(super) fn check_names(app: &App, options: &Options) -> anyhow::Result<()> {
    for spec in &app.services {
        if !is_dns_label(spec.name()) {
            bail!(
                "service {:?} cannot name Kubernetes objects: use 1 to 63 lower-case letters, \
                 digits and `-`, starting with a letter",
                spec.name()
            );
        }
    }
    let label_value = |v: &str| {
        v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !label_value(&app.project) {
        bail!(
            "the project name {:?} (the Compose file's `name`) is not a Kubernetes label \
             value: at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a \
             letter or digit",
            app.project
        );
    }
    // A namespace is an RFC 1123 label: like a Service's name, but it may
    // also start with a digit.
    if let Some(namespace) = &options.namespace
        && !(namespace.len() <= 63 && is_dns_label(&format!("n{namespace}")))
    {
        bail!(
            "--namespace {namespace:?} is not a Kubernetes namespace name (lower-case letters, digits and `-`)"
        );
    }
    if !is_quantity(&options.volume_size) {
        bail!(
            "--volume-size {:?} is not a Kubernetes quantity like 1Gi or 500Mi",
            options.volume_size
        );
    }
    Ok(())
}

/// A Kubernetes quantity: a decimal number with an optional binary
/// (Ki…Ei) or decimal (k, M…E) suffix.
fn is_quantity(text: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let number = suffixes
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
        && number.bytes().any(|b| b != b'0' && b != b'.')
}
