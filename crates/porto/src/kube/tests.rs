use std::path::Path;

use serde_yaml_ng::Value;

use super::*;
use crate::compose;

const APP: &str = r#"
name: shop
services:
  gateway:
    build: services/gateway
    platform: wasi/wasm
    ports: ["8080:80"]
    environment:
      USERS_URL: http://users
    depends_on: [users]
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "0.5", memory: 128M}
        reservations: {memory: 64M}
    x-porto:
      max_instance_reuse: 64
      request_timeout_ms: 2000
  users:
    build: services/users
    platform: wasi/wasm
    ports: ["127.0.0.1:8081:8000"]
    x-porto:
      buckets: [people]
      allow_hosts: ["api.example.com:443"]
  db:
    image: postgres:16
"#;

fn app(yaml: &str) -> App {
    App::from_compose(compose::parse(yaml).expect("yaml"), Path::new("/shop")).expect("valid")
}

fn options() -> Options {
    Options {
        namespace: None,
        image_prefix: "registry.example/shop".into(),
        tag: "1.0".into(),
        kv: None,
        replicas: None,
        volume_size: "1Gi".into(),
        pin_from: None,
    }
}

/// Every object of the output, by `kind/name`.
fn objects(yaml: &str, options: &Options) -> BTreeMap<String, Value> {
    let manifests = manifests(&app(yaml), options).expect("manifests");
    let stream = render_stream(&manifests, "compose.yaml");
    serde_yaml_ng::Deserializer::from_str(&stream)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("each document is YAML"))
        .filter(|v: &Value| !v.is_null())
        .map(|v| {
            let key = format!(
                "{}/{}",
                v["kind"].as_str().unwrap_or_default(),
                v["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, v)
        })
        .collect()
}

fn env_of(workload: &Value) -> BTreeMap<String, Value> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e.clone(),
            )
        })
        .collect()
}

