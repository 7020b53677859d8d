//! The deployment files are what Docker and Kubernetes would accept.
//!
//! No daemon or cluster runs here. The Kubernetes manifests are validated
//! strictly against the Kubernetes API's OpenAPI schemas
//! (`scripts/validate-manifests`), the Compose files against the Compose
//! Specification's schema (`scripts/validate-compose`) and the workflow
//! with actionlint (`scripts/lint-workflows`); on top of that, and for the
//! Dockerfiles, the tests check what a schema cannot:
//! cross-references (selectors, RuntimeClass, named ports, service URLs)
//! and the Dockerfiles' stages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize as _;
use serde_yaml_ng::Value;

use crate::harness::{repo_root, succeeded};

const SERVICES: [&str; 3] = ["api-gateway", "user-service", "order-service"];

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Each service's Dockerfile builds its component from the workspace
/// (the `workspace` context compose.yaml names) on the build machine's
/// platform and ships it alone: the last stage is `FROM scratch`, the
/// component and its entry point, nothing else.
#[test]
fn dockerfiles_build_the_component_and_ship_it_alone() {
    for service in SERVICES {
        let path = repo_root().join(format!("services/{service}/Dockerfile"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let instructions: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let artifact = service.replace('-', "_");
        let last_stage = instructions
            .iter()
            .rposition(|l| l.starts_with("FROM "))
            .expect("a FROM");
        assert_eq!(
            &instructions[last_stage..],
            [
                "FROM scratch".to_string(),
                format!(
                    "COPY --from=build /workspace/target/wasm32-wasip2/release/{artifact}.wasm /{service}.wasm"
                ),
                format!("ENTRYPOINT [\"/{service}.wasm\"]"),
            ],
            "{}",
            path.display()
        );
        let build = &instructions[..last_stage];
        assert!(
            build[0].starts_with("FROM --platform=$BUILDPLATFORM rust:")
                && build[0].ends_with(" AS build"),
            "{}: {}",
            path.display(),
            build[0]
        );
        assert!(
            build.contains(&"COPY --from=workspace . ."),
            "{}",
            path.display()
        );
        assert!(
            build.contains(
                &format!("RUN cargo build --locked --release --target wasm32-wasip2 -p {service}")
                    .as_str()
            ),
            "{}",
            path.display()
        );
    }
    // The workspace context leaves local builds and history out.
    let ignored =
        std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    assert!(ignored.lines().any(|l| l == "target/") && ignored.lines().any(|l| l == ".git/"));
}

/// compose.yaml is the one Compose file: what `porto up` reads is what
/// Docker with porto's shim can run (the shim's runtime, a Dockerfile
/// per service in its context, a volume at /data for each stateful one,
/// porto's settings as the shim's `PORTO_*` variables).
#[test]
fn compose_file_runs_under_porto_and_under_docker_with_the_shim() {
    let path = repo_root().join("compose.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let file = porto::compose::parse(&text).expect("porto reads it");
    let app = porto::app::App::from_compose(file, &repo_root()).expect("valid Compose");
    let names: BTreeSet<&str> = app.services.iter().map(|s| s.name()).collect();
    assert_eq!(names, SERVICES.into_iter().collect());

    let doc: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    for service in SERVICES {
        let s = &doc["services"][service];
        assert_eq!(s["platform"], "wasi/wasm", "{service}");
        assert_eq!(s["runtime"], "io.containerd.porto.v1", "{service}");
        assert_eq!(s["networks"][0], "microservices", "{service}");
        assert!(
            s.get("x-porto").is_none(),
            "{service}: a setting Docker would not pass on"
        );
        let context = s["build"]["context"].as_str().expect("context");
        assert!(
            repo_root().join(context).join("Dockerfile").is_file(),
            "{service}: no Dockerfile in {context}"
        );
        assert_eq!(
            s["build"]["additional_contexts"]["workspace"], ".",
            "{service}"
        );
        let spec = app.service(service).expect("served");
        if spec.keeps_state {
            let volume = s["volumes"][0].as_str().expect("a volume");
            let (name, target) = volume.split_once(':').expect("name:/data");
            assert_eq!(target, "/data", "{service}");
            assert!(
                doc["volumes"][name].is_mapping(),
                "{service}: volume {name} undeclared"
            );
        }
        for (key, _) in &spec.config.env {
            assert!(
                !key.starts_with("PORTO_"),
                "{service}: {key} reached the guest"
            );
        }
    }
    for backing in ["postgres", "redis"] {
        assert_eq!(
            doc["services"][backing]["profiles"][0], "scale",
            "{backing}"
        );
    }
    assert!(doc["networks"]["microservices"].is_mapping());
    // Every service URL names a service of this file.
    for service in &app.services {
        for (key, value) in &service.config.env {
            if let Some(rest) = key
                .ends_with("_URL")
                .then(|| value.strip_prefix("http://"))
                .flatten()
            {
                let host = rest.split([':', '/']).next().unwrap_or_default();
                assert!(
                    names.contains(host),
                    "{}: {key}={value} names no service",
                    service.name()
                );
            }
        }
    }
}

/// Every YAML document of the manifests directly in `dir`.
fn manifests_in(dir: &std::path::Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).expect("manifest directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value =
                    Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if !value.is_null() {
                    docs.push(value);
                }
            }
        }
    }
    docs
}

