//! `porto new` in a copy of this repository: the services it adds (one
//! with a bucket, one without) build, pass their own unit tests and lint,
//! show their interfaces and serve their APIs under `porto up`, with the
//! Compose file's comments and other services left as they were.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;

use crate::harness::{
    Client, PORTO, Porto, command_as_from_the_shell, free_port, port_of, repo_root, succeeded,
};

/// The repository's sources (not its build output or local state) in a
/// temporary directory.
fn copy_of_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root(), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') || name_text == "target" || name_text == "node_modules" {
            continue;
        }
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// The copy builds into a target directory of its own: cargo names a path
/// crate's artifacts by its path within the workspace, so the copy's
/// service-kit would overwrite the repository's in a shared one.
fn copy_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    command_as_from_the_shell(program)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", copy_target_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    #[test]
    fn porto_new_adds_services_that_build_serve_and_answer() {
        let repo = copy_of_repository();
        let root: PathBuf = repo.path().to_path_buf();
        let compose_before = std::fs::read_to_string(root.join("compose.yaml")).expect("read");
        let port = free_port().to_string();

        let created = run_in(
            &root,
            PORTO,
            &["new", "widgets", "--stateful", "--grpc", "--port", &port],
        );
        assert!(created.status.success(), "{}", text(&created));
        assert!(
            text(&created).contains("porto up widgets"),
            "{}",
            text(&created)
        );

        // The file as it was, the new service appended to `services:`...
        let compose_after = std::fs::read_to_string(root.join("compose.yaml")).expect("read");
        let start = compose_after
            .find("\n  widgets:\n    build:\n      context: services/widgets\n")
            .expect("widgets added under services");
        let block: usize = compose_after[start + 1..]
            .split_inclusive('\n')
            .take_while(|line| line.starts_with("  "))
            .map(str::len)
            .sum();
        let without = format!(
            "{}{}",
            &compose_after[..start],
            &compose_after[start + 1 + block..]
        );
        // ...and its store's volume to `volumes:`, for Docker.
        let without = without
            .strip_suffix("  widgets-data: {}\n")
            .expect("the volume declared last");
        assert_eq!(without, compose_before, "every other byte kept");

        for (args, expected) in [
            (vec!["new", "widgets"], "already has a service"),
            (vec!["new", "Widgets!"], "not a valid service name"),
            (
                vec!["new", "gadgets", "--port", "8080"],
                "already published",
            ),
        ] {
            let refused = run_in(&root, PORTO, &args);
            assert!(!refused.status.success(), "{args:?} was accepted");
            assert!(
                text(&refused).contains(expected),
                "{args:?}: {}",
                text(&refused)
            );
        }

        // A stateless one beside it.
        let greeter_port = free_port().to_string();
        let stateless = run_in(&root, PORTO, &["new", "greeter", "--port", &greeter_port]);
        assert!(stateless.status.success(), "{}", text(&stateless));

        // They are part of the application at once: built, with their interfaces.
        let built = run_in(
            &root,
            PORTO,
            &["build", "--interfaces", "widgets", "greeter"],
        );
        assert!(built.status.success(), "{}", text(&built));
        let listing = String::from_utf8_lossy(&built.stdout).to_string();
        let interfaces_of = |service: &str| -> String {
            let mut lines = listing
                .lines()
                .skip_while(|l| !l.starts_with(&format!("{service} ")));
            let first = lines
                .next()
                .unwrap_or_else(|| panic!("{service} not built: {listing}"));
            let rest: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).collect();
            format!("{first}\n{}", rest.join("\n"))
        };
        let widgets = interfaces_of("widgets");
        assert!(
            widgets.contains("import wasi:keyvalue/store@0.2.0-draft2"),
            "{widgets}"
        );
        assert!(
            widgets.contains("export wasi:http/incoming-handler@0.2"),
            "{widgets}"
        );
        let greeter = interfaces_of("greeter");
        assert!(!greeter.contains("wasi:keyvalue"), "{greeter}");
        assert!(
            greeter.contains("export wasi:http/incoming-handler@0.2"),
            "{greeter}"
        );

        // Their own unit tests pass, natively, and they pass the repository's
        // lint (`make lint`) as written.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for args in [
            &["test", "--quiet", "-p", "widgets", "-p", "greeter"][..],
            &["fmt", "--check", "-p", "widgets", "-p", "greeter"],
            &[
                "clippy",
                "--quiet",
                "-p",
                "widgets",
                "-p",
                "greeter",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ] {
            let checked = run_in(&root, &cargo, args);
            assert!(
                checked.status.success(),
                "cargo {args:?}: {}",
                text(&checked)
            );
        }

        let target = copy_target_dir();
        let porto = Porto::start_unmodified_with_env(
            &root.join("compose.yaml"),
            &["widgets", "greeter"],
            &[("CARGO_TARGET_DIR", target.to_str().expect("utf-8 path"))],
        );
        let mut served: Vec<&str> = porto.urls.keys().map(String::as_str).collect();
        served.sort_unstable();
        assert_eq!(
            served,
            ["admin", "greeter", "widgets"],
            "only the services asked for"
        );
        let greeter = Client::new(porto.url("greeter"));
        let greeting = greeter.post_json("/greetings", &json!({"name": " Ada "}));
        assert_eq!(greeting.status, 200, "{}", greeting.body);
        assert_eq!(greeting.json(), json!({"greeting": "Hello, Ada!"}));
        let invalid = greeter.post_json("/greetings", &json!({"name": "\u{7}"}));
        assert_eq!(invalid.error_code(), "validation_failed");
        assert_eq!(greeter.get("/greetings").status, 405);
        let client = Client::new(porto.url("widgets"));
        assert_eq!(client.get("/healthz").status, 200);
        let created = client.post_json("/items", &json!({"name": "  Ada  "}));
        assert_eq!(created.status, 201);
        let item = created.json();
        assert_eq!(item["name"], "Ada");
        let location = created.header("location").expect("Location").to_string();
        assert_eq!(client.get(&location).json(), item);
        let invalid = client.post_json("/items", &json!({"name": ""}));
        assert_eq!(invalid.status, 400);
        assert_eq!(invalid.error_code(), "validation_failed");
        assert!(
            invalid.json()["error"]["details"]["name"].is_string(),
            "{}",
            invalid.json()
        );
        assert_eq!(
            client
                .post_json("/items", &json!({"name": "A", "x": 1}))
                .status,
            400
        );
        assert_eq!(client.delete(&location).status, 204);
        let gone = client.get(&location);
        assert_eq!(
            (gone.status, gone.error_code().as_str()),
            (404, "item_not_found")
        );
        assert_eq!(client.get("/nowhere").status, 404);

        // Its gRPC API, from its own .proto, with grpcio.
        let proto = root.join("services/widgets/proto");
        let call = |method: &str, body: serde_json::Value| -> serde_json::Value {
            let printed = succeeded(
                std::process::Command::new(repo_root().join("tests/grpc/walk"))
                    .args(["--script", "call"])
                    .arg(&proto)
                    .arg("widgets/v1/widgets.proto")
                    .arg(format!("127.0.0.1:{}", port_of(porto.url("widgets"))))
                    .arg(format!("widgets.v1.Widgets/{method}"))
                    .arg(body.to_string()),
            );
            serde_json::from_str(&printed).expect("JSON")
        };
        let made = call("CreateItem", json!({"name": " Grace "}));
        assert_eq!(made["ok"]["name"], "Grace", "{made}");
        let id = made["ok"]["id"].clone();
        assert_eq!(call("GetItem", json!({"id": id})), made);
        let invalid = call("CreateItem", json!({"name": ""}));
        assert_eq!(invalid["code"], "INVALID_ARGUMENT", "{invalid}");
        assert!(
            invalid["message"]
                .as_str()
                .is_some_and(|m| m.contains("name:"))
        );
        assert_eq!(
            call("GetItem", json!({"id": "987654"}))["code"],
            "NOT_FOUND"
        );
    }
}
