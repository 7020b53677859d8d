//! Micro-benchmarks of porto's per-request path, in-process (no sockets):
//!
//! - `fresh_instance/hello`: one request to the hello-world component:
//!   new Store, instantiate from the pre-instantiated component, call,
//!   drop — the cost every request pays;
//! - `in_process_call/gateway_to_user_service`: `GET /api/users/1` on the
//!   gateway, which calls user-service in-process: two instances, one
//!   outbound call, one key-value read.
//!
//! `cargo bench -p porto --bench requests`; numbers in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use porto::app::App;
use porto::components;
use porto_host::{Allocator, Stack};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the hello-world fixture and returns its `.wasm`.
fn hello_wasm() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "test-programs",
            "--bin",
            "hello",
        ])
        .current_dir(repo())
        .status()
        .expect("cargo");
    assert!(status.success(), "building the hello fixture failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    target.join("wasm32-wasip2/release/hello.wasm")
}

/// The stack of a Compose file, started as `porto up` starts it.
fn stack(compose: &Path, dir: &Path) -> Stack {
    // Each stack owns its store: the embedded one is one process's file.
    let dir = &dir.join(compose.file_stem().unwrap_or_default());
    let app = App::load(&[compose.to_path_buf()]).expect("compose");
    let wasm: Vec<_> = app
        .services
        .iter()
        .map(|spec| {
            components::resolve(spec, &dir.join("images"))
                .expect("component")
                .wasm
        })
        .collect();
    let kv = tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(app.connect_kv(&dir.join("data")))
        .expect("kv");
    Stack::start(app.stack_config(
        wasm,
        kv,
        Allocator::Auto,
        porto_host::DEFAULT_INSTANCE_POOL,
        &dir.join("cache"),
    ))
    .expect("stack")
}

fn get(path: &str) -> hyper::Request<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    hyper::Request::builder()
        .uri(format!("http://bench{path}"))
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .expect("request")
}

fn benchmarks(c: &mut Criterion) {
    // Measured as the porto binary runs.
    // SAFETY: before the benchmarks start any thread.
    unsafe { porto_host::library_backtraces_off_unless_asked() };
    let dir = tempfile::tempdir().expect("tempdir");
    // Single-threaded, like each of porto's worker threads: an in-process
    // call's tasks then run beside the request, not on another thread.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    let hello = dir.path().join("hello.yaml");
    std::fs::write(
        &hello,
        format!(
            "services:\n  hello:\n    platform: wasi/wasm\n    x-porto: {{component: '{}'}}\n",
            hello_wasm().display()
        ),
    )
    .expect("write");
    let hello = stack(&hello, dir.path());
    c.bench_function("fresh_instance/hello", |b| {
        b.to_async(&tokio).iter(|| async {
            let response = hello.handle("hello", get("/")).await.expect("hello");
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.expect("body");
        })
    });

    let shop = stack(&repo().join("compose.yaml"), dir.path());
    c.bench_function("in_process_call/gateway_to_user_service", |b| {
        b.to_async(&tokio).iter(|| async {
            let response = shop
                .handle("api-gateway", get("/api/users/1"))
                .await
                .expect("gateway");
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.expect("body");
        })
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
