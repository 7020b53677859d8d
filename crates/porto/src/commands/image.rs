//! `porto image`: OCI images of components, without a Docker daemon.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use porto_oci::{Form, Reference, Registry};

use crate::progress::Bar;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a byte-reproducible OCI image of a component.
    ///
    /// The image is what `docker buildx build --platform wasi/wasm` makes of
    /// a `FROM scratch` + `COPY` + `ENTRYPOINT` Dockerfile: config `os: wasi`,
    /// `architecture: wasm`, one uncompressed layer holding `/<name>.wasm`.
    /// The same `.wasm` always gives the same manifest digest.
    Build(BuildArgs),
    /// Push an image of the local store to its registry.
    ///
    /// The manifest goes up as the exact bytes `porto image build` made, so
    /// the registry holds it under the same digest.
    Push(TransferArgs),
    /// Pull an image from its registry into the local store.
    Pull(TransferArgs),
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The image, e.g. `127.0.0.1:5000/shop/user-service:1.0`.
    pub reference: String,

    /// porto's local image store (an OCI layout directory).
    #[arg(long, default_value = ".porto/images")]
    pub store: PathBuf,

    /// Talk plain HTTP to this image's registry (a registry on loopback).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A service of the Compose file (built first if it has `build:`), or a
    /// path to a `.wasm` file.
    pub source: String,

    /// The image name: `name[:tag]` or `registry/path[:tag]` (tag defaults to latest).
    #[arg(short = 't', long = "tag")]
    pub tag: String,

    #[command(flatten)]
    pub compose: super::ComposeFiles,

    /// Also write the image here: a path ending in `.tar` gets a tarball for
    /// `docker load -i`; any other path an OCI layout directory.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,

    /// Build the CNCF Wasm OCI artifact form instead
    /// (`application/vnd.wasm.config.v0+json` config, `application/wasm` layer).
    #[arg(long)]
    pub artifact: bool,

    /// porto's local image store (an OCI layout directory).
    #[arg(long, default_value = ".porto/images")]
    pub store: PathBuf,
}

pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    match args.command {
        ImageCommand::Build(args) => build(args),
        ImageCommand::Push(args) => transfer(args, Direction::Push),
        ImageCommand::Pull(args) => transfer(args, Direction::Pull),
    }
}

enum Direction {
    Push,
    Pull,
}

fn transfer(args: TransferArgs, direction: Direction) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let insecure = if args.insecure {
        vec![Registry::host_of(&reference)]
    } else {
        Vec::new()
    };
    let registry = Registry::new(insecure);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match direction {
        Direction::Push => {
            let image = porto_oci::read_image(&args.store, &reference)?;
            let digest = runtime.block_on(registry.push(&reference, &image, &Bar::default()))?;
            println!("pushed {} {digest}", reference.full());
        }
        Direction::Pull => {
            let image = runtime.block_on(registry.pull(&reference, &Bar::default()))?;
            porto_oci::store(&args.store, &reference, &image)?;
            println!(
                "pulled {} {} -> {}",
                reference.full(),
                image.digest(),
                args.store.display()
            );
        }
    }
    Ok(())
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.tag)?;
    let (name, wasm) = if args.source.ends_with(".wasm") {
        let path = Path::new(&args.source);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("the .wasm path has no file name")?
            .replace('_', "-");
        (
            name,
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
    } else {
        let app = args.compose.load()?;
        let spec = app.service(&args.source).with_context(|| {
            format!(
                "{} has no wasi/wasm service {:?}",
                args.compose, args.source
            )
        })?;
        (
            spec.name().to_string(),
            super::component(spec, &args.store)?.wasm,
        )
    };
    let form = if args.artifact {
        Form::Artifact
    } else {
        Form::Scratch
    };
    let image = porto_oci::build(&name, &wasm, form)?;
    porto_oci::store(&args.store, &reference, &image)?;
    if let Some(output) = &args.output {
        let images = [(reference.clone(), &image)];
        if output.extension().is_some_and(|e| e == "tar") {
            std::fs::write(output, porto_oci::archive(&images)?)
                .with_context(|| format!("writing {}", output.display()))?;
        } else {
            porto_oci::write_dir(output, &porto_oci::files(&images)?)?;
        }
    }
    println!(
        "{} {} ({} bytes of component, {} bytes of image){}",
        reference.full(),
        image.digest(),
        wasm.len(),
        image.size(),
        args.output
            .as_ref()
            .map(|o| format!(" -> {}", o.display()))
            .unwrap_or_default()
    );
    Ok(())
}