/// `deploy/k8s/` (the embedded store: StatefulSets with a volume) and
/// `deploy/k8s/scale/` (Deployments over Redis) each hold the whole
/// application, on the RuntimeClass of `deploy/k8s/`.
#[test]
fn kubernetes_manifests_hang_together() {
    let base = manifests_in(&deploy().join("k8s"));
    let runtime_classes: BTreeMap<String, Value> = base
        .iter()
        .filter(|d| d["kind"] == "RuntimeClass")
        .map(|rc| {
            (
                rc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                rc.clone(),
            )
        })
        .collect();
    assert_eq!(
        runtime_classes.keys().collect::<Vec<_>>(),
        vec!["porto"],
        "one RuntimeClass, for porto's shim"
    );
    for rc in runtime_classes.values() {
        assert_eq!(rc["apiVersion"], "node.k8s.io/v1");
        assert_eq!(rc["handler"], "porto", "handler");
    }
    let stateful = check_application(&base, &runtime_classes);
    assert_eq!(stateful, vec!["order-service", "user-service"]);
    let scaled = check_application(&manifests_in(&deploy().join("k8s/scale")), &runtime_classes);
    assert!(scaled.is_empty(), "over Redis nothing needs a volume");
}

/// `deploy/k8s/` is `porto kube`'s output for compose.yaml
/// (`scripts/generate-manifests`), not a hand-kept copy: regenerated into
/// a temporary directory, every file is the same and none is missing or
/// extra.
#[test]
fn checked_in_manifests_are_what_porto_kube_generates() {
    let out = tempfile::tempdir().expect("tempdir");
    succeeded(
        std::process::Command::new(repo_root().join("scripts/generate-manifests"))
            .arg(out.path())
            .env("PORTO", crate::harness::PORTO),
    );
    let yaml_files = |dir: &std::path::Path| -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .expect("manifest directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let name = p.file_name().expect("name").to_string_lossy().to_string();
                (name, std::fs::read_to_string(&p).expect("read"))
            })
            .collect()
    };
    // (checked in under deploy/, generated under the output directory)
    for (sub, generated) in [("k8s", ""), ("k8s/scale", "scale")] {
        let fresh = yaml_files(&out.path().join(generated));
        let checked_in = yaml_files(&deploy().join(sub));
        assert_eq!(
            fresh.keys().collect::<Vec<_>>(),
            checked_in.keys().collect::<Vec<_>>(),
            "deploy/{sub}: files differ; run scripts/generate-manifests"
        );
        for (name, text) in &fresh {
            assert_eq!(
                &checked_in[name], text,
                "deploy/{sub}/{name} differs from porto kube's output; run scripts/generate-manifests"
            );
        }
    }
}

