//! OCI images of the components: reproducible, and runnable by porto.

use std::process::Command;

use serde_json::json;

use crate::harness::{PORTO, Porto, built_components, porto_image, stack};

const SERVICES: [&str; 3] = ["api-gateway", "user-service", "order-service"];

#[test]
fn image_tarballs_are_reproducible_and_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf8");
    for service in SERVICES {
        let wasm = built_components()[service].display().to_string();
        let first = dir.path().join(format!("{service}-1.tar"));
        let second = dir.path().join(format!("{service}-2.tar"));
        let line = porto_image(&[
            "build",
            &wasm,
            "-t",
            &format!("{service}:repro"),
            "--store",
            store,
            "-o",
            first.to_str().expect("utf8"),
        ]);
        porto_image(&[
            "build",
            &wasm,
            "-t",
            &format!("{service}:repro"),
            "--store",
            store,
            "-o",
            second.to_str().expect("utf8"),
        ]);
        let (a, b) = (
            std::fs::read(&first).expect("tar"),
            std::fs::read(&second).expect("tar"),
        );
        assert_eq!(a, b, "{service}: two builds differ");
        assert!(
            a.len() < 1024 * 1024,
            "{service}: image tarball is {} bytes",
            a.len()
        );
        assert!(
            line.contains(&format!("docker.io/library/{service}:repro sha256:")),
            "{line}"
        );
    }
}

#[test]
fn porto_runs_a_compose_file_of_image_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("images");
    let store = store.to_str().expect("utf8");
    let mut compose = stack();
    for service in SERVICES {
        let wasm = built_components()[service].display().to_string();
        porto_image(&[
            "build",
            &wasm,
            "-t",
            &format!("{service}:e2e"),
            "--store",
            store,
        ]);
        let entry = compose["services"][service]
            .as_mapping_mut()
            .expect("service");
        entry.remove("build");
        entry.remove("x-porto");
        entry.insert("image".into(), format!("{service}:e2e").into());
    }
    for (service, bucket) in [("user-service", "users"), ("order-service", "orders")] {
        compose["services"][service]["environment"]["PORTO_BUCKETS"] = bucket.into();
    }
    let porto = Porto::start_with_flags(&compose, &["--images", store]);
    let api = porto.gateway();
    assert_eq!(api.get("/api/users/2").json()["name"], "Bob Smith");
    let order = api.post_json(
        "/api/orders",
        &json!({"user_id": 1, "items": [{"sku": "IMG", "quantity": 2, "unit_price_cents": 3}]}),
    );
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(
        api.get("/api/users/1/orders").json()["orders"][0]["total_cents"],
        6
    );
}

#[test]
fn an_unknown_image_is_a_clear_error() {
    let mut compose = stack();
    let entry = compose["services"]["user-service"]
        .as_mapping_mut()
        .expect("service");
    entry.remove("build");
    // The harness's prebuilt component would win over the image.
    entry.remove("x-porto");
    // Nothing listens on port 1: the pull fails at once, on loopback.
    entry.insert(
        "image".into(),
        "127.0.0.1:1/nowhere/user-service:missing".into(),
    );
    entry.insert(
        "environment".into(),
        serde_yaml_ng::from_str("{PORTO_BUCKETS: users}").expect("yaml"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&compose).expect("yaml")).expect("write");
    let out = Command::new(PORTO)
        .args(["up", "--ephemeral-ports", "-f"])
        .arg(&file)
        .arg("--registry-insecure")
        .arg("--images")
        .arg(dir.path().join("empty"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:1/nowhere/user-service:missing"),
        "{stderr}"
    );
    assert!(stderr.contains("could not be pulled"), "{stderr}");
}

/// A registry of this test's own on loopback (Debian package docker-registry).
struct OwnRegistry {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl OwnRegistry {
    fn start() -> Self {
        const BINARY: &str = "/usr/bin/docker-registry";
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: `make test-tools` installs it"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::harness::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn digest_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {line:?}"))
        .to_string()
}

#[test]
fn push_pull_and_run_from_a_registry() {
    let registry = OwnRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let built_store = dir.path().join("built");
    let built_store = built_store.to_str().expect("utf8");
    let mut built = Vec::new();
    for service in SERVICES {
        let reference = format!("{}/porto/{service}:e2e", registry.host);
        let wasm = built_components()[service].display().to_string();
        let line = porto_image(&["build", &wasm, "-t", &reference, "--store", built_store]);
        let pushed = porto_image(&["push", &reference, "--store", built_store, "--insecure"]);
        assert_eq!(
            digest_in(&pushed),
            digest_in(&line),
            "the registry holds the digest porto built"
        );
        built.push((reference, digest_in(&line)));
    }

    let pulled_store = dir.path().join("pulled");
    let pulled_store = pulled_store.to_str().expect("utf8");
    for (reference, digest) in &built {
        let line = porto_image(&["pull", reference, "--store", pulled_store, "--insecure"]);
        assert_eq!(&digest_in(&line), digest, "{reference}");
    }

    // porto up with image references only, pulling into an empty store.
    let mut compose = stack();
    for service in SERVICES {
        let entry = compose["services"][service]
            .as_mapping_mut()
            .expect("service");
        entry.remove("build");
        entry.remove("x-porto");
        entry.insert(
            "image".into(),
            format!("{}/porto/{service}:e2e", registry.host).into(),
        );
    }
    for (service, bucket) in [("user-service", "users"), ("order-service", "orders")] {
        compose["services"][service]["environment"]["PORTO_BUCKETS"] = bucket.into();
    }
    let fresh_store = dir.path().join("fresh");
    let porto = Porto::start_with_flags(
        &compose,
        &[
            "--registry-insecure",
            "--images",
            fresh_store.to_str().expect("utf8"),
        ],
    );
    let api = porto.gateway();
    let order = api.post_json(
        "/api/orders",
        &json!({"user_id": 2, "items": [{"sku": "REG", "quantity": 1, "unit_price_cents": 9}]}),
    );
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(
        api.get("/api/users/2/orders").json()["orders"][0]["items"][0]["sku"],
        "REG"
    );
}
