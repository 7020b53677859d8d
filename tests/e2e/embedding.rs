//! porto-host as a library, without the porto command: what a second
//! front end (the containerd shim) builds on. A fixture component is
//! started with `Stack::start`, served on a listener of the test's own and
//! called over TCP.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use porto_host::{
    Allocator, HostError, Limits, Reload, ServiceConfig, Serving, Stack, StackConfig,
};
use tokio::sync::watch;

use crate::harness::{cache_dir, fixtures, raw_exchange};

fn hello_stack(config: ServiceConfig, data: &std::path::Path) -> Stack {
    let wasm = std::fs::read(&fixtures()["hello"]).expect("hello fixture");
    let kv = tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(porto_kv::connect(
            &porto_kv::KvSpec::Embedded,
            data,
            NonZeroUsize::MIN,
        ))
        .expect("embedded store");
    Stack::start(StackConfig {
        services: vec![(config, wasm)],
        kv,
        allocator: Allocator::Auto,
        instance_pool: porto_host::DEFAULT_INSTANCE_POOL,
        cache_dir: cache_dir(),
    })
    .expect("stack starts")
}

/// Serves `stack`'s hello service on a loopback port of its own: the
/// address, the switch that stops it, and the serving handle.
fn serve_hello(
    stack: &Stack,
    tokio: &tokio::runtime::Runtime,
) -> (SocketAddr, watch::Sender<bool>, Serving) {
    let (stop, shutdown) = watch::channel(false);
    tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let serving = stack
            .serve(
                vec![("hello".into(), listener)],
                shutdown,
                Duration::from_secs(5),
            )
            .expect("serve");
        (address, stop, serving)
    })
}

/// Flips `stop` and waits (up to 10 s) for `serving` to drain.
fn stop_and_drain(tokio: &tokio::runtime::Runtime, stop: &watch::Sender<bool>, serving: Serving) {
    stop.send(true).expect("stop");
    tokio.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), serving.stopped())
            .await
            .expect("drained in time");
    });
}

#[test]
fn a_stack_serves_its_listeners_and_drains_on_shutdown() {
    let data = tempfile::tempdir().expect("tempdir");
    let stack = hello_stack(ServiceConfig::new("hello"), data.path());
    assert_eq!(stack.started()[0].name, "hello");
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let (address, stop, serving) = serve_hello(&stack, &tokio);

    let response = raw_exchange(
        &address.to_string(),
        "GET / HTTP/1.1\r\nhost: hello\r\nx-request-id: embed-1\r\nconnection: close\r\n\r\n"
            .as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Hello, world!"), "{response}");
    assert_eq!(stack.status()[0].stats.served, 1);
    assert!(
        stack
            .metrics()
            .contains("porto_requests_total{service=\"hello\"")
    );

    stop_and_drain(&tokio, &stop, serving);
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the listener is closed after shutdown"
    );
}

#[test]
fn a_stack_applies_its_service_configs_limits_and_names() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = ServiceConfig {
        limits: Limits {
            max_body_bytes: 8,
            ..Limits::default()
        },
        ..ServiceConfig::new("hello")
    };
    let stack = hello_stack(config, data.path());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let post = |body: &'static str| {
        hyper::Request::post("http://hello/")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .expect("request")
    };
    tokio.block_on(async {
        let small = stack.handle("hello", post("tiny")).await.expect("hello");
        assert_eq!(small.status(), 200);
        let big = stack
            .handle("hello", post("far more than eight bytes"))
            .await
            .expect("hello");
        assert_eq!(big.status(), 413);
        let body = big.into_body().collect().await.expect("body").to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(error["error"]["code"], "payload_too_large");
        assert!(matches!(
            stack.handle("nobody", post("x")).await,
            Err(HostError::UnknownService(name)) if name == "nobody"
        ));
    });
    let wasm = std::fs::read(&fixtures()["hello"]).expect("hello fixture");
    assert_eq!(
        stack.reload("hello", &wasm).expect("reload"),
        Reload::Unchanged
    );
}

