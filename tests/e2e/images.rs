//! OCI images of the components: reproducible, and runnable by porto.

use std::process::Command;

use serde_json::json;

use crate::harness::{PORTO, Porto, built_components, stack};

const SERVICES: [&str; 3] = ["api-gateway", "user-service", "order-service"];

fn image_build(args: &[&str]) -> String {
    let out = Command::new(PORTO)
        .args(["image", "build"])
        .args(args)
        .output()
        .expect("run porto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn image_tarballs_are_reproducible_and_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf8");
    for service in SERVICES {
        let wasm = built_components()[service].display().to_string();
        let first = dir.path().join(format!("{service}-1.tar"));
        let second = dir.path().join(format!("{service}-2.tar"));
        let line = image_build(&[
            &wasm,
            "-t",
            &format!("{service}:repro"),
            "--store",
            store,
            "-o",
            first.to_str().expect("utf8"),
        ]);
        image_build(&[
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
        image_build(&[&wasm, "-t", &format!("{service}:e2e"), "--store", store]);
        let entry = compose["services"][service]
            .as_mapping_mut()
            .expect("service");
        entry.remove("build");
        entry.remove("x-porto");
        entry.insert("image".into(), format!("{service}:e2e").into());
    }
    for (service, bucket) in [("user-service", "users"), ("order-service", "orders")] {
        compose["services"][service]["x-porto"]["buckets"] =
            serde_yaml_ng::Value::Sequence(vec![bucket.into()]);
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
    entry.insert("image".into(), "nowhere/user-service:missing".into());
    entry.insert(
        "x-porto".into(),
        serde_yaml_ng::from_str("{buckets: [users]}").expect("yaml"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&compose).expect("yaml")).expect("write");
    let out = Command::new(PORTO)
        .args(["up", "--ephemeral-ports", "-f"])
        .arg(&file)
        .arg("--images")
        .arg(dir.path().join("empty"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere/user-service:missing"), "{stderr}");
}
