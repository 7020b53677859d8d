//! Everything decided about one service before its objects are written:
//! image, port, replicas, volume, and the container's environment (the
//! service's own, then the shim's `PORTO_*` settings that carry porto's
//! rules for it).

use anyhow::{Context as _, bail};
use porto_host::container_env as var;
use porto_kv::KvSpec;
use porto_oci::Reference;

use super::{Document, KV_SECRET, Options, objects};
use crate::app::{App, ComponentSource, ServiceSpec};

/// Everything decided about one service before objects are written.
pub(super) struct Plan<'a> {
    pub(super) spec: &'a ServiceSpec,
    pub(super) project: &'a str,
    pub(super) namespace: Option<&'a str>,
    pub(super) image: String,
    pub(super) port: u16,
    pub(super) replicas: u32,
    /// `Some(size)`: a StatefulSet whose store lives on a claim of this size.
    pub(super) volume: Option<&'a str>,
    pub(super) env: Vec<objects::Env>,
}

impl<'a> Plan<'a> {
    pub(super) fn of(
        app: &'a App,
        spec: &'a ServiceSpec,
        kv: &KvSpec,
        options: &'a Options,
    ) -> anyhow::Result<Self> {
        let port = match spec.container_ports.as_slice() {
            [] => var::DEFAULT_LISTEN_PORT,
            [port] => *port,
            several => bail!(
                "maps to container ports {several:?}, but its component serves one \
                 (PORTO_LISTEN); give every `ports` entry the same target"
            ),
        };
        let embedded_state = spec.keeps_state && *kv == KvSpec::Embedded;
        let wanted = options.replicas.or(spec.deploy.replicas).unwrap_or(1);
        let replicas = if embedded_state {
            if spec.deploy.replicas.is_some_and(|r| r > 1) {
                bail!(
                    "deploy.replicas is {}, but its data is in the embedded store, which \
                     one replica owns; give porto kube --kv redis://… or postgres://… to \
                     run replicas over a shared store",
                    spec.deploy.replicas.unwrap_or_default()
                );
            }
            1
        } else {
            wanted
        };
        Ok(Self {
            spec,
            project: &app.project,
            namespace: options.namespace.as_deref(),
            image: image_for(spec, options)?,
            port,
            replicas,
            volume: embedded_state.then_some(options.volume_size.as_str()),
            env: environment(app, spec, kv, port),
        })
    }

    pub(super) fn documents(&self) -> anyhow::Result<Vec<Document>> {
        let name = self.spec.name();
        let workload = if let Some(size) = self.volume {
            Document::new(
                Some(format!(
                    "{name} keeps its data in the embedded store: one replica, the store\n\
                     on a PersistentVolumeClaim at {} (porto kube --kv for replicas).",
                    var::DEFAULT_DATA_DIR
                )),
                &objects::stateful_set(self, size)?,
            )?
        } else {
            let comment = self.spec.keeps_state.then(|| {
                format!(
                    "{name} keeps its data in the backend whose URL is in Secret\n\
                     {KV_SECRET}: every replica shares it."
                )
            });
            Document::new(comment, &objects::deployment(self)?)?
        };
        Ok(vec![
            workload,
            Document::new(None, &objects::service(self))?,
        ])
    }
}

/// The image a service's pods run: its `image:` if it names one, else
/// `PREFIX/NAME:TAG`; pinned to the local store's digest when asked.
fn image_for(spec: &ServiceSpec, options: &Options) -> anyhow::Result<String> {
    let reference = match &spec.source {
        ComponentSource::Image(reference) => reference.clone(),
        ComponentSource::Cargo { .. } | ComponentSource::File(_) => format!(
            "{}/{}:{}",
            options.image_prefix.trim_end_matches('/'),
            spec.name(),
            options.tag
        ),
    };
    let parsed = Reference::parse(&reference).with_context(|| {
        format!("{reference:?} is not an image reference (--image-prefix, --tag)")
    })?;
    let Some(store) = &options.pin_from else {
        return Ok(reference);
    };
    let image = porto_oci::read_image(store, &parsed).with_context(|| {
        format!(
            "--pin: {reference} is not in {} (porto image build {} -t {reference})",
            store.display(),
            spec.name()
        )
    })?;
    Ok(format!("{reference}@{}", image.digest()))
}

/// The container's environment: the service's own, then the shim's
/// settings that carry porto's rules for it.
fn environment(app: &App, spec: &ServiceSpec, kv: &KvSpec, port: u16) -> Vec<objects::Env> {
    use objects::Env;
    let config = &spec.config;
    let mut env: Vec<Env> = config.env.iter().map(|(k, v)| Env::value(k, v)).collect();
    if port != var::DEFAULT_LISTEN_PORT {
        env.push(Env::value(var::LISTEN, &format!("0.0.0.0:{port}")));
    }
    // Only services that declare buckets may open any, on the cluster as
    // in the Compose file; an undeclared default bucket would keep data on
    // a pod's disk and lose it with the pod.
    let buckets: Vec<&str> = if spec.keeps_state {
        config.buckets.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    env.push(Env::value(var::BUCKETS, &buckets.join(",")));
    if spec.keeps_state
        && let KvSpec::Url(_) = kv
    {
        env.push(Env::secret(var::KV, KV_SECRET, "url"));
        if app.kv_pool_size != porto_kv::DEFAULT_POOL_SIZE {
            env.push(Env::value(var::KV_POOL_SIZE, &app.kv_pool_size.to_string()));
        }
    }
    // What porto allows over in-process calls, by name on the cluster.
    let mut hosts: Vec<&str> = config
        .allowed_services
        .iter()
        .chain(&config.allowed_hosts)
        .map(String::as_str)
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    env.push(Env::value(var::ALLOW_HOSTS, &hosts.join(",")));
    for (key, value) in var::limit_settings(config) {
        env.push(Env::value(key, &value));
    }
    if config.tls.is_some() {
        env.push(Env::value(
            var::TLS_CERT,
            &format!("{}/tls.crt", objects::TLS_DIR),
        ));
        env.push(Env::value(
            var::TLS_KEY,
            &format!("{}/tls.key", objects::TLS_DIR),
        ));
    }
    env
}