/// `porto kube` on stdout, with a namespace and a PostgreSQL backend: one
/// stream `kubectl apply -f -` takes, every object valid for the
/// Kubernetes API, every namespaced one in the namespace.
#[test]
fn porto_kube_streams_valid_manifests_for_a_namespace_and_a_backend() {
    let stream = succeeded(
        std::process::Command::new(crate::harness::PORTO)
            .args(["kube", "-f"])
            .arg(repo_root().join("compose.yaml"))
            .args([
                "--namespace",
                "shop",
                "--kv",
                "postgres://app@db/shop",
                "--tag",
                "0.1.0",
            ]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, &stream).expect("write");
    let (ok, report) = check_with("validate-manifests", std::slice::from_ref(&file));
    assert!(ok, "{report}");
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&stream) {
        let value = Value::deserialize(doc).expect("yaml");
        let kind = value["kind"].as_str().expect("kind").to_string();
        let namespace = &value["metadata"]["namespace"];
        if kind == "RuntimeClass" {
            assert!(namespace.is_null(), "a RuntimeClass has no namespace");
        } else {
            assert_eq!(namespace, "shop", "{kind}");
        }
        if kind == "Deployment" {
            let image = &value["spec"]["template"]["spec"]["containers"][0]["image"];
            assert!(
                image.as_str().is_some_and(|i| i.ends_with(":0.1.0")),
                "{image:?}"
            );
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Deployment",
            "Deployment",
            "RuntimeClass",
            "Secret",
            "Service",
            "Service",
            "Service"
        ],
        "over PostgreSQL nothing needs a StatefulSet"
    );
}

/// Every manifest passes the Kubernetes API's own schemas, strictly
/// (`scripts/validate-manifests`: kubernetes-validate), as the API server
/// would check it; and the validator does refuse a manifest with an
/// unknown field or a wrong type, so a pass means something.
#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["k8s", "k8s/scale"] {
        for entry in std::fs::read_dir(deploy().join(dir)).expect("manifest directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    passes_and_refuses_breaks(
        "validate-manifests",
        &files,
        &deploy().join("k8s/api-gateway.yaml"),
        &[
            ("an unknown field", "spec:", "spec:\n  replicaz: 2"),
            ("a wrong type", "replicas: 2", "replicas: two"),
        ],
    );
}

/// compose.yaml passes the Compose Specification's JSON schema
/// (`scripts/validate-compose`), as `docker compose config` checks a file
/// before it reads it; porto's `x-porto` keys are extensions the
/// specification allows.
#[test]
fn compose_files_pass_the_compose_specification_schema() {
    let compose = repo_root().join("compose.yaml");
    passes_and_refuses_breaks(
        "validate-compose",
        std::slice::from_ref(&compose),
        &compose,
        &[
            ("an unknown service key", "    platform:", "    platfrom:"),
            ("a wrong type", "services:\n", "services:\n  broken: 42\n"),
        ],
    );
}

/// The CI workflow passes actionlint (`scripts/lint-workflows`): contexts,
/// expressions, action versions and, with shellcheck installed, its shell
/// steps.
#[test]
fn the_ci_workflow_passes_actionlint() {
    let workflow = repo_root().join(".github/workflows/build-wasm.yml");
    passes_and_refuses_breaks(
        "lint-workflows",
        std::slice::from_ref(&workflow),
        &workflow,
        &[
            (
                "a misspelt matrix key",
                "${{ matrix.service }}",
                "${{ matrix.servce }}",
            ),
            (
                "an unknown context",
                "${{ github.sha }}",
                "${{ gitbub.sha }}",
            ),
        ],
    );
}

