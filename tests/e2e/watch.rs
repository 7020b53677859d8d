//! `porto up --watch`: an edited service is rebuilt and swapped in while
//! porto keeps serving; a request in flight finishes on the build it
//! started on; other services are left alone; a broken edit keeps the
//! running build.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{Client, Porto, fixtures, read_head, repo_root};

const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

/// The watched guest: answers `answer`; on `/held` it first waits for the
/// test's gate (`GATE_URL`) to answer, which keeps the request in flight
/// inside this build for as long as the test needs.
fn write_guest(dir: &Path, answer: &str) {
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "use service_kit::{{ApiError, ApiRequest, ApiResponse}};\n\
             use service_kit::upstream::Upstream;\n\n\
             async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {{\n    \
             if request.segments() == [\"held\"] {{\n        \
             let gate = std::env::var(\"GATE_URL\").unwrap_or_default();\n        \
             let gate = Upstream::new(\"gate\", &gate, std::time::Duration::from_secs(600));\n        \
             let _ = gate\n            \
             .send(service_kit::Method::GET, \"/\", &Default::default(), Default::default())\n            \
             .await;\n    \
             }}\n    \
             Ok(ApiResponse::ok(&\"{answer}\"))\n}}\n\n\
             service_kit::export_service!(crate::handle);\n"
        ),
    )
    .expect("write lib.rs");
}

/// An application of two services: `watched`, built from a cargo package
/// of its own, allowed to call the gate at `gate`; and `other`, a prebuilt
/// component (the slow fixture).
fn application(dir: &Path, gate: &str) {
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
        format!(
            "services:\n  \
               watched:\n    build: {{context: .}}\n    platform: wasi/wasm\n    ports: ['1:80']\n    \
                 environment: {{GATE_URL: 'http://{gate}'}}\n    \
                 x-porto: {{allow_hosts: ['{gate}'], request_timeout_ms: 600000}}\n  \
               other:\n    platform: wasi/wasm\n    ports: ['1:80']\n    \
                 x-porto: {{component: '{}'}}\n",
            fixtures()["slow"].display()
        ),
    )
    .expect("write compose.yaml");
}

/// A listener that takes connections and answers none of them until the
/// test does: each accepted connection, its request head read, is handed
/// over on the channel.
fn gate() -> (String, mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            read_head(&mut reader);
            if sender.send(reader.into_inner()).is_err() {
                return;
            }
        }
    });
    (address, receiver)
}

fn open_gate(mut held: TcpStream) {
    held.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .expect("answer the held call");
}

fn digest_of(porto: &Porto, service: &str) -> String {
    let status = porto.service_status(service);
    status["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no digest of {service} in {status}"))
        .to_string()
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

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    #[test]
    fn an_edited_service_is_rebuilt_and_swapped_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (gate, held_calls) = gate();
        application(dir.path(), &gate);
        let porto =
            Porto::start_unmodified_with_flags(&dir.path().join("compose.yaml"), &["--watch"]);
        let client = Client::new(porto.url("watched"));
        let other = Client::new(porto.url("other"));
        answer_becomes(&client, "v1");
        porto.wait_for_output("porto: watching", Duration::from_secs(10));
        let other_digest = digest_of(&porto, "other");

        let rebuilding = AtomicBool::new(true);
        std::thread::scope(|scope| {
            // A request inside the v1 instance until the gate opens, which
            // outlasts the rebuild.
            let on_v1 = scope.spawn(|| {
                Client::with_timeout(porto.url("watched"), BUILD_TIMEOUT * 2).get("/held")
            });
            let held = held_calls
                .recv_timeout(Duration::from_secs(30))
                .expect("the held request reached the gate");
            // The other service has a request in flight all through the
            // rebuild and the swap.
            let on_other = scope.spawn(|| {
                let mut served = 0;
                let give_up = Instant::now() + BUILD_TIMEOUT * 2;
                while rebuilding.load(Ordering::SeqCst) && Instant::now() < give_up {
                    let reply = other.get("/?ms=500");
                    assert_eq!(
                        (reply.status, reply.body.as_str()),
                        (200, "\"slow\""),
                        "the other service during the rebuild"
                    );
                    served += 1;
                }
                served
            });

            write_guest(dir.path(), "v2");
            answer_becomes(&client, "v2");
            let line = porto.wait_for_output("porto: reloaded watched", Duration::from_secs(10));
            assert!(line.contains("wasm sha256:"), "{line}");
            open_gate(held);
            let answer = on_v1.join().expect("thread");
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (200, "\"v1\""),
                "the request in flight over the swap finished on v1"
            );
            rebuilding.store(false, Ordering::SeqCst);
            assert!(on_other.join().expect("thread") > 0);
        });
        assert_eq!(digest_of(&porto, "other"), other_digest, "other untouched");

        std::fs::write(dir.path().join("src/lib.rs"), "this is not rust\n").expect("break lib.rs");
        porto.wait_for_output("porto: rebuilding watched failed", BUILD_TIMEOUT);
        answer_becomes(&client, "v2");
    }
}
