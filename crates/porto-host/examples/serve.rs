//! Serves one component with porto's host, the smallest embedding:
//!
//! ```sh
//! cargo run -p porto-host --example serve -- path/to/component.wasm 127.0.0.1:8080
//! curl 127.0.0.1:8080/
//! ```
//!
//! The service is named after the file, keeps its data in an embedded
//! store under `./data`, and stops on Ctrl-C after in-flight requests end.

use std::num::NonZeroUsize;
use std::time::Duration;

use porto_host::{Allocator, ServiceConfig, Stack, StackConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), address) = (args.next(), args.next()) else {
        return Err("usage: serve COMPONENT.wasm [ADDRESS]".into());
    };
    let address = address.unwrap_or_else(|| "127.0.0.1:8080".into());
    let name = std::path::Path::new(&path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("service")
        .replace('_', "-");
    let wasm = std::fs::read(&path)?;

    let kv = porto_kv::connect(
        &porto_kv::KvSpec::Embedded,
        "data".as_ref(),
        NonZeroUsize::MIN,
    )
    .await?;
    let stack = Stack::start(StackConfig {
        services: vec![(ServiceConfig::new(name.clone()), wasm)],
        kv,
        allocator: Allocator::Auto,
        instance_pool: porto_host::DEFAULT_INSTANCE_POOL,
        cache_dir: std::env::temp_dir().join("porto-example-cache"),
    })?;

    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("{name} on http://{}", listener.local_addr()?);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let serving = stack.serve(vec![(name, listener)], shutdown, Duration::from_secs(10))?;
    tokio::signal::ctrl_c().await?;
    let _ = stop.send(true);
    serving.stopped().await;
    Ok(())
}
