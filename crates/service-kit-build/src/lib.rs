//! Message types for a guest's `.proto` files, from its `build.rs`:
//!
//! ```no_run
//! // in build.rs's `main`:
//! service_kit_build::protos(&["users/v1/users.proto"], "../../proto");
//! ```
//!
//! and in the crate, `include!(concat!(env!("OUT_DIR"), "/users.v1.rs"))`,
//! one file per proto package. The `.proto` files are parsed in Rust, so a
//! fresh machine needs no `protoc`; only messages are generated (the
//! service side is service-kit's `grpc` module, the same for every
//! service).

use std::path::Path;

/// Compiles `files` (paths under `include`) into `OUT_DIR`, and has Cargo
/// rerun the script when any of them changes. A `.proto` that does not
/// parse stops the build with the parser's message, naming the file and
/// line.
pub fn protos(files: &[&str], include: impl AsRef<Path>) {
    let include = include.as_ref();
    for file in files {
        println!("cargo:rerun-if-changed={}", include.join(file).display());
    }
    let descriptors = match protox::compile(files, [include]) {
        Ok(descriptors) => descriptors,
        Err(error) => fail(&format!("{error:?}")),
    };
    if let Err(error) = prost_build::Config::new().compile_fds(descriptors) {
        fail(&error.to_string());
    }
}

fn fail(why: &str) -> ! {
    eprintln!("service-kit-build: {why}");
    std::process::exit(1)
}
