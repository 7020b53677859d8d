use super::*;

const COMPOSE: &str = "\
# Our shop.
name: shop

services:
  gateway:
    build: services/gateway
    platform: wasi/wasm
    runtime: io.containerd.porto.v1
    ports: [\"8080:80\"]
    networks: [back]   # one network

  db:
    image: postgres:16
    ports:
      - target: 5432
        published: 5432

networks:
  back: {}
";

const WORKSPACE: &str = "\
[workspace]
members = [
    \"crates/service-kit\",
    \"services/gateway\",
]

[workspace.dependencies]
service-kit = { path = \"crates/service-kit\" }
serde = \"1\"
serde_json = \"1\"
";

/// A project in a temporary directory: compose.yaml, the workspace and
/// one existing service crate.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("compose.yaml"), COMPOSE).expect("write");
    std::fs::write(dir.path().join("Cargo.toml"), WORKSPACE).expect("write");
    let gateway = dir.path().join("services/gateway");
    std::fs::create_dir_all(&gateway).expect("mkdir");
    std::fs::write(
        gateway.join("Cargo.toml"),
        "[package]\nname = \"gateway\"\n",
    )
    .expect("write");
    dir
}

fn request(name: &str, stateful: bool, port: Option<u16>) -> Request {
    Request {
        name: name.into(),
        stateful,
        grpc: false,
        port,
    }
}

#[test]
fn a_stateful_service_gets_its_crate_member_entry_and_bucket() {
    let dir = project();
    let compose = dir.path().join("compose.yaml");
    let created = create(&compose, &request("widgets", true, None)).expect("created");
    assert_eq!(created.port, 8081, "after the highest published port");
    let crate_dir = dir.path().join("services/widgets");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "src/domain.rs",
        "src/store.rs",
        "Dockerfile",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file}");
    }
    let lib = std::fs::read_to_string(crate_dir.join("src/store.rs")).expect("read");
    assert!(lib.contains("pub const BUCKET: &str = \"widgets\";"));
    assert!(!lib.contains("{{"), "every placeholder filled");
    let text = std::fs::read_to_string(&compose).expect("read");
    assert!(
        text.starts_with("# Our shop.\nname: shop\n"),
        "comments kept"
    );
    assert!(text.contains("    networks: [back]   # one network\n"));
    let doc: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let widgets = &doc["services"]["widgets"];
    assert_eq!(widgets["build"]["context"], "services/widgets");
    assert_eq!(widgets["runtime"], "io.containerd.porto.v1");
    assert_eq!(widgets["ports"][0], "8081:80");
    assert_eq!(widgets["networks"][0], "back");
    // Settings in the shim's spelling, a volume for the store, the
    // workspace for the Dockerfile: the entry runs under Docker too.
    assert_eq!(widgets["environment"]["PORTO_BUCKETS"], "widgets");
    assert_eq!(widgets["volumes"][0], "widgets-data:/data");
    assert!(doc["volumes"]["widgets-data"].is_mapping());
    assert!(text.ends_with("volumes:\n  widgets-data: {}\n"), "{text}");
    assert_eq!(widgets["build"]["additional_contexts"]["workspace"], ".");
    let dockerfile = std::fs::read_to_string(crate_dir.join("Dockerfile")).expect("read");
    assert!(
        dockerfile.contains("-p widgets\n")
            && dockerfile.contains("release/widgets.wasm /widgets.wasm")
    );
    assert!(!dockerfile.contains("{{"), "every placeholder filled");
    let app = crate::app::App::load(&[compose]).expect("porto reads the result");
    let spec = app.service("widgets").expect("served");
    assert!(spec.keeps_state);
    assert!(spec.config.buckets.contains("widgets"));
    assert!(
        spec.config.env.is_empty(),
        "PORTO_BUCKETS is no guest variable"
    );
    let workspace = std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("read");
    assert!(workspace.contains("    \"services/gateway\",\n    \"services/widgets\",\n"));
}

#[test]
fn a_stateless_service_has_no_bucket_or_store() {
    let dir = project();
    let compose = dir.path().join("compose.yaml");
    create(&compose, &request("greeter", false, Some(9000))).expect("created");
    let crate_dir = dir.path().join("services/greeter");
    assert!(!crate_dir.join("src/store.rs").exists());
    let doc: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&compose).expect("read")).expect("yaml");
    assert_eq!(doc["services"]["greeter"]["ports"][0], "9000:80");
    assert!(doc["services"]["greeter"]["x-porto"].is_null());
    assert!(doc["services"]["greeter"]["volumes"].is_null());
    assert!(
        doc["volumes"].is_null(),
        "no volume for a service without state"
    );
}

#[test]
fn refusals_leave_the_project_untouched() {
    let dir = project();
    let compose = dir.path().join("compose.yaml");
    let cases = [
        (request("gateway", false, None), "already has a service"),
        (request("Widgets", false, None), "not a valid service name"),
        (
            request("my_service", false, None),
            "not a valid service name",
        ),
        (request("-x", false, None), "not a valid service name"),
        (request("test", false, None), "reserved"),
        (request("widgets", false, Some(8080)), "already published"),
        (request("widgets", false, Some(5432)), "already published"),
        (request("widgets", false, Some(0)), "1 to 65535"),
    ];
    for (request, expected) in cases {
        let err = create(&compose, &request).expect_err("refused");
        assert!(
            format!("{err:#}").contains(expected),
            "{}: {err:#}",
            request.name
        );
    }
    // A directory in the way is refused too.
    std::fs::create_dir_all(dir.path().join("services/taken")).expect("mkdir");
    assert!(create(&compose, &request("taken", false, None)).is_err());
    assert_eq!(std::fs::read_to_string(&compose).expect("read"), COMPOSE);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("read"),
        WORKSPACE
    );
    assert!(!dir.path().join("services/widgets").exists());
}

#[test]
fn a_grpc_service_gets_its_proto_build_script_and_rpc_module() {
    let dir = project();
    let compose = dir.path().join("compose.yaml");
    let mut asked = request("order-history", true, None);
    asked.grpc = true;
    let refused = create(&compose, &asked).expect_err("no prost in the workspace");
    assert!(format!("{refused:#}").contains("prost"), "{refused:#}");

    let workspace = WORKSPACE.replace(
        "serde_json = \"1\"\n",
        "serde_json = \"1\"\nprost = \"0.14\"\nservice-kit-build = { path = \"crates/service-kit-build\" }\n",
    );
    std::fs::write(dir.path().join("Cargo.toml"), workspace).expect("write");
    create(&compose, &asked).expect("created");
    let crate_dir = dir.path().join("services/order-history");
    let read = |file: &str| std::fs::read_to_string(crate_dir.join(file)).expect(file);
    let proto = read("proto/order_history/v1/order_history.proto");
    assert!(proto.contains("package order_history.v1;"), "{proto}");
    assert!(proto.contains("service OrderHistory {"), "{proto}");
    assert!(read("build.rs").contains("order_history/v1/order_history.proto"));
    let lib = read("src/lib.rs");
    assert!(lib.contains("pub mod rpc;"), "{lib}");
    assert!(
        lib.contains("export_service!(crate::handle, grpc: crate::rpc::serve)"),
        "{lib}"
    );
    assert!(lib.contains("order_history.v1.OrderHistory"), "{lib}");
    assert!(read("src/rpc.rs").contains("\"order_history.v1.OrderHistory\""));
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains("[build-dependencies]\nservice-kit-build.workspace = true"),
        "{manifest}"
    );
}
