//! The application porto runs: the Compose file, validated once.
//!
//! Everything that can be wrong with the file is found here, before any
//! component is built or any socket bound: unknown dependencies, cycles,
//! bad ports, a service with no component source. What comes out is in
//! start-up order (dependencies first), each service as the plain
//! [`ServiceConfig`] the host runs plus what only porto's CLI uses: where
//! its component comes from and which ports it publishes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use porto_host::container_env::{self, ServiceVars};
use porto_host::{Allocator, Limits, Reuse, ServiceConfig, StackConfig, TlsFiles};
use porto_kv::{KvBackend, KvSpec};

use crate::compose::{self, Build, ComposeFile, Port, PublishedPort};

pub const WASM_PLATFORM: &str = "wasi/wasm";

#[derive(Debug)]
pub struct App {
    /// The Compose project name: the file's `name`, else its directory's.
    pub project: String,
    /// Directory of the Compose file; relative paths resolve against it.
    pub dir: PathBuf,
    /// Wasm services, dependencies first.
    pub services: Vec<ServiceSpec>,
    /// Services porto leaves to other tools (databases, caches).
    pub others: Vec<OtherService>,
    /// `x-porto.kv`, unless a flag overrides it ([`App::override_kv`]).
    pub kv: KvSpec,
    /// Connections to a Redis/PostgreSQL backend (`x-porto.kv_pool_size`).
    pub kv_pool_size: NonZeroUsize,
}

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub source: ComponentSource,
    pub ports: Vec<PublishedPortSpec>,
    /// Ports inside the service's container (`ports` targets and
    /// `expose`), what other services call it on outside porto.
    pub container_ports: Vec<u16>,
    pub depends_on: Vec<String>,
    /// `x-porto.buckets` is given: the service keeps data in the store.
    pub keeps_state: bool,
    pub deploy: compose::Deploy,
    /// `PORTO_*` variables of its `environment` only a container's host
    /// reads (`PORTO_LISTEN`, `PORTO_KV`…), which porto passes over.
    pub container_only: Vec<String>,
    /// Everything the host needs: environment, allow-lists (`depends_on`
    /// plus `x-porto.allow_services` / `allow_hosts`), buckets, limits.
    pub config: ServiceConfig,
}

