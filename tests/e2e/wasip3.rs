//! WASI 0.3 components (`wasi:http/handler@0.3.x`), told apart from WASI
//! 0.2 ones by their exports before anything is compiled.

use crate::harness::{PORTO, fixture_service};

/// A WASI 0.3 hello built with the `wasip3` crate, as Spin 4 and wasmCloud
/// 2.5 users build them, is recognised as one at start: named so, not a
/// compile error about a missing wasm feature. (Serving it comes with the
/// WASI 0.3 runner; until then porto stops before binding anything.)
#[test]
fn a_wasip3_component_is_recognised_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    let mut services = serde_yaml_ng::Mapping::new();
    services.insert("hello".into(), fixture_service("hello_p3", ""));
    let mut compose = serde_yaml_ng::Mapping::new();
    compose.insert("services".into(), services.into());
    std::fs::write(&file, serde_yaml_ng::to_string(&compose).expect("yaml")).expect("write");
    let out = std::process::Command::new(PORTO)
        .args(["up", "--ephemeral-ports", "--no-admin", "-f"])
        .arg(&file)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output()
        .expect("run porto");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hello: a WASI 0.3 component (it exports wasi:http/handler@0.3)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("requires the component model async feature"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));
}
