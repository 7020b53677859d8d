//! What runs inside the container: the component served as a `wasi:http`
//! server by porto's host, in the container's network namespace, until
//! SIGTERM; then in-flight requests drain and the task exits 0.

use std::time::Instant;

use anyhow::Context as _;
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use porto_host::telemetry::{self, LogFormat};
use porto_host::{Stack, StackConfig};
use tokio::net::TcpListener;

use crate::settings::Settings;

#[derive(Default)]
pub struct PortoSandbox;

impl Sandbox for PortoSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        let entrypoint = ctx.entrypoint();
        let settings = Settings::from_env(ctx.envs(), entrypoint.name.as_deref())?;
        // Log lines (guest output among them) go to the container's log.
        let _telemetry = telemetry::init(&settings.log, LogFormat::Text);
        for name in &settings.unknown {
            tracing::warn!(
                "{name} is not a porto setting and is ignored (the settings: {})",
                porto_host::container_env::ALL.join(", ")
            );
        }
        let wasm = entrypoint
            .source
            .as_bytes()
            .context("reading the component")?
            .into_owned();
        match serve(settings, wasm).await {
            Ok(()) => Ok(0),
            Err(error) => {
                // In the container's log, where a person looks first; and
                // exit 1, where runwasi would say 137 (as if killed).
                eprintln!("porto: error: {error:#}");
                Ok(1)
            }
        }
    }
}

async fn serve(settings: Settings, wasm: Vec<u8>) -> anyhow::Result<()> {
    let started = Instant::now();
    porto_host::raise_open_file_limit();
    let kv = porto_kv::connect(&settings.kv, &settings.data_dir, settings.kv_pool_size)
        .await
        .context("key-value store")?;
    let name = settings.service.name.clone();
    let scheme = if settings.service.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let cache_dir = settings.cache_dir();
    let stack = Stack::start(StackConfig {
        services: vec![(settings.service, wasm)],
        kv,
        allocator: settings.allocator,
        instance_pool: porto_host::DEFAULT_INSTANCE_POOL,
        cache_dir,
    })?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    // Before the ready line: a SIGTERM sent on seeing it must drain, not kill.
    let stop = porto_host::shutdown_on_signal();
    let service = &stack.started()[0];
    println!(
        "porto: {name} on {scheme}://{}  wasm sha256:{}  key-value store: {}  ready in {} ms",
        settings.listen,
        &service.digest[..16],
        settings.kv.describe(&settings.data_dir),
        started.elapsed().as_millis()
    );
    stack
        .serve_until_stopped(
            vec![(name.clone(), listener)],
            stop,
            settings.drain,
            |line| println!("{line}"),
        )
        .await?;
    Ok(())
}