impl ServiceSpec {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A cargo package to build for `wasm32-wasip2`.
    Cargo { dir: PathBuf },
    /// A ready `.wasm` file.
    File(PathBuf),
    /// An OCI image reference.
    Image(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedPortSpec {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

#[derive(Debug, Clone)]
pub struct OtherService {
    pub name: String,
    pub profiles: Vec<String>,
}

impl App {
    /// Loads one Compose file, or several laid over each other; relative
    /// paths in any of them resolve against the first one's directory, as
    /// Docker Compose resolves them.
    pub fn load(compose_paths: &[PathBuf]) -> anyhow::Result<Self> {
        let first = compose_paths.first().context("no Compose file given")?;
        let file = compose::load_all(compose_paths)?;
        // Absolute, so builds and paths do not depend on porto's cwd.
        let dir = std::path::absolute(first)
            .with_context(|| format!("resolving {}", first.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::from_compose(file, &dir).with_context(|| format!("in {}", first.display()))
    }

    pub fn from_compose(file: ComposeFile, dir: &Path) -> anyhow::Result<Self> {
        let project = match &file.name {
            Some(name) => name.clone(),
            None => project_name_of(dir),
        };
        let kv = file
            .porto
            .kv
            .as_deref()
            .unwrap_or_default()
            .parse()
            .context("x-porto.kv")?;
        let kv_pool_size = file
            .porto
            .kv_pool_size
            .unwrap_or(porto_kv::DEFAULT_POOL_SIZE);
        let names: BTreeSet<String> = file.services.keys().cloned().collect();
        let mut services = BTreeMap::new();
        let mut dependencies = BTreeMap::new();
        let mut others = Vec::new();
        for (name, raw) in file.services {
            let depends_on = raw.depends_on.names();
            for dep in &depends_on {
                if !names.contains(dep) {
                    bail!("service {name:?} depends on {dep:?}, which is not defined");
                }
            }
            if raw.platform.as_deref() != Some(WASM_PLATFORM) {
                others.push(OtherService {
                    name,
                    profiles: raw.profiles,
                });
                continue;
            }
            let spec = service_spec(&name, raw, &depends_on, dir)
                .with_context(|| format!("service {name:?}"))?;
            dependencies.insert(name.clone(), depends_on);
            services.insert(name, spec);
        }
        let order = start_order(&dependencies)?;
        let services = order
            .into_iter()
            .filter_map(|name| services.remove(&name))
            .collect();
        Ok(Self {
            project,
            dir: dir.to_path_buf(),
            services,
            others,
            kv,
            kv_pool_size,
        })
    }

    /// Keeps only the services named and those they depend on, in start
    /// order, as `docker compose up NAME…` does; no names keeps them all.
    pub fn select(&mut self, names: &[String]) -> anyhow::Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let mut wanted = BTreeSet::new();
        let mut pending: Vec<&str> = Vec::new();
        for name in names {
            if self.service(name).is_none() {
                let known: Vec<&str> = self.services.iter().map(ServiceSpec::name).collect();
                bail!(
                    "no wasi/wasm service {name:?} in the Compose file (it has: {})",
                    known.join(", ")
                );
            }
            pending.push(name);
        }
        while let Some(name) = pending.pop() {
            if wanted.insert(name.to_string())
                && let Some(spec) = self.service(name)
            {
                pending.extend(spec.depends_on.iter().map(String::as_str));
            }
        }
        self.services.retain(|s| wanted.contains(s.name()));
        Ok(())
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// Opens the key-value backend the application names; the embedded
    /// store lives in `data_dir`.
    pub async fn connect_kv(&self, data_dir: &Path) -> anyhow::Result<Arc<dyn KvBackend>> {
        porto_kv::connect(&self.kv, data_dir, self.kv_pool_size)
            .await
            .context("key-value store")
    }

    /// What the host needs to start this application: every service's
    /// configuration with its component (the `i`th of `components` is
    /// service `i`'s `.wasm`).
    pub fn stack_config(
        &self,
        components: impl IntoIterator<Item = Vec<u8>>,
        kv: Arc<dyn KvBackend>,
        allocator: Allocator,
        instance_pool: NonZeroU32,
        cache_dir: &Path,
    ) -> StackConfig {
        StackConfig {
            services: self
                .services
                .iter()
                .zip(components)
                .map(|(spec, wasm)| (spec.config.clone(), wasm))
                .collect(),
            kv,
            allocator,
            instance_pool,
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    /// Lays the command line's `--kv` and `--kv-pool-size` over the file's.
    pub fn override_kv(
        &mut self,
        kv: Option<&str>,
        pool_size: Option<NonZeroUsize>,
    ) -> anyhow::Result<()> {
        if let Some(kv) = kv {
            self.kv = kv.parse().context("--kv")?;
        }
        if let Some(size) = pool_size {
            self.kv_pool_size = size;
        }
        Ok(())
    }
}

fn service_spec(
    name: &str,
    raw: compose::Service,
    depends_on: &[String],
    dir: &Path,
) -> anyhow::Result<ServiceSpec> {
    let ext = raw.porto;
    let source = if let Some(path) = ext.component.clone() {
        ComponentSource::File(dir.join(path))
    } else if let Some(build) = raw.build {
        let context = match build {
            Build::Context(c) => c,
            Build::Detailed { context } => context.unwrap_or_else(|| ".".into()),
        };
        ComponentSource::Cargo {
            dir: dir.join(context),
        }
    } else if let Some(image) = raw.image {
        if image.ends_with(".wasm") {
            ComponentSource::File(dir.join(image))
        } else {
            ComponentSource::Image(image)
        }
    } else {
        bail!(
            "needs `build`, `image` or `x-porto.component` to say where its component comes from"
        );
    };
    let mut env = Vec::new();
    let mut porto_vars = BTreeMap::new();
    for (key, value) in raw.environment.into_pairs() {
        // As in Compose, a bare name passes porto's own value through, or nothing.
        let Some(value) = value.or_else(|| std::env::var(&key).ok()) else {
            continue;
        };
        // The shim's settings: porto's too, and never the guest's.
        if key.starts_with(container_env::PREFIX) {
            porto_vars.insert(key, value);
        } else {
            env.push((key, value));
        }
    }
    // x-porto's own entries; the variables' were checked when read.
    for bucket in ext.buckets.iter().flatten() {
        porto_host::check_bucket(bucket)
            .map_err(|why| anyhow::anyhow!("x-porto.buckets: {bucket:?}: {why}"))?;
    }
    for entry in &ext.allow_hosts {
        porto_host::check_allow_host(entry)
            .map_err(|why| anyhow::anyhow!("x-porto.allow_hosts: {entry:?}: {why}"))?;
    }
    let (vars, container_only) = porto_settings(&porto_vars)?;
    let ext = with_vars(ext, vars)?;
    let ports = raw
        .ports
        .iter()
        .map(parse_port)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut container_ports = raw
        .ports
        .iter()
        .map(container_port)
        .chain(raw.expose.iter().map(exposed_port))
        .collect::<anyhow::Result<Vec<_>>>()?;
    container_ports.sort_unstable();
    container_ports.dedup();
    let keeps_state = ext.buckets.as_ref().is_some_and(|b| !b.is_empty());
    let mut allowed_services: BTreeSet<String> = depends_on.iter().cloned().collect();
    allowed_services.extend(ext.allow_services);
    let buckets = ext
        .buckets
        .unwrap_or_else(|| vec![name.to_string()])
        .into_iter()
        .collect();
    let limits = Limits::from_keys(
        ext.request_timeout_ms,
        ext.max_memory_mib,
        ext.max_concurrency,
        ext.max_body_bytes,
    );
    let reuse = Reuse::from_keys(
        ext.max_instance_reuse,
        ext.max_instance_concurrency,
        ext.reuse_idle_timeout_ms,
        ext.reuse_max_memory_mib,
    );
    Ok(ServiceSpec {
        source,
        ports: ports.into_iter().flatten().collect(),
        container_ports,
        depends_on: depends_on.to_vec(),
        keeps_state,
        deploy: raw.deploy,
        container_only,
        config: ServiceConfig {
            name: name.to_string(),
            env,
            allowed_services,
            allowed_hosts: ext.allow_hosts,
            buckets,
            limits,
            reuse,
            tls: ext.tls.map(|tls| TlsFiles {
                cert: dir.join(tls.cert),
                key: dir.join(tls.key),
            }),
        },
    })
}

/// A service's `PORTO_*` variables: its settings, and the names of those
/// only a container's host reads. A name porto's shim does not know is an
/// error, as a misspelt `x-porto` key is.
fn porto_settings(vars: &BTreeMap<String, String>) -> anyhow::Result<(ServiceVars, Vec<String>)> {
    for name in vars.keys() {
        if !container_env::ALL.contains(&name.as_str()) {
            bail!(
                "environment: {name} is no porto setting (porto and its containerd shim read {})",
                container_env::ALL.join(", ")
            );
        }
    }
    let settings = ServiceVars::read(|name| vars.get(name).map(String::as_str))
        .map_err(|e| anyhow::anyhow!("environment: {e}"))?;
    let container_only = vars
        .keys()
        .filter(|name| container_env::CONTAINER_ONLY.contains(&name.as_str()))
        .cloned()
        .collect();
    Ok((settings, container_only))
}

/// `ext` with the settings `vars` give; one given both ways is an error
/// (which would win is nothing a reader of the file should have to know).
fn with_vars(
    mut ext: compose::ServiceExtension,
    vars: ServiceVars,
) -> anyhow::Result<compose::ServiceExtension> {
    fn once<T>(
        key: &str,
        variable: &str,
        ext: &mut Option<T>,
        var: Option<T>,
    ) -> anyhow::Result<()> {
        match (ext.is_some(), var) {
            (true, Some(_)) => bail!(
                "x-porto.{key} and environment {variable} both set it: keep {variable}, which porto's containerd shim reads too"
            ),
            (false, Some(value)) => *ext = Some(value),
            (_, None) => {}
        }
        Ok(())
    }
    use container_env as var;
    once("buckets", var::BUCKETS, &mut ext.buckets, vars.buckets)?;
    // An empty `allow_hosts` list is x-porto's "unset".
    let mut hosts = (!ext.allow_hosts.is_empty()).then(|| std::mem::take(&mut ext.allow_hosts));
    once(
        "allow_hosts",
        var::ALLOW_HOSTS,
        &mut hosts,
        vars.allow_hosts,
    )?;
    ext.allow_hosts = hosts.unwrap_or_default();
    once(
        "request_timeout_ms",
        var::REQUEST_TIMEOUT_MS,
        &mut ext.request_timeout_ms,
        vars.request_timeout_ms,
    )?;
    once(
        "max_memory_mib",
        var::MAX_MEMORY_MIB,
        &mut ext.max_memory_mib,
        vars.max_memory_mib,
    )?;
    once(
        "max_concurrency",
        var::MAX_CONCURRENCY,
        &mut ext.max_concurrency,
        vars.max_concurrency,
    )?;
    once(
        "max_body_bytes",
        var::MAX_BODY_BYTES,
        &mut ext.max_body_bytes,
        vars.max_body_bytes,
    )?;
    once(
        "max_instance_reuse",
        var::MAX_INSTANCE_REUSE,
        &mut ext.max_instance_reuse,
        vars.max_instance_reuse,
    )?;
    once(
        "max_instance_concurrency",
        var::MAX_INSTANCE_CONCURRENCY,
        &mut ext.max_instance_concurrency,
        vars.max_instance_concurrency,
    )?;
    once(
        "reuse_idle_timeout_ms",
        var::REUSE_IDLE_TIMEOUT_MS,
        &mut ext.reuse_idle_timeout_ms,
        vars.reuse_idle_timeout_ms,
    )?;
    once(
        "reuse_max_memory_mib",
        var::REUSE_MAX_MEMORY_MIB,
        &mut ext.reuse_max_memory_mib,
        vars.reuse_max_memory_mib,
    )?;
    Ok(ext)
}

/// Host ports every service of `file` publishes, porto's or not; entries
/// porto cannot read are left out (`porto up` refuses them itself).
pub fn published_ports(file: &ComposeFile) -> BTreeSet<u16> {
    file.services
        .values()
        .flat_map(|service| &service.ports)
        .filter_map(|port| parse_port(port).ok().flatten())
        .map(|published| published.host_port)
        .collect()
}

/// The host side of a port mapping; `None` when nothing is published
/// (`"80"`: a container port only).
fn parse_port(port: &Port) -> anyhow::Result<Option<PublishedPortSpec>> {
    let host_port = |text: &str| -> anyhow::Result<u16> {
        let text = text.split('/').next().unwrap_or_default();
        text.parse::<u16>()
            .with_context(|| format!("port {text:?} is not a number from 0 to 65535"))
    };
    let host_ip = |text: &str| -> anyhow::Result<IpAddr> {
        text.trim_matches(|c| c == '[' || c == ']')
            .parse()
            .with_context(|| format!("{text:?} is not an IP address"))
    };
    match port {
        Port::Number(_) => Ok(None),
        Port::Short(text) => {
            let text = text.split('/').next().unwrap_or_default();
            match text.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
                [_container] => Ok(None),
                [_container, published] => Ok(Some(PublishedPortSpec {
                    host_ip: None,
                    host_port: host_port(published)?,
                })),
                [_container, published, ip] => Ok(Some(PublishedPortSpec {
                    host_ip: Some(host_ip(ip)?),
                    host_port: host_port(published)?,
                })),
                _ => bail!("cannot read port {text:?}"),
            }
        }
        Port::Long {
            published,
            host_ip: ip,
            ..
        } => {
            let Some(published) = published else {
                return Ok(None);
            };
            let port = match published {
                PublishedPort::Number(n) => {
                    u16::try_from(*n).with_context(|| format!("port {n} is out of range"))?
                }
                PublishedPort::Text(t) => host_port(t)?,
            };
            Ok(Some(PublishedPortSpec {
                host_ip: ip.as_deref().map(host_ip).transpose()?,
                host_port: port,
            }))
        }
    }
}

/// The port inside the container a `ports` entry maps to.
fn container_port(port: &Port) -> anyhow::Result<u16> {
    let target = match port {
        Port::Number(n) | Port::Long { target: n, .. } => n.to_string(),
        Port::Short(text) => {
            let text = text.split('/').next().unwrap_or_default();
            text.rsplit(':').next().unwrap_or_default().to_string()
        }
    };
    target
        .parse()
        .with_context(|| format!("container port {target:?} is not a number from 0 to 65535"))
}

fn exposed_port(port: &PublishedPort) -> anyhow::Result<u16> {
    let text = match port {
        PublishedPort::Number(n) => n.to_string(),
        PublishedPort::Text(t) => t.split('/').next().unwrap_or_default().to_string(),
    };
    text.parse()
        .with_context(|| format!("expose {text:?} is not a port number"))
}

/// Compose's default project name: the directory's name, lower-cased, with
/// only letters, digits, `-` and `_` kept.
fn project_name_of(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if name.is_empty() {
        "default".to_string()
    } else {
        name
    }
}

/// Dependencies before dependants; a cycle is an error naming its members.
fn start_order(dependencies: &BTreeMap<String, Vec<String>>) -> anyhow::Result<Vec<String>> {
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while placed.len() < dependencies.len() {
        let ready: Vec<&String> = dependencies
            .iter()
            .filter(|(name, deps)| {
                !placed.contains(*name)
                    && deps
                        .iter()
                        .all(|d| placed.contains(d) || !dependencies.contains_key(d))
            })
            .map(|(name, _)| name)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = dependencies
                .keys()
                .filter(|n| !placed.contains(*n))
                .map(String::as_str)
                .collect();
            bail!("depends_on has a cycle among: {}", stuck.join(", "));
        }
        for name in ready {
            placed.insert(name.clone());
            order.push(name.clone());
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn app(yaml: &str) -> anyhow::Result<App> {
        App::from_compose(compose::parse(yaml)?, Path::new("/app"))
    }

    /// The shim's spelling in `environment` configures porto alike, and
    /// never reaches the guest.
    #[test]
    fn porto_variables_in_environment_are_settings_not_guest_environment() {
        let a = app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    environment:\n      PORTO_BUCKETS: users, audit\n      PORTO_MAX_INSTANCE_REUSE: '128'\n      PORTO_REQUEST_TIMEOUT_MS: 1500\n      PORTO_ALLOW_HOSTS: api.example.com\n      PORTO_LISTEN: 0.0.0.0:80\n      GREETING: hi\n").expect("valid");
        let spec = &a.services[0];
        assert_eq!(
            spec.config.env,
            vec![("GREETING".to_string(), "hi".to_string())]
        );
        assert_eq!(
            spec.config.buckets,
            BTreeSet::from(["audit".to_string(), "users".to_string()])
        );
        assert!(spec.keeps_state);
        assert_eq!(
            spec.config.reuse,
            Reuse::from_keys(NonZeroU32::new(128), None, None, None)
        );
        assert_eq!(
            spec.config.limits,
            Limits::from_keys(Some(1500), None, None, None)
        );
        assert_eq!(spec.config.allowed_hosts, vec!["api.example.com"]);
        assert_eq!(spec.container_only, vec!["PORTO_LISTEN"]);
    }

    #[test]
    fn a_porto_variable_that_is_no_setting_or_set_twice_is_an_error() {
        let service = |lines: &str| {
            format!("services:\n  a:\n    platform: wasi/wasm\n    build: a\n{lines}")
        };
        let err = app(&service(
            "    environment:\n      PORTO_MAX_INSTANCE_REUS: '128'\n",
        ))
        .expect_err("misspelt");
        assert!(
            format!("{err:#}").contains("PORTO_MAX_INSTANCE_REUS is no porto setting"),
            "{err:#}"
        );
        let err = app(&service(
            "    environment:\n      PORTO_MAX_CONCURRENCY: lots\n",
        ))
        .expect_err("bad value");
        assert!(
            format!("{err:#}").contains("PORTO_MAX_CONCURRENCY=\"lots\""),
            "{err:#}"
        );
        let err = app(&service(
            "    environment:\n      PORTO_BUCKETS: users\n    x-porto:\n      buckets: [users]\n",
        ))
        .expect_err("twice");
        assert!(
            format!("{err:#}").contains("x-porto.buckets and environment PORTO_BUCKETS"),
            "{err:#}"
        );
    }

    const STACK: &str = r#"
services:
  api-gateway:
    build: { context: services/api-gateway }
    platform: wasi/wasm
    runtime: io.containerd.wasmtime.v1
    ports: ["8080:80"]
    environment:
      USER_SERVICE_URL: http://user-service
    depends_on: [user-service]
  user-service:
    build: services/user-service
    platform: wasi/wasm
    ports: ["127.0.0.1:8081:80"]
    x-porto:
      buckets: [users]
  postgres:
    image: postgres:16
    profiles: [scale]
"#;

    #[test]
    fn reads_the_stack() {
        let app = app(STACK).expect("valid");
        let names: Vec<_> = app.services.iter().map(ServiceSpec::name).collect();
        assert_eq!(
            names,
            vec!["user-service", "api-gateway"],
            "dependencies first"
        );
        let gw = app.service("api-gateway").expect("gateway");
        assert_eq!(
            gw.source,
            ComponentSource::Cargo {
                dir: PathBuf::from("/app/services/api-gateway")
            }
        );
        assert_eq!(
            gw.ports,
            vec![PublishedPortSpec {
                host_ip: None,
                host_port: 8080
            }]
        );
        assert_eq!(
            gw.config.env,
            vec![("USER_SERVICE_URL".into(), "http://user-service".into())]
        );
        assert!(gw.config.allowed_services.contains("user-service"));
        assert_eq!(
            gw.config.buckets.iter().collect::<Vec<_>>(),
            vec!["api-gateway"]
        );
        assert_eq!(gw.config.limits, Limits::default());
        let us = app.service("user-service").expect("users");
        assert_eq!(us.ports[0].host_ip, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(us.config.buckets.iter().collect::<Vec<_>>(), vec!["users"]);
        assert_eq!(app.others.len(), 1);
        assert_eq!(app.others[0].profiles, vec!["scale"]);
        assert_eq!(app.kv, KvSpec::Embedded);
    }

    #[test]
    fn unknown_dependency_is_an_error() {
        let err = app(
            "services:\n  a:\n    platform: wasi/wasm\n    build: a\n    depends_on: [ghost]\n",
        )
        .expect_err("invalid");
        assert!(format!("{err:#}").contains("ghost"));
    }

    #[test]
    fn cycles_are_errors() {
        let err = app(
            "services:\n  a:\n    platform: wasi/wasm\n    build: a\n    depends_on: [b]\n  b:\n    platform: wasi/wasm\n    build: b\n    depends_on: [a]\n",
        )
        .expect_err("cycle");
        assert!(format!("{err:#}").contains("cycle"));
    }

    #[test]
    fn service_without_source_is_an_error() {
        assert!(app("services:\n  a:\n    platform: wasi/wasm\n").is_err());
    }

    #[test]
    fn wasm_image_paths_and_oci_references() {
        let a = app("services:\n  a:\n    platform: wasi/wasm\n    image: out/a.wasm\n  b:\n    platform: wasi/wasm\n    image: ghcr.io/x/b:1\n")
            .expect("valid");
        assert_eq!(
            a.service("a").map(|s| s.source.clone()),
            Some(ComponentSource::File("/app/out/a.wasm".into()))
        );
        assert_eq!(
            a.service("b").map(|s| s.source.clone()),
            Some(ComponentSource::Image("ghcr.io/x/b:1".into()))
        );
    }

    #[test]
    fn port_forms() {
        let p = |s: &str| parse_port(&Port::Short(s.into()));
        assert_eq!(p("80").expect("ok"), None);
        assert_eq!(
            p("8080:80/tcp").expect("ok").map(|p| p.host_port),
            Some(8080)
        );
        assert_eq!(
            p("[::1]:9000:80").expect("ok").and_then(|p| p.host_ip),
            Some("::1".parse().expect("ip"))
        );
        assert!(p("http:80").is_err());
        assert!(p("70000:80").is_err());
        let long = Port::Long {
            target: 80,
            published: Some(PublishedPort::Text("8082".into())),
            host_ip: None,
        };
        assert_eq!(
            parse_port(&long).expect("ok").map(|p| p.host_port),
            Some(8082)
        );
    }

    #[test]
    fn kv_urls() {
        let a = app("x-porto:\n  kv: redis://127.0.0.1:6379\nservices: {}\n").expect("valid");
        assert_eq!(a.kv, KvSpec::Url("redis://127.0.0.1:6379".into()));
        assert!(app("x-porto:\n  kv: mysql://x\nservices: {}\n").is_err());
    }

    #[test]
    fn a_pool_of_no_connections_is_refused_in_the_file_and_on_the_command_line() {
        assert!(app("x-porto:\n  kv_pool_size: 0\nservices: {}\n").is_err());
        let mut a = app("x-porto:\n  kv_pool_size: 4\nservices: {}\n").expect("valid");
        assert_eq!(a.kv_pool_size.get(), 4);
        a.override_kv(Some("redis://h"), NonZeroUsize::new(2))
            .expect("valid");
        assert_eq!(
            (a.kv.clone(), a.kv_pool_size.get()),
            (KvSpec::Url("redis://h".into()), 2)
        );
        assert!(a.override_kv(Some("mysql://x"), None).is_err());
    }

    #[test]
    fn x_porto_limits_reach_the_host_config() {
        let a = app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      request_timeout_ms: 1500\n      max_memory_mib: 16\n      max_concurrency: 7\n      max_body_bytes: 100\n").expect("valid");
        let limits = a.service("a").map(|s| s.config.limits);
        assert_eq!(
            limits,
            Some(Limits {
                request_timeout: Duration::from_millis(1500),
                max_memory_bytes: 16 * 1024 * 1024,
                max_concurrency: 7,
                max_body_bytes: 100,
            })
        );
        assert_eq!(
            a.service("a").map(|s| s.config.reuse),
            Some(Reuse::default()),
            "a fresh instance per request unless asked"
        );
    }

    #[test]
    fn x_porto_reuse_keys_reach_the_host_config() {
        let a = app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      max_instance_reuse: 8\n      max_instance_concurrency: 3\n      reuse_idle_timeout_ms: 500\n      reuse_max_memory_mib: 4\n").expect("valid");
        assert_eq!(
            a.service("a").map(|s| s.config.reuse),
            Some(Reuse {
                max_requests: std::num::NonZeroU32::new(8),
                max_concurrent: std::num::NonZeroU32::new(3),
                idle_timeout: Duration::from_millis(500),
                max_memory_bytes: 4 * 1024 * 1024,
            })
        );
        assert!(app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      max_instance_reuse: 0\n").is_err());
    }

    #[test]
    fn x_porto_tls_files_are_relative_to_the_compose_file() {
        let a = app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      tls: {cert: certs/a.pem, key: /keys/a.key}\n").expect("valid");
        assert_eq!(
            a.service("a").and_then(|s| s.config.tls.clone()),
            Some(TlsFiles {
                cert: "/app/certs/a.pem".into(),
                key: "/keys/a.key".into(),
            })
        );
        let unknown = app(
            "services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      tls: {cert: a.pem}\n",
        );
        assert!(unknown.is_err(), "a certificate without its key");
    }

    #[test]
    fn an_allow_hosts_entry_that_is_no_host_is_refused_naming_it() {
        let err = app("services:\n  a:\n    platform: wasi/wasm\n    build: a\n    x-porto:\n      allow_hosts: [\"api.example.com,*\"]\n")
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            err.contains("allow_hosts") && err.contains("api.example.com,*"),
            "{err}"
        );
    }
}