/// A reload may change a service's world: WASI 0.2 to 0.3 and on to
/// another WASI 0.3 component; new requests get the new one, and the
/// replaced WASI 0.3 instances retire (counted `reloaded`).
#[test]
fn a_reload_may_change_the_components_world() {
    let data = tempfile::tempdir().expect("tempdir");
    let stack = hello_stack(ServiceConfig::new("hello"), data.path());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let get = |stack: &Stack| {
        let request = hyper::Request::get("http://hello/")
            .body(Full::new(Bytes::new()))
            .expect("request");
        tokio.block_on(async {
            let response = stack.handle("hello", request).await.expect("hello");
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).to_string())
        })
    };
    let (status, wasip2) = get(&stack);
    assert_eq!(status, 200, "{wasip2}");
    let probe = std::fs::read(&fixtures()["probe_p3"]).expect("probe fixture");
    assert!(matches!(
        stack.reload("hello", &probe),
        Ok(Reload::Swapped { .. })
    ));
    let (status, body) = get(&stack);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"most_at_once\""), "{body}");
    let hello_p3 = std::fs::read(&fixtures()["hello_p3"]).expect("hello_p3 fixture");
    assert!(matches!(
        stack.reload("hello", &hello_p3),
        Ok(Reload::Swapped { .. })
    ));
    assert_eq!(get(&stack), (200, "Hello, WASI 0.3!\n".to_string()));
    let retired = "porto_instances_retired_total{service=\"hello\",reason=\"reloaded\"} 1";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !stack.metrics().contains(retired) {
        assert!(std::time::Instant::now() < deadline, "{}", stack.metrics());
        tokio.block_on(tokio::time::sleep(Duration::from_millis(20)));
    }
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// Threads of this process, from /proc.
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .count()
    }

    /// Resident memory of this process, from /proc.
    fn resident_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// A program that embeds porto-host and starts, serves and drops
    /// stacks keeps nothing of theirs: each stack's background work (the
    /// workers, the memory trimmer, the epoch ticker) ends with it, and so
    /// does its store, which the next stack opens again (a stack whose
    /// runtime outlived it fails there: the file is still open). Every
    /// other stack reuses instances, so a kept instance (whose outbound
    /// hooks point back at the stack) is among what must go. Counts
    /// threads and memory, so it runs alone: other tests' would be counted.
    #[test]
    fn a_dropped_stack_leaves_no_thread_behind() {
        let data = tempfile::tempdir().expect("tempdir");
        let tokio = tokio::runtime::Runtime::new().expect("tokio");
        let reusing = ServiceConfig {
            reuse: porto_host::Reuse::from_keys(std::num::NonZeroU32::new(64), None, None, None),
            ..ServiceConfig::new("hello")
        };
        let serve_once = |config: &ServiceConfig| {
            let stack = hello_stack(config.clone(), data.path());
            let (address, stop, serving) = serve_hello(&stack, &tokio);
            // Three requests on one connection (one worker), so the second
            // and third find the instance the first left, where reuse is on.
            let get = "GET / HTTP/1.1\r\nhost: hello\r\n\r\n";
            let last = "GET / HTTP/1.1\r\nhost: hello\r\nconnection: close\r\n\r\n";
            let response =
                raw_exchange(&address.to_string(), format!("{get}{get}{last}").as_bytes());
            assert_eq!(response.matches("HTTP/1.1 200").count(), 3, "{response}");
            let reuses: f64 = stack
                .metrics()
                .lines()
                .filter(|line| line.starts_with("porto_instance_reuses_total{"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            let expected = if config.reuse.enabled() { 2.0 } else { 0.0 };
            assert_eq!(reuses, expected, "{}", stack.metrics());
            stop_and_drain(&tokio, &stop, serving);
            drop(stack);
        };
        serve_once(&ServiceConfig::new("hello"));
        serve_once(&reusing);
        // What the first stacks leave is the baseline (the tokio runtime
        // above, allocator and compiler threads and caches that live as
        // long as the process).
        let settle = |limit: usize| {
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while threads() > limit && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            threads()
        };
        let (threads_before, memory_before) = (settle(0), resident_bytes());
        for round in 0..20 {
            if round % 2 == 0 {
                serve_once(&reusing);
            } else {
                serve_once(&ServiceConfig::new("hello"));
            }
        }
        let (threads_after, memory_after) = (settle(threads_before), resident_bytes());
        assert!(
            threads_after <= threads_before,
            "{threads_after} threads after 20 more stacks, {threads_before} after the first two"
        );
        // A stack left behind keeps its engine, pool and kept instances:
        // several MiB each, so 20 of them would pass this.
        let grown = memory_after.saturating_sub(memory_before);
        assert!(
            grown < 48 * 1024 * 1024,
            "resident memory grew {} MiB over 20 stacks ({} -> {} MiB)",
            grown >> 20,
            memory_before >> 20,
            memory_after >> 20
        );
    }
}
