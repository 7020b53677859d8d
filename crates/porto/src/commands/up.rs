//! `porto up`: build, load and serve the whole application.
//!
//! Order matters: the Compose file is validated, every component built and
//! compiled, every listener bound, and only then does porto say it is
//! ready. Any failure before that exits non-zero with nothing half-started.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use porto_host::{Allocator, CacheOutcome, Stack};
use porto_oci::{Reference, Registry};
use tokio::net::TcpListener;

use crate::admin::{self, StackInfo};
use crate::app::{App, ComponentSource};
use crate::components::ComponentBytes;
use crate::progress::Bar;
use crate::watch::{self, WatchSetup};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub compose: super::ComposeFiles,

    /// Run only these services and those they depend on (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Directory of the embedded key-value store (created if missing).
    #[arg(long, default_value = ".porto/data")]
    pub data: PathBuf,

    /// Key-value backend, overriding `x-porto.kv`: `embedded`,
    /// `redis://host:6379[/?namespace=NAME]` or
    /// `postgres://user@host/db[?namespace=NAME]`.
    #[arg(long, value_name = "URL", env = "PORTO_KV")]
    pub kv: Option<String>,

    /// Connections kept to a Redis/PostgreSQL backend, overriding
    /// `x-porto.kv_pool_size` (default 16; at least 1).
    #[arg(long, value_name = "N")]
    pub kv_pool_size: Option<NonZeroUsize>,

    /// porto's local image store, where `image:` references are looked up
    /// (`porto image build` writes there).
    #[arg(long, default_value = ".porto/images")]
    pub images: PathBuf,

    /// Pull `image:` references missing from the local store over plain
    /// HTTP (a registry on loopback); without it, pulls use HTTPS.
    #[arg(long)]
    pub registry_insecure: bool,

    /// Directory for compiled components, reused across runs.
    #[arg(long, default_value = ".porto/cache")]
    pub cache_dir: PathBuf,

    /// Address published ports bind to when the Compose file names none.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Bind every published port to a free port instead (for tests and
    /// parallel stacks); the chosen URLs are printed at start-up.
    #[arg(long)]
    pub ephemeral_ports: bool,

    /// How long in-flight requests may take to finish after Ctrl-C/SIGTERM.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub drain_timeout: u64,

    /// Admin listener: `GET /metrics` (Prometheus), `GET /status` (JSON,
    /// what `porto ps` shows) and `GET /` (a live page). With
    /// --ephemeral-ports it takes a free port on the same address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,

    /// Instance allocation: `auto` uses wasmtime's pooling allocator
    /// (instances in microseconds) unless the address space cannot hold
    /// its reservation or porto runs under qemu-user, then `on-demand`.
    #[arg(long, value_enum, env = "PORTO_ALLOCATOR", default_value = "auto")]
    pub allocator: Allocator,

    /// Component instances the pooling allocator holds at once, across all
    /// services: one per request inside a guest (two through the gateway).
    /// A request that finds the pool full is answered 503 `overloaded`.
    /// Each slot reserves address space for the largest memory limit, so
    /// lower it where address space is scarce.
    #[arg(long, env = "PORTO_INSTANCE_POOL", value_name = "N", default_value_t = porto_host::DEFAULT_INSTANCE_POOL)]
    pub instance_pool: NonZeroU32,

    /// Do not open the admin listener.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,

    /// Rebuild a service when its sources (or a crate it uses) change, and
    /// swap the new component in: in-flight requests finish on the old one,
    /// other services are untouched, a failed build keeps the old one.
    #[arg(long)]
    pub watch: bool,
}

