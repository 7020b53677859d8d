//! The Kubernetes objects themselves, as the API's own types
//! (`k8s-openapi`), so a field that does not exist cannot be written.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    SecretKeySelector, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::node::v1::{RuntimeClass, Scheduling};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{KV_SECRET, Plan, RUNTIME_CLASS, labels, quantity, selector_labels};
use crate::compose::Resources;

/// The node label the RuntimeClass schedules on: nodes with the shim.
const NODE_LABEL: &str = "porto.dev/wasm-runtime";
const PORT_NAME: &str = "http";
const DATA_VOLUME: &str = "data";
const TLS_VOLUME: &str = "tls";
/// Where a service's TLS Secret is mounted: the whole directory, never a
/// `subPath`, so the kubelet's in-place rotation reaches the shim, which
/// reloads the files when they change.
pub const TLS_DIR: &str = "/etc/porto/tls";

/// The Secret a service with `x-porto.tls` takes its certificate from: of
/// type `kubernetes.io/tls` (keys `tls.crt`, `tls.key`), made from the same
/// files with `kubectl create secret tls NAME --cert … --key …`, or by
/// cert-manager. porto kube never writes private keys into manifests.
pub fn tls_secret_name(service: &str) -> String {
    format!("{service}-tls")
}
/// More than the shim's drain, so in-flight requests finish before the
/// kubelet kills the container.
const TERMINATION_GRACE_SECONDS: i64 =
    porto_host::container_env::DEFAULT_DRAIN_TIMEOUT.as_secs() as i64 + 5;

pub const RUNTIME_CLASS_COMMENT: &str = "\
Pods with `runtimeClassName: porto` run under porto's containerd shim,
containerd-shim-porto-v1 (deploy/README.md: installing it on a node). Each
node's containerd needs a runtime named like `handler`:

containerd 1.x, /etc/containerd/config.toml:
  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.porto]
    runtime_type = \"io.containerd.porto.v1\"
containerd 2.x:
  [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.porto]
    runtime_type = \"io.containerd.porto.v1\"

and the label below (kubectl label node NODE porto.dev/wasm-runtime=porto),
so pods land only where the shim is installed.";

pub const KV_SECRET_COMMENT: &str = "\
The key-value backend every replica shares (redis://… or postgres://…;
`?namespace=` keeps applications apart). The shim reads it; the guest
never sees it.";

/// One container environment variable.
pub struct Env(EnvVar);

