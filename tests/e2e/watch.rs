//! `porto up --watch`: an edited service is rebuilt and swapped in while
//! porto keeps serving; a broken edit keeps the running build.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Client, Porto, repo_root};

const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

fn write_guest(dir: &Path, answer: &str) {
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "use service_kit::{{ApiError, ApiRequest, ApiResponse}};\n\n\
             async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {{\n    \
             Ok(ApiResponse::ok(&\"{answer}\"))\n}}\n\n\
             service_kit::export_service!(crate::handle);\n"
        ),
    )
    .expect("write lib.rs");
}

/// A one-service application built from a cargo package of its own.
fn application(dir: &Path) {
    let root = repo_root().canonicalize().expect("repo root");
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"watched\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nservice-kit = {{ path = \"{}\" }}\nwstd = \"0.6.8\"\n\n\
             [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n\n\
             [workspace]\n",
            root.join("crates/service-kit").display()
        ),
    )
    .expect("write Cargo.toml");
    // The repository's lockfile: the same versions, so the shared target
    // directory already holds the dependencies.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    write_guest(dir, "v1");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  watched:\n    build: {context: .}\n    platform: wasi/wasm\n    ports: ['1:80']\n",
    )
    .expect("write compose.yaml");
}

fn answer_becomes(client: &Client, expected: &str) {
    let deadline = Instant::now() + BUILD_TIMEOUT;
    loop {
        let reply = client.get("/");
        assert_eq!(reply.status, 200, "served throughout: {}", reply.body);
        if reply.body == format!("\"{expected}\"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after {BUILD_TIMEOUT:?}",
            reply.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_edited_service_is_rebuilt_and_swapped_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    application(dir.path());
    let porto = Porto::start_unmodified_with_flags(&dir.path().join("compose.yaml"), &["--watch"]);
    let client = Client::new(porto.url("watched"));
    answer_becomes(&client, "v1");
    porto.wait_for_output("porto: watching", Duration::from_secs(10));

    write_guest(dir.path(), "v2");
    answer_becomes(&client, "v2");
    let line = porto.wait_for_output("porto: reloaded watched", Duration::from_secs(10));
    assert!(line.contains("wasm sha256:"), "{line}");

    std::fs::write(dir.path().join("src/lib.rs"), "this is not rust\n").expect("break lib.rs");
    porto.wait_for_output("porto: rebuilding watched failed", BUILD_TIMEOUT);
    answer_becomes(&client, "v2");
}
