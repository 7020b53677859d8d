//! The `porto` command line: parse flags, set up logging, run a command.

use clap::{Parser, Subcommand};
use porto::commands::{build, image, kube, new, ps, up};
use porto_host::telemetry::{self, LogFormat};

/// Run a Compose application of WebAssembly HTTP components, in one
/// process, with no Docker.
///
/// porto reads the services with `platform: wasi/wasm` from a standard
/// compose.yaml, builds each `build:` context for wasm32-wasip2, and serves
/// every published port. Calls between services stay in-process; state
/// lives in an embedded durable store under --data.
#[derive(Debug, Parser)]
#[command(name = "porto", version, about, long_about)]
struct Cli {
    /// Log filter, e.g. `info`, `porto=debug`, `guest=warn`.
    #[arg(long, env = "PORTO_LOG", default_value = "info", global = true)]
    log: String,

    /// Log lines as human-readable text or as JSON objects (one per line,
    /// with service and request_id fields), for log shippers.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every component and serve the application until Ctrl-C.
    ///
    /// Prints one line per service with its URL, then `ready`. On Ctrl-C
    /// or SIGTERM it stops accepting connections, lets in-flight requests
    /// finish, and exits 0.
    Up(up::UpArgs),
    /// Build every component and print its size and sha256 digest.
    Build(build::BuildArgs),
    /// Build OCI images of components (for Docker, Kubernetes, registries).
    Image(image::ImageArgs),
    /// List the services of a running porto: digest, URL, requests served,
    /// error rate, p50/p99 latency, instances in flight.
    Ps(ps::PsArgs),
    /// Print Kubernetes manifests for the Compose file's services.
    ///
    /// Each wasi/wasm service becomes a Deployment (a StatefulSet with a
    /// volume when it keeps data in the embedded store) on the `porto`
    /// RuntimeClass, and a Service; allow-lists, buckets, limits and reuse
    /// reach porto's containerd shim as its PORTO_* variables. The output
    /// depends only on the Compose file and these flags:
    /// `porto kube | kubectl apply -f -`.
    Kube(kube::KubeArgs),
    /// Add a service: a crate on service-kit, a workspace member and a
    /// compose.yaml entry, ready for `porto up`.
    New(new::NewArgs),
}

fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of main, before any thread exists.
    unsafe { porto_host::library_backtraces_off_unless_asked() };
    let cli = Cli::parse();
    // Kept to the end of main: dropping it flushes exported spans.
    let _telemetry = telemetry::init(&cli.log, cli.log_format);
    let result = match cli.command {
        Command::Up(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(up::run(args))),
        Command::Build(args) => build::run(args),
        Command::Image(args) => image::run(args),
        Command::Ps(args) => ps::run(args),
        Command::Kube(args) => kube::run(args),
        Command::New(args) => new::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("porto: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks (duplicate flags, conflicting names,
    /// arguments that can never be given), which it runs only when asked.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