impl Env {
    pub fn value(name: &str, value: &str) -> Self {
        Self(EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            ..EnvVar::default()
        })
    }

    pub fn secret(name: &str, secret: &str, key: &str) -> Self {
        Self(EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_string(),
                    key: key.to_string(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
    }
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

pub fn runtime_class(project: &str) -> RuntimeClass {
    RuntimeClass {
        metadata: meta(RUNTIME_CLASS, None, labels(project, None)),
        handler: RUNTIME_CLASS.to_string(),
        scheduling: Some(Scheduling {
            node_selector: Some(BTreeMap::from([(
                NODE_LABEL.to_string(),
                RUNTIME_CLASS.to_string(),
            )])),
            tolerations: None,
        }),
        overhead: None,
    }
}

pub fn kv_secret(project: &str, namespace: Option<&str>, url: &str) -> Secret {
    Secret {
        metadata: meta(KV_SECRET, namespace, labels(project, None)),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([("url".to_string(), url.to_string())])),
        ..Secret::default()
    }
}

pub fn deployment(plan: &Plan<'_>) -> anyhow::Result<Deployment> {
    let name = plan.spec.name();
    Ok(Deployment {
        metadata: meta(name, plan.namespace, labels(plan.project, Some(name))),
        spec: DeploymentSpec {
            replicas: Some(replicas(plan)),
            selector: selector(plan),
            template: pod_template(plan, None)?,
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

pub fn stateful_set(plan: &Plan<'_>, volume_size: &str) -> anyhow::Result<StatefulSet> {
    let name = plan.spec.name();
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(volume_size.to_string()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    Ok(StatefulSet {
        metadata: meta(name, plan.namespace, labels(plan.project, Some(name))),
        spec: StatefulSetSpec {
            service_name: Some(name.to_string()),
            replicas: Some(replicas(plan)),
            selector: selector(plan),
            template: pod_template(plan, Some(DATA_VOLUME))?,
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        },
        status: None,
    })
}

pub fn service(plan: &Plan<'_>) -> Service {
    let name = plan.spec.name();
    Service {
        metadata: meta(name, plan.namespace, labels(plan.project, Some(name))),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(plan.project, name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: i32::from(plan.port),
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn replicas(plan: &Plan<'_>) -> i32 {
    i32::try_from(plan.replicas).unwrap_or(i32::MAX)
}

fn selector(plan: &Plan<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(plan.project, plan.spec.name())),
        match_expressions: None,
    }
}

fn pod_template(plan: &Plan<'_>, data_volume: Option<&str>) -> anyhow::Result<PodTemplateSpec> {
    let name = plan.spec.name();
    let tls = plan.spec.config.tls.is_some();
    let probe = |period: Option<i32>| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String(PORT_NAME.into()),
            // The kubelet does not check the certificate of an HTTPS probe.
            scheme: tls.then(|| "HTTPS".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: period,
        ..Probe::default()
    };
    let container = Container {
        name: name.to_string(),
        image: Some(plan.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: i32::from(plan.port),
            ..ContainerPort::default()
        }]),
        env: Some(plan.env.iter().map(|e| e.0.clone()).collect()),
        readiness_probe: Some(probe(None)),
        liveness_probe: Some(probe(Some(20))),
        resources: resources(plan)?,
        volume_mounts: mounts(data_volume, tls),
        ..Container::default()
    };
    let volumes = tls.then(|| {
        vec![Volume {
            name: TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls_secret_name(name)),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]
    });
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(plan.project, Some(name))),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            runtime_class_name: Some(RUNTIME_CLASS.into()),
            // The guest's environment is the Compose file's, as under porto,
            // not one `NAME_SERVICE_HOST` set per Service in the namespace.
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            containers: vec![container],
            volumes,
            ..PodSpec::default()
        }),
    })
}

fn mounts(data_volume: Option<&str>, tls: bool) -> Option<Vec<VolumeMount>> {
    let mut mounts = Vec::new();
    if let Some(volume) = data_volume {
        mounts.push(VolumeMount {
            name: volume.to_string(),
            mount_path: porto_host::container_env::DEFAULT_DATA_DIR.into(),
            ..VolumeMount::default()
        });
    }
    if tls {
        mounts.push(VolumeMount {
            name: TLS_VOLUME.into(),
            mount_path: TLS_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    (!mounts.is_empty()).then_some(mounts)
}

/// `deploy.resources` as the container's limits and requests.
fn resources(plan: &Plan<'_>) -> anyhow::Result<Option<ResourceRequirements>> {
    let convert = |resources: &Option<Resources>, what: &str| -> anyhow::Result<_> {
        let Some(resources) = resources else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        if let Some(cpus) = &resources.cpus {
            let cpu =
                quantity::cpus(cpus).map_err(|e| e.context(format!("deploy.resources.{what}")))?;
            out.insert("cpu".to_string(), Quantity(cpu));
        }
        if let Some(memory) = &resources.memory {
            let memory = quantity::memory(memory)
                .map_err(|e| e.context(format!("deploy.resources.{what}")))?;
            out.insert("memory".to_string(), Quantity(memory));
        }
        Ok((!out.is_empty()).then_some(out))
    };
    let declared = &plan.spec.deploy.resources;
    let limits = convert(&declared.limits, "limits")?;
    let requests = convert(&declared.reservations, "reservations")?;
    Ok(
        (limits.is_some() || requests.is_some()).then(|| ResourceRequirements {
            limits,
            requests,
            ..ResourceRequirements::default()
        }),
    )
}
