//! Start-up, shutdown and persistence across restarts.

use serde_json::json;

use crate::harness::{PORTO, Porto, repo_root};

#[test]
fn data_survives_a_restart() {
    let mut porto = Porto::start_default();
    let api = porto.gateway();
    let user = api
        .post_json(
            "/api/users",
            &json!({"name": "Persistent Pat", "email": "pat@example.com"}),
        )
        .json();
    let order = api
        .post_json("/api/orders", &json!({"user_id": user["id"], "items": [{"sku": "P", "quantity": 1, "unit_price_cents": 7}]}))
        .json();
    let status = porto.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");

    let again = Porto::restart_on(&porto.data);
    let api = again.gateway();
    assert_eq!(api.get(&format!("/api/users/{}", user["id"])).json(), user);
    assert_eq!(
        api.get(&format!("/api/orders/{}", order["id"])).json(),
        order
    );
    // The seed is not written twice and ids keep counting.
    assert_eq!(
        api.get("/api/users").json()["items"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let next = api
        .post_json(
            "/api/users",
            &json!({"name": "Next", "email": "next@example.com"}),
        )
        .json();
    assert_eq!(next["id"].as_u64(), user["id"].as_u64().map(|id| id + 1));
}

#[test]
fn warm_start_uses_the_compile_cache() {
    drop(Porto::start_default());
    let second = Porto::start_default();
    for service in ["api-gateway", "user-service", "order-service"] {
        let line = second
            .startup
            .iter()
            .find(|l| l.trim_start().starts_with(service))
            .unwrap_or_else(|| panic!("no start-up line for {service}: {:?}", second.startup));
        assert!(line.ends_with("compile cache hit"), "{line}");
    }
}

#[test]
fn help_explains_every_command() {
    let help = std::process::Command::new(PORTO)
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("up") && text.contains("build"), "{text}");
    let up = std::process::Command::new(PORTO)
        .args(["up", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&up.stdout);
    for flag in ["--file", "--data", "--ephemeral-ports", "--drain-timeout"] {
        assert!(text.contains(flag), "{flag} missing from up --help");
    }
}

#[test]
fn invalid_compose_files_fail_before_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    platform: wasi/wasm\n    build: a\n    depends_on: [ghost]\n",
    )
    .expect("write");
    let out = std::process::Command::new(PORTO)
        .args(["up", "--ephemeral-ports", "-f"])
        .arg(&file)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ghost"), "{stderr}");
}

#[test]
fn the_repository_compose_file_runs_as_is() {
    // porto builds the three services itself from their `build:` contexts.
    let porto = Porto::start_unmodified(&repo_root().join("compose.yaml"));
    for service in ["api-gateway", "user-service", "order-service"] {
        assert!(
            porto.urls.contains_key(service),
            "{service} not published: {:?}",
            porto.urls
        );
    }
    let api = porto.gateway();
    assert_eq!(api.get("/api/users/1").json()["name"], "Alice Johnson");
    let order = api.post_json(
        "/api/orders",
        &json!({"user_id": 2, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
    );
    assert_eq!(order.status, 201, "{}", order.body);
}

/// Published ports bind 127.0.0.1 unless `--host` says otherwise (read
/// from the kernel's socket table, so no traffic leaves loopback).
#[test]
fn ports_bind_loopback_unless_host_says_otherwise() {
    for (flags, expected) in [
        (&[][..], "127.0.0.1"),
        (&["--host", "0.0.0.0"][..], "0.0.0.0"),
    ] {
        let porto = Porto::start_with_flags(&crate::harness::stack(), flags);
        let port = porto
            .url("api-gateway")
            .rsplit(':')
            .next()
            .expect("port")
            .to_string();
        let listening = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .expect("ss (iproute2)");
        let table = String::from_utf8_lossy(&listening.stdout);
        assert!(
            table.contains(&format!("{expected}:{port}")),
            "{flags:?}: {table}"
        );
        assert_eq!(porto.gateway().get("/api/users/1").status, 200);
    }
}
