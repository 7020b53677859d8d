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

/// Every subcommand is listed with a summary in `porto --help`, and its
/// own `--help` explains it; `up`'s names the flags the README relies on.
#[test]
fn help_explains_every_command() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(PORTO)
            .args(args)
            .arg("--help")
            .output()
            .expect("run porto");
        assert!(out.status.success(), "porto {args:?} --help: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&[]);
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect();
    for command in ["up", "build", "image", "ps", "kube", "new"] {
        let line = listed
            .iter()
            .find(|line| line.split_whitespace().next() == Some(command))
            .unwrap_or_else(|| panic!("{command} not listed in porto --help:\n{top}"));
        assert!(
            line.split_whitespace().count() > 2,
            "{command} has no summary: {line:?}"
        );
        let own = help(&[command]);
        assert!(
            own.contains(&format!("Usage: porto {command}")),
            "porto {command} --help:\n{own}"
        );
        assert!(
            own.lines().next().is_some_and(|first| first.len() > 10),
            "porto {command} --help has no description:\n{own}"
        );
    }
    for command in ["build", "push", "pull"] {
        let own = help(&["image", command]);
        assert!(
            own.contains(&format!("Usage: porto image {command}")),
            "porto image {command} --help:\n{own}"
        );
    }
    let up = help(&["up"]);
    for flag in [
        "--file",
        "--data",
        "--kv",
        "--ephemeral-ports",
        "--drain-timeout",
        "--watch",
        "--admin",
    ] {
        assert!(up.contains(flag), "{flag} missing from up --help:\n{up}");
    }
}

/// A Compose file porto cannot run is refused before anything starts: a
/// non-zero exit naming the problem, no ready line, no listener, and no
/// data directory left behind.
#[test]
fn invalid_compose_files_fail_before_starting() {
    let service = "  a:\n    platform: wasi/wasm\n    build: a\n";
    for (case, compose, named) in [
        (
            "unknown dependency",
            format!("services:\n{service}    depends_on: [ghost]\n"),
            "ghost",
        ),
        (
            "dependency cycle",
            format!(
                "services:\n{service}    depends_on: [b]\n  b:\n    platform: wasi/wasm\n    build: b\n    depends_on: [a]\n"
            ),
            "cycle",
        ),
        (
            "misspelt porto key",
            format!("services:\n{service}    x-porto:\n      max_concurency: 4\n"),
            "max_concurency",
        ),
        (
            "unreadable port",
            format!("services:\n{service}    ports: [\"eighty\"]\n"),
            "eighty",
        ),
        (
            "no component source",
            "services:\n  a:\n    platform: wasi/wasm\n".to_string(),
            "needs `build`",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, compose).expect("write");
        let data = dir.path().join("data");
        let out = std::process::Command::new(PORTO)
            .args(["up", "--ephemeral-ports", "--no-admin", "-f"])
            .arg(&file)
            .arg("--data")
            .arg(&data)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: exited {:?}", out.status);
        assert!(stderr.contains(named), "{case}: {named:?} not in {stderr}");
        assert!(!stdout.contains("ready"), "{case}: said ready: {stdout}");
        assert!(!data.exists(), "{case}: created {}", data.display());
    }
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