/// Pulls every `image:` the local store does not have yet.
async fn pull_missing_images(app: &App, args: &UpArgs) -> anyhow::Result<()> {
    for spec in &app.services {
        let ComponentSource::Image(text) = &spec.source else {
            continue;
        };
        let name = spec.name();
        let reference = Reference::parse(text).with_context(|| format!("{name}: image"))?;
        if porto_oci::contains(&args.images, &reference) {
            continue;
        }
        let insecure = if args.registry_insecure {
            vec![Registry::host_of(&reference)]
        } else {
            Vec::new()
        };
        eprintln!("porto: pulling {} for {name}", reference.full());
        let image = Registry::new(insecure)
            .pull(&reference, &Bar::default())
            .await
            .with_context(|| {
                format!(
                    "{name}: image {text} is not in {} and could not be pulled",
                    args.images.display()
                )
            })?;
        porto_oci::store(&args.images, &reference, &image)?;
    }
    Ok(())
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let app = load_app(&args)?;
    porto_host::raise_open_file_limit();
    let kv = app.connect_kv(&args.data).await?;
    pull_missing_images(&app, &args).await?;
    let sources = app
        .services
        .iter()
        .map(|spec| super::component(spec, &args.images))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let started = Instant::now();
    let wasm = sources.iter().map(|source| source.wasm.clone());
    let stack = Stack::start(app.stack_config(
        wasm,
        kv,
        args.allocator,
        args.instance_pool,
        &args.cache_dir,
    ))?;
    let listeners = bind_published_ports(&app, &args).await?;
    let admin = bind_admin(&args).await?;

    let kv_description = app.kv.describe(&args.data);
    let published = print_services(&app, &stack, &listeners, &kv_description);
    // Before the ready line: a SIGTERM sent on seeing it must drain, not kill.
    let stop = porto_host::shutdown_on_signal();
    let mut tasks = Vec::new();
    if args.watch
        && let Some(watching) = start_watching(&app, &sources, &stack)
    {
        tasks.push(tokio::spawn(watching.run(stop.clone())));
    }
    if let Some(listener) = admin {
        let addr = listener.local_addr()?;
        println!("  {:<16} http://{addr}  /metrics /status /", "admin");
        let info = Arc::new(StackInfo {
            started,
            kv: kv_description,
            urls: published,
        });
        tasks.push(tokio::spawn(admin::serve(
            listener,
            stack.clone(),
            info,
            stop.clone(),
        )));
    }
    println!(
        "porto: ready in {} ms; Ctrl-C to stop",
        started.elapsed().as_millis()
    );
    stack
        .serve_until_stopped(
            listeners,
            stop,
            Duration::from_secs(args.drain_timeout),
            |line| println!("{line}"),
        )
        .await?;
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// The Compose file's wasi/wasm services, narrowed to those asked for, on
/// the key-value backend the flags choose.
fn load_app(args: &UpArgs) -> anyhow::Result<App> {
    let mut app = args.compose.load()?;
    app.select(&args.services)?;
    app.override_kv(args.kv.as_deref(), args.kv_pool_size)?;
    if app.services.is_empty() {
        bail!(
            "{} has no service with `platform: wasi/wasm`; nothing for porto to run",
            args.compose
        );
    }
    Ok(app)
}

/// A listener for every published port, each service's under its name;
/// free ports instead with `--ephemeral-ports`.
async fn bind_published_ports(
    app: &App,
    args: &UpArgs,
) -> anyhow::Result<Vec<(String, TcpListener)>> {
    let mut listeners = Vec::new();
    for spec in &app.services {
        for port in &spec.ports {
            let ip = port.host_ip.unwrap_or(args.host);
            let port_number = if args.ephemeral_ports {
                0
            } else {
                port.host_port
            };
            let addr = SocketAddr::new(ip, port_number);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("{}: cannot listen on {addr}", spec.name()))?;
            listeners.push((spec.name().to_string(), listener));
        }
    }
    Ok(listeners)
}

async fn bind_admin(args: &UpArgs) -> anyhow::Result<Option<TcpListener>> {
    if args.no_admin {
        return Ok(None);
    }
    let addr = if args.ephemeral_ports {
        SocketAddr::new(args.admin.ip(), 0)
    } else {
        args.admin
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("admin: cannot listen on {addr} (--admin ADDR or --no-admin)"))?;
    Ok(Some(listener))
}

/// The start-up lines: the stack, then one per service (its URLs, digest
/// and whether it came from the compile cache) and one per service porto
/// does not run. Returns each service's URLs, for `/status`.
fn print_services(
    app: &App,
    stack: &Stack,
    listeners: &[(String, TcpListener)],
    kv_description: &str,
) -> BTreeMap<String, Vec<String>> {
    println!(
        "porto: {} services on {}, {} allocator, key-value store: {}",
        app.services.len(),
        std::env::consts::ARCH,
        if stack.pooling() {
            "pooling"
        } else {
            "on-demand"
        },
        kv_description
    );
    let mut published = BTreeMap::new();
    for (spec, service) in app.services.iter().zip(stack.started()) {
        let scheme = if spec.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let urls: Vec<String> = listeners
            .iter()
            .filter(|(name, _)| name == spec.name())
            .filter_map(|(_, l)| l.local_addr().ok())
            .map(|a| format!("{scheme}://{a}"))
            .collect();
        let reach = if urls.is_empty() {
            format!("internal only (http://{})", spec.name())
        } else {
            urls.join(" ")
        };
        println!(
            "  {:<16} {}  wasm sha256:{}  {}",
            spec.name(),
            reach,
            &service.digest[..16],
            if service.cache == CacheOutcome::Hit {
                "compile cache hit"
            } else {
                "compiled"
            }
        );
        published.insert(spec.name().to_string(), urls);
    }
    for spec in &app.services {
        if !spec.container_only.is_empty() {
            println!(
                "  {:<16} {} configure its container (porto's shim), not porto",
                spec.name(),
                spec.container_only.join(", ")
            );
        }
    }
    for other in &app.others {
        let profile = if other.profiles.is_empty() {
            String::new()
        } else {
            format!(", profile {}", other.profiles.join("/"))
        };
        println!(
            "  {:<16} not run by porto (not a wasi/wasm service{profile})",
            other.name
        );
    }
    published
}

/// `--watch`: rebuilds and swaps in each service whose sources change.
/// A watcher that cannot start is reported and serving goes on without it.
fn start_watching(app: &App, sources: &[ComponentBytes], stack: &Stack) -> Option<watch::Watching> {
    let setup = WatchSetup {
        stack: stack.clone(),
        services: app
            .services
            .iter()
            .zip(sources)
            .map(|(spec, source)| {
                (
                    spec.name().to_string(),
                    spec.source.clone(),
                    source.path.clone(),
                )
            })
            .collect(),
        report: Box::new(|event| println!("{event}")),
    };
    watch::start(setup).unwrap_or_else(|error| {
        eprintln!("porto: {error:#}");
        None
    })
}