/// Runs one of the repository's checker scripts on `files`: whether it
/// passed them, and what it said.
fn check_with(script: &str, files: &[PathBuf]) -> (bool, String) {
    let output = std::process::Command::new(repo_root().join("scripts").join(script))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `script` passes `files`, and refuses `sample` with each break applied
/// (`(what, text, replaced by)`, the first occurrence), so a pass means
/// something.
fn passes_and_refuses_breaks(
    script: &str,
    files: &[PathBuf],
    sample: &std::path::Path,
    breaks: &[(&str, &str, &str)],
) {
    let (ok, report) = check_with(script, files);
    assert!(ok, "{report}");
    let original = std::fs::read_to_string(sample).expect("read the sample");
    let file_name = sample
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    let broken: Vec<(&str, String)> = breaks
        .iter()
        .map(|(what, from, to)| (*what, original.replacen(from, to, 1)))
        .collect();
    assert_refused(script, file_name, &original, &broken);
}

/// Writes each broken variant of `original` beside the others and asserts
/// the checker refuses every one, so a pass of the real files means
/// something.
fn assert_refused(script: &str, file_name: &str, original: &str, broken: &[(&str, String)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, text) in broken {
        assert_ne!(text, original, "{what}: nothing was broken");
        let path = dir.path().join(what.replace(' ', "-")).join(file_name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        let (ok, report) = check_with(script, &[path]);
        assert!(!ok, "{script} passed a file with {what}: {report}");
    }
}

/// Checks one application's workloads and Services; the names of those
/// kept in a StatefulSet.
fn check_application(docs: &[Value], runtime_classes: &BTreeMap<String, Value>) -> Vec<String> {
    let of_kind = |kind: &str| {
        docs.iter()
            .filter(move |d| d["kind"] == kind)
            .collect::<Vec<_>>()
    };
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().expect("metadata.name");
        assert!(is_dns_label(name), "{name}");
        assert!(doc["apiVersion"].is_string(), "{name}: apiVersion");
    }
    let workloads: Vec<&Value> = of_kind("Deployment")
        .into_iter()
        .chain(of_kind("StatefulSet"))
        .collect();
    let services = of_kind("Service");
    let service_names: BTreeSet<&str> = services
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    assert_eq!(workloads.len(), SERVICES.len());
    let mut stateful = Vec::new();
    for workload in &workloads {
        let name = workload["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(workload["apiVersion"], "apps/v1", "{name}");
        let template = &workload["spec"]["template"];
        let labels = template["metadata"]["labels"]
            .as_mapping()
            .expect("template labels");
        for (k, v) in workload["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .expect("matchLabels")
        {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{name}: selector does not match the template"
            );
        }
        let runtime = template["spec"]["runtimeClassName"]
            .as_str()
            .expect("runtimeClassName");
        assert!(
            runtime_classes.contains_key(runtime),
            "{name}: unknown RuntimeClass {runtime}"
        );
        let containers = template["spec"]["containers"]
            .as_sequence()
            .expect("containers");
        assert_eq!(containers.len(), 1, "{name}: one component per pod");
        let container = &containers[0];
        assert!(
            container["image"]
                .as_str()
                .is_some_and(|i| i.contains(name)),
            "{name}: image"
        );
        let env: BTreeMap<&str, &Value> = container["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?, e)))
            .collect();
        for env in env.values() {
            if let Some(url) = env["value"]
                .as_str()
                .and_then(|v| v.strip_prefix("http://"))
            {
                let host = url.split([':', '/']).next().unwrap_or_default();
                assert!(
                    service_names.contains(host),
                    "{name}: {url} names no Service"
                );
            }
        }
        if name != "api-gateway" {
            // The services' buckets are named in compose.yaml, not after them.
            assert!(env.contains_key("PORTO_BUCKETS"), "{name}: PORTO_BUCKETS");
        }
        if workload["kind"] == "StatefulSet" {
            stateful.push(name.to_string());
            assert!(
                service_names
                    .contains(workload["spec"]["serviceName"].as_str().unwrap_or_default())
            );
            let claims: BTreeSet<&str> = workload["spec"]["volumeClaimTemplates"]
                .as_sequence()
                .expect("volumeClaimTemplates")
                .iter()
                .filter_map(|c| c["metadata"]["name"].as_str())
                .collect();
            let data = container["volumeMounts"]
                .as_sequence()
                .expect("volumeMounts")
                .iter()
                .find(|m| m["mountPath"] == "/data")
                .unwrap_or_else(|| panic!("{name}: nothing mounted at /data"));
            assert!(
                claims.contains(data["name"].as_str().unwrap_or_default()),
                "{name}: /data is not a claim"
            );
        }
        // The Service for this workload selects its pods and targets a named port.
        let service = services
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} has no Service"));
        for (k, v) in service["spec"]["selector"].as_mapping().expect("selector") {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{name}: Service selector misses the pods"
            );
        }
        let port_names: BTreeSet<&str> = container["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for port in service["spec"]["ports"]
            .as_sequence()
            .expect("service ports")
        {
            let target = port["targetPort"].as_str().expect("named targetPort");
            assert!(
                port_names.contains(target),
                "{name}: targetPort {target} is not a container port"
            );
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                container[probe]["httpGet"]["path"], "/healthz",
                "{name}: {probe}"
            );
        }
    }
    stateful.sort();
    stateful
}

#[test]
fn ci_workflow_runs_only_commands_that_exist() {
    let path = repo_root().join(".github/workflows/build-wasm.yml");
    let text = std::fs::read_to_string(&path).expect("read workflow");
    let workflow: Value = serde_yaml_ng::from_str(&text).expect("workflow is YAML");
    assert!(
        workflow["on"]["push"]["branches"]
            .as_sequence()
            .is_some_and(|b| b.contains(&"main".into()))
    );
    let job = &workflow["jobs"]["component"];
    let matrix: BTreeSet<&str> = job["strategy"]["matrix"]["service"]
        .as_sequence()
        .expect("matrix over services")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(matrix, SERVICES.into_iter().collect());

    let workspace = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let packages: BTreeSet<String> = SERVICES
        .iter()
        .map(|s| s.to_string())
        .chain(["service-kit".to_string(), "porto".to_string()])
        .collect();
    for package in &packages {
        assert!(
            workspace.contains(package.as_str()),
            "{package} is not a workspace member"
        );
    }
    let porto_help = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::PORTO)
            .args(args)
            .arg("--help")
            .output()
            .expect("porto");
        out.status.success()
    };
    let runs: Vec<&str> = job["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert!(
        runs.iter().any(|r| r.contains("image push")),
        "the workflow pushes images"
    );
    for run in runs {
        for line in run.lines().map(str::trim).filter(|l| !l.is_empty()) {
            // Each matrix entry runs the same line with its own service.
            let line = line.replace("${{ matrix.service }}", "api-gateway");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[0] {
                "rustup" => assert!(
                    line.contains("wasm32-wasip2") || words[1] == "default",
                    "{line}"
                ),
                "cargo" => {
                    for (i, word) in words.iter().enumerate() {
                        if *word == "-p" {
                            let package =
                                words[i + 1].replace("${{ matrix.service }}", "api-gateway");
                            assert!(packages.contains(&package), "{line}: no package {package}");
                        }
                    }
                    if let Some(at) = words.iter().position(|w| *w == "--") {
                        let subcommand: Vec<&str> =
                            words[at + 1..].iter().take(2).copied().collect();
                        assert!(
                            porto_help(&subcommand),
                            "{line}: porto has no `{}`",
                            subcommand.join(" ")
                        );
                    }
                }
                other => panic!("{line}: unexpected command {other}"),
            }
        }
    }
}