#[test]
fn a_service_with_buckets_on_the_embedded_store_is_a_stateful_set_with_a_volume() {
    let objects = objects(APP, &options());
    let keys: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "Deployment/gateway",
            "RuntimeClass/porto",
            "Service/gateway",
            "Service/users",
            "StatefulSet/users"
        ],
        "db is not a wasi/wasm service"
    );
    let users = &objects["StatefulSet/users"];
    assert_eq!(users["spec"]["replicas"], 1);
    assert_eq!(users["spec"]["serviceName"], "users");
    assert_eq!(
        users["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let container = &users["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert_eq!(container["image"], "registry.example/shop/users:1.0");
    assert_eq!(container["ports"][0]["containerPort"], 8000);
    let env = env_of(users);
    assert_eq!(env["PORTO_BUCKETS"]["value"], "people");
    assert_eq!(env["PORTO_LISTEN"]["value"], "0.0.0.0:8000");
    assert_eq!(env["PORTO_ALLOW_HOSTS"]["value"], "api.example.com:443");
    assert_eq!(objects["Service/users"]["spec"]["ports"][0]["port"], 8000);
}

#[test]
fn a_stateless_service_is_a_deployment_under_porto_s_rules() {
    let objects = objects(APP, &options());
    let gateway = &objects["Deployment/gateway"];
    assert_eq!(gateway["spec"]["replicas"], 2);
    let pod = &gateway["spec"]["template"]["spec"];
    assert_eq!(pod["runtimeClassName"], "porto");
    assert_eq!(pod["enableServiceLinks"], false);
    let container = &pod["containers"][0];
    assert_eq!(container["resources"]["limits"]["cpu"], "500m");
    assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    let env = env_of(gateway);
    assert_eq!(env["USERS_URL"]["value"], "http://users");
    assert_eq!(
        env["PORTO_BUCKETS"]["value"], "",
        "no bucket it did not declare"
    );
    assert_eq!(env["PORTO_ALLOW_HOSTS"]["value"], "users");
    assert_eq!(env["PORTO_MAX_INSTANCE_REUSE"]["value"], "64");
    assert_eq!(env["PORTO_REQUEST_TIMEOUT_MS"]["value"], "2000");
    assert!(
        !env.contains_key("PORTO_MAX_MEMORY_MIB"),
        "defaults are not restated"
    );
    let labels = &gateway["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "gateway");
    assert_eq!(labels["app.kubernetes.io/part-of"], "shop");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "porto");
    assert_eq!(
        objects["Service/gateway"]["spec"]["selector"],
        gateway["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn a_shared_backend_makes_every_service_a_deployment_with_the_url_in_a_secret() {
    let mut options = options();
    options.kv = Some("redis://redis:6379/?namespace=shop".parse().expect("kv"));
    options.replicas = Some(3);
    options.namespace = Some("prod".into());
    let objects = objects(APP, &options);
    assert!(!objects.contains_key("StatefulSet/users"));
    let users = &objects["Deployment/users"];
    assert_eq!(users["spec"]["replicas"], 3);
    assert_eq!(users["metadata"]["namespace"], "prod");
    let env = env_of(users);
    assert_eq!(
        env["PORTO_KV"]["valueFrom"]["secretKeyRef"]["name"],
        "porto-kv"
    );
    let secret = &objects["Secret/porto-kv"];
    assert_eq!(
        secret["stringData"]["url"],
        "redis://redis:6379/?namespace=shop"
    );
    assert_eq!(secret["metadata"]["namespace"], "prod");
    assert!(
        objects["RuntimeClass/porto"]["metadata"]["namespace"].is_null(),
        "a RuntimeClass belongs to the cluster"
    );
    assert!(!env_of(&objects["Deployment/gateway"]).contains_key("PORTO_KV"));
}

#[test]
fn the_output_depends_on_the_file_alone() {
    let render = || {
        render_stream(
            &manifests(&app(APP), &options()).expect("manifests"),
            "compose.yaml",
        )
    };
    assert_eq!(render(), render());
    assert!(render().starts_with("# Generated by `porto kube`"));
}

#[test]
fn what_cannot_run_as_written_is_refused() {
    let replicated = APP.replace(
        "    x-porto:\n      buckets: [people]",
        "    deploy: {replicas: 3}\n    x-porto:\n      buckets: [people]",
    );
    let err = manifests(&app(&replicated), &options()).expect_err("replicas of a store");
    assert!(format!("{err:#}").contains("embedded store"), "{err:#}");
    let two_ports = APP.replace(r#"ports: ["8080:80"]"#, r#"ports: ["8080:80", "9090:81"]"#);
    let err = manifests(&app(&two_ports), &options()).expect_err("two ports");
    assert!(format!("{err:#}").contains("serves one"), "{err:#}");
    let bad_memory = APP.replace("memory: 128M", "memory: 128Q");
    assert!(manifests(&app(&bad_memory), &options()).is_err());
    let named = |name: &str| APP.replace("  gateway:\n", &format!("  {name}:\n"));
    for bad in ["Gateway", "gate_way", "9gate", "gate-"] {
        let err = manifests(&app(&named(bad)), &options()).expect_err(bad);
        assert!(
            format!("{err:#}").contains("cannot name Kubernetes objects"),
            "{err:#}"
        );
    }
    for (field, value) in [
        ("namespace", "Prod!"),
        ("volume", "lots"),
        ("volume", "0"),
        ("prefix", "Bad Registry"),
    ] {
        let mut bad = options();
        match field {
            "namespace" => bad.namespace = Some(value.into()),
            "volume" => bad.volume_size = value.into(),
            _ => bad.image_prefix = value.into(),
        }
        assert!(manifests(&app(APP), &bad).is_err(), "{field} {value}");
    }
    let mut pinned = options();
    pinned.pin_from = Some(std::env::temp_dir().join("porto-no-such-store"));
    let err = manifests(&app(APP), &pinned).expect_err("nothing to pin");
    assert!(format!("{err:#}").contains("porto image build"), "{err:#}");
}

#[test]
fn pinned_images_carry_the_stores_digest() {
    let store = tempfile::tempdir().expect("tempdir");
    let mut pinned = options();
    pinned.pin_from = Some(store.path().to_path_buf());
    for name in ["gateway", "users"] {
        let reference =
            porto_oci::Reference::parse(&format!("registry.example/shop/{name}:1.0")).expect("ref");
        let image =
            porto_oci::build(name, b"\0asm\x0d\0\x01\0", porto_oci::Form::Scratch).expect("image");
        porto_oci::store(store.path(), &reference, &image).expect("store");
    }
    let objects = objects(APP, &pinned);
    let image = objects["Deployment/gateway"]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(
        image.starts_with("registry.example/shop/gateway:1.0@sha256:"),
        "{image}"
    );
}

#[test]
fn a_rerun_removes_only_files_it_wrote_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mine.yaml"), "kind: ConfigMap\n").expect("write");
    let first = manifests(&app(APP), &options()).expect("manifests");
    write_dir(dir.path(), &first, "compose.yaml").expect("write");
    assert!(dir.path().join("users.yaml").is_file());
    let without_users = APP.replace("    depends_on: [users]\n", "");
    let without_users = without_users
        .split("  users:")
        .next()
        .expect("head")
        .to_string()
        + "  db:\n    image: postgres:16\n";
    let second = manifests(&app(&without_users), &options()).expect("manifests");
    write_dir(dir.path(), &second, "compose.yaml").expect("write");
    assert!(
        !dir.path().join("users.yaml").exists(),
        "stale file removed"
    );
    assert!(
        dir.path().join("mine.yaml").is_file(),
        "a file of the user's kept"
    );
}

#[test]
fn a_service_with_tls_mounts_its_secret_and_tells_the_shim_where_it_is() {
    let yaml = "services:\n  web:\n    build: web\n    platform: wasi/wasm\n    ports: [\"443:8443\"]\n    x-porto:\n      buckets: [pages]\n      tls: {cert: certs/web.pem, key: certs/web.key}\n";
    let objects = objects(yaml, &options());
    let web = &objects["StatefulSet/web"];
    let pod = &web["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "web-tls");
    let container = &pod["containers"][0];
    let mounts = container["volumeMounts"].as_sequence().expect("mounts");
    assert_eq!(mounts.len(), 2, "data and tls: {mounts:?}");
    assert_eq!(mounts[1]["mountPath"], "/etc/porto/tls");
    assert!(
        mounts[1].get("subPath").is_none(),
        "a subPath mount is never rotated"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let env = env_of(web);
    assert_eq!(env["PORTO_TLS_CERT"]["value"], "/etc/porto/tls/tls.crt");
    assert_eq!(env["PORTO_TLS_KEY"]["value"], "/etc/porto/tls/tls.key");
    // The private key stays out of the manifests.
    assert!(
        !objects.keys().any(|k| k.starts_with("Secret/")),
        "{:?}",
        objects.keys()
    );
}
