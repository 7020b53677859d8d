//! `containerd-shim-porto-v1`: the containerd runtime `io.containerd.porto.v1`.
//!
//! containerd starts this binary for every container whose runtime is
//! `io.containerd.porto.v1`; runwasi's `containerd-shim-wasm` does the
//! containerd side (the shim API, the container's namespaces, mounts and
//! cgroups through youki's libcontainer) and calls [`PortoSandbox`] inside
//! the container, which serves the image's component with porto's host:
//! the same request path, `wasi:keyvalue` backends and limits as `porto up`,
//! configured from the container's `PORTO_*` environment (`settings.rs`).

mod sandbox;
mod settings;

use containerd_shim_wasm::shim::{Cli, Config, Shim};

use crate::sandbox::PortoSandbox;

struct PortoShim;

impl Shim for PortoShim {
    type Sandbox = PortoSandbox;

    fn name() -> &'static str {
        "porto"
    }
}

fn main() {
    PortoShim::run(Config {
        no_setup_logger: false,
        default_log_level: "info".to_string(),
    });
}
