//! What lets the same components run elsewhere: Compose override files,
//! the allocator porto falls back to on constrained platforms, and the
//! interfaces a component needs from whatever runtime hosts it.

use std::process::Command;

use serde_json::json;

use crate::harness::{PORTO, Porto, command_as_from_the_shell, repo_root, stack};

#[test]
fn override_files_are_laid_over_the_base_compose_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let override_file = dir.path().join("override.yaml");
    // Only the new key: the gateway keeps its upstream URLs from the base.
    std::fs::write(
        &override_file,
        "services:\n  api-gateway:\n    environment:\n      API_KEYS: from-the-override\n",
    )
    .expect("write override");
    let override_path = override_file.to_str().expect("utf-8 path");
    let porto = Porto::start_unmodified_with_flags(
        &repo_root().join("compose.yaml"),
        &["-f", override_path],
    );
    let api = porto.gateway();
    let body = json!({"name": "Olive", "email": "olive@example.com"}).to_string();
    let json = [("content-type", "application/json")];
    assert_eq!(
        api.send("POST", "/api/users", &json, Some(&body)).status,
        401
    );
    let authorised = [
        ("content-type", "application/json"),
        ("authorization", "Bearer from-the-override"),
    ];
    assert_eq!(
        api.send("POST", "/api/users", &authorised, Some(&body))
            .status,
        201
    );
    assert_eq!(api.get("/api/users/1").status, 200);
}

/// A relative path in an override file resolves against the first file's
/// directory, as with `docker compose`, not the override's own directory
/// or porto's working directory: each of those holds a different
/// component under the same name here, and only the first file's answers.
#[test]
fn relative_paths_in_an_override_resolve_against_the_first_file() {
    let fixtures = crate::harness::fixtures();
    let base = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&fixtures["trap"], base.path().join("base.wasm")).expect("copy");
    std::fs::copy(&fixtures["ok"], base.path().join("chosen.wasm")).expect("copy");
    std::fs::copy(&fixtures["silent"], elsewhere.path().join("chosen.wasm")).expect("copy");
    let base_file = base.path().join("compose.yaml");
    std::fs::write(
        &base_file,
        "services:\n  svc:\n    platform: wasi/wasm\n    ports: ['1:80']\n    x-porto: {component: base.wasm}\n",
    )
    .expect("write base");
    let override_file = elsewhere.path().join("override.yaml");
    std::fs::write(
        &override_file,
        "services:\n  svc:\n    x-porto: {component: chosen.wasm}\n",
    )
    .expect("write override");
    let porto = Porto::start_unmodified_with_flags(
        &base_file,
        &["-f", override_file.to_str().expect("utf-8 path")],
    );
    let reply = crate::harness::Client::new(porto.url("svc")).get("/");
    assert_eq!((reply.status, reply.body.as_str()), (200, "\"ok\""));
}

#[test]
fn the_on_demand_allocator_serves_the_same_api() {
    let porto = Porto::start_with_flags(&stack(), &["--allocator", "on-demand"]);
    assert!(
        porto.startup[0].contains("on-demand allocator"),
        "{:?}",
        porto.startup
    );
    let api = porto.gateway();
    let created = api.post_json(
        "/api/users",
        &json!({"name": "Dee Mand", "email": "dee@example.com"}),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        api.get(&format!("/api/users/{}", created.json()["id"]))
            .json(),
        created.json()
    );
}

#[test]
fn build_lists_the_interfaces_each_component_needs() {
    let cache = tempfile::tempdir().expect("tempdir");
    let output = command_as_from_the_shell(PORTO)
        .current_dir(repo_root())
        .args(["--log", "warn", "build", "--interfaces", "--cache-dir"])
        .arg(cache.path())
        .output()
        .expect("run porto build");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let section = |service: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with(service))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    for service in ["api-gateway", "user-service", "order-service"] {
        let lines = section(service);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("export wasi:http/incoming-handler@0.2.")),
            "{service}: {lines:?}"
        );
        let uses_keyvalue = lines
            .iter()
            .any(|l| l == "import wasi:keyvalue/store@0.2.0-draft2");
        assert_eq!(
            uses_keyvalue,
            service != "api-gateway",
            "{service}: {lines:?}"
        );
    }
}

/// The walk the portability matrix runs on every architecture, here on the
/// native one, so it stays in step with the API.
#[test]
fn the_portability_api_walk_passes_on_this_host() {
    let porto = Porto::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = dir.path().join("transcript.jsonl");
    let output = Command::new("python3")
        .arg(repo_root().join("scripts/api-walk"))
        .arg(porto.url("api-gateway"))
        .arg(&transcript)
        .output()
        .expect("run scripts/api-walk");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    let lines = std::fs::read_to_string(&transcript).expect("transcript");
    assert!(report.contains("checks: 30/30 passed"), "{report}");
    assert_eq!(lines.lines().count(), 30);
    // Masked: transcripts of two hosts compare byte for byte.
    assert!(!lines.contains("\"created_at\": \"20"), "{lines}");
}
