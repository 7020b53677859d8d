//! Building components from `build:` contexts with cargo.
//!
//! Each context is a cargo package built for `wasm32-wasip2` in release
//! mode. cargo's JSON messages tell which crate is compiling (shown on a
//! spinner) and where the `.wasm` landed, so porto never guesses target
//! directory layouts; cargo's own diagnostics are shown if the build fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
    #[serde(default)]
    success: Option<bool>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    #[serde(default)]
    kind: Vec<String>,
}

pub struct Built {
    pub wasm: PathBuf,
    pub elapsed: Duration,
}

/// Builds the package in `dir`, returning the component it produced.
pub fn build(service: &str, dir: &Path) -> anyhow::Result<Built> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{}: no Cargo.toml, so there is nothing for porto to build",
            dir.display()
        );
    }
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_prefix(format!("building {service}"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    if spinner.is_hidden() {
        eprintln!("porto: building {service} ({})", dir.display());
    }

    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cargo (is it installed and on PATH?)")?;

    let stderr = child.stderr.take().context("cargo stderr")?;
    let diagnostics = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });

    let mut wasm = None;
    let mut compiled = 0usize;
    let stdout = child.stdout.take().context("cargo stdout")?;
    for line in BufReader::new(stdout).lines() {
        let Ok(message) = serde_json::from_str::<Message>(&line?) else {
            continue;
        };
        match message.reason.as_str() {
            "compiler-artifact" => {
                compiled += 1;
                if let Some(target) = &message.target {
                    spinner.set_message(format!("compiled {} ({compiled} crates)", target.name));
                    if target.kind.iter().any(|k| k == "cdylib" || k == "bin")
                        && let Some(path) = message
                            .filenames
                            .iter()
                            .find(|p| p.extension().is_some_and(|e| e == "wasm"))
                    {
                        wasm = Some(path.clone());
                    }
                }
            }
            "build-finished" if message.success == Some(false) => spinner.set_message("failed"),
            _ => {}
        }
    }
    let status = child.wait()?;
    let diagnostics = diagnostics.join().unwrap_or_default();
    spinner.finish_and_clear();
    if !status.success() {
        let hint = if diagnostics.contains("may not be installed")
            || diagnostics.contains("can't find crate for `core`")
        {
            format!("\nhint: run `rustup target add {WASM_TARGET}`")
        } else {
            String::new()
        };
        bail!(
            "cargo build of {service} failed:\n{}{hint}",
            tail(&diagnostics, 40)
        );
    }
    let wasm = wasm.with_context(|| {
        format!("cargo built {service} but produced no .wasm (is the crate a cdylib?)")
    })?;
    Ok(Built {
        wasm,
        elapsed: started.elapsed(),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
