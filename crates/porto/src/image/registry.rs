//! Pushing images to and pulling them from any OCI registry.
//!
//! The manifest is pushed as the exact bytes porto built, so its digest in
//! the registry is the digest `porto image build` printed; pulls check
//! every blob against its digest before anything is stored. Plain
//! `http://` is used only for registries named insecure (a loopback test
//! registry); everything else is HTTPS. Credentials, if any, come from
//! `PORTO_REGISTRY_USER` / `PORTO_REGISTRY_PASSWORD`.

use std::str::FromStr;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciReference};
use sha2::{Digest as _, Sha256};

use super::layout::Reference;
use super::{Blob, Image};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

impl Registry {
    /// `insecure` lists registries (`host:port`) to reach over plain HTTP.
    pub fn new(insecure: Vec<String>) -> Self {
        // reqwest is built without a TLS provider of its own; use ring, which
        // wasmtime's HTTP stack already links.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(insecure)
        };
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            ..ClientConfig::default()
        });
        let auth = match (
            std::env::var("PORTO_REGISTRY_USER"),
            std::env::var("PORTO_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
            _ => RegistryAuth::Anonymous,
        };
        Self { client, auth }
    }

    /// The registry host of a reference (`127.0.0.1:5000`, `docker.io`).
    pub fn host_of(reference: &Reference) -> String {
        reference
            .repository
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn oci_reference(reference: &Reference) -> anyhow::Result<OciReference> {
        OciReference::from_str(&reference.full())
            .with_context(|| format!("{} is not a registry reference", reference.full()))
    }

    /// Uploads the blobs the registry lacks, then the manifest.
    pub async fn push(&self, reference: &Reference, image: &Image) -> anyhow::Result<String> {
        let target = Self::oci_reference(reference)?;
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.auth)
            .await;
        let progress = bar(&format!("push {}", reference.full()), image.size() as u64);
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            let digest = blob.digest();
            let exists = self
                .client
                .blob_exists(&target, &digest)
                .await
                .unwrap_or(false);
            if !exists {
                self.client
                    .push_blob(&target, blob.bytes.clone(), &digest)
                    .await
                    .with_context(|| format!("pushing blob {digest} to {}", reference.full()))?;
            }
            progress.inc(blob.bytes.len() as u64);
        }
        self.client
            .push_manifest_raw(
                &target,
                image.manifest.bytes.clone(),
                http::HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .with_context(|| format!("pushing the manifest of {}", reference.full()))?;
        progress.inc(image.manifest.bytes.len() as u64);
        progress.finish_and_clear();
        Ok(image.digest())
    }

    /// Downloads an image, checking every digest.
    pub async fn pull(&self, reference: &Reference) -> anyhow::Result<Image> {
        let source = Self::oci_reference(reference)?;
        let (manifest_bytes, digest) = self
            .client
            .pull_manifest_raw(&source, &self.auth, &[OCI_MANIFEST])
            .await
            .with_context(|| format!("pulling the manifest of {}", reference.full()))?;
        let manifest = Blob {
            media_type: oci_spec::image::MediaType::ImageManifest,
            bytes: manifest_bytes.to_vec(),
        };
        anyhow::ensure!(
            manifest.digest() == digest,
            "{}: manifest digest mismatch",
            reference.full()
        );
        let parsed: serde_json::Value =
            serde_json::from_slice(&manifest.bytes).context("manifest is not JSON")?;
        let descriptors: Vec<&serde_json::Value> = std::iter::once(&parsed["config"])
            .chain(
                parsed["layers"]
                    .as_array()
                    .context("manifest without layers")?,
            )
            .collect();
        let total = descriptors.iter().filter_map(|d| d["size"].as_u64()).sum();
        let progress = bar(&format!("pull {}", reference.full()), total);
        let mut blobs = Vec::new();
        for descriptor in descriptors {
            let digest = descriptor["digest"]
                .as_str()
                .context("descriptor without digest")?;
            let mut bytes = Vec::new();
            self.client
                .pull_blob(&source, digest, &mut bytes)
                .await
                .with_context(|| format!("pulling blob {digest} of {}", reference.full()))?;
            let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            anyhow::ensure!(actual == digest, "blob {digest} arrived as {actual}");
            progress.inc(bytes.len() as u64);
            blobs.push(Blob {
                media_type: oci_spec::image::MediaType::from(
                    descriptor["mediaType"].as_str().unwrap_or_default(),
                ),
                bytes,
            });
        }
        progress.finish_and_clear();
        let config = blobs.remove(0);
        Ok(Image {
            manifest,
            config,
            layers: blobs,
        })
    }
}

fn bar(prefix: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
