//! Pushing images to and pulling them from any OCI registry.
//!
//! The manifest is pushed as the exact bytes porto built, so its digest in
//! the registry is the digest `porto image build` printed; pulls check
//! every blob against its digest before anything is stored. Plain
//! `http://` is used only for registries named insecure (a loopback test
//! registry); everything else is HTTPS. Credentials, if any, come from
//! `PORTO_REGISTRY_USER` / `PORTO_REGISTRY_PASSWORD`.

use std::str::FromStr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciReference};
use sha2::{Digest as _, Sha256};

use crate::{Blob, Image, OciError, Reference, Result};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Told how a transfer goes, to draw a progress bar or nothing; `()`
/// says nothing.
pub trait TransferProgress {
    /// A transfer of `total_bytes` called `label` starts.
    fn start(&self, label: &str, total_bytes: u64);
    /// `bytes` more have moved.
    fn advance(&self, bytes: u64);
    /// The transfer is over.
    fn finish(&self);
}

impl TransferProgress for () {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

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

    fn oci_reference(reference: &Reference) -> Result<OciReference> {
        OciReference::from_str(&reference.full()).map_err(|e| {
            OciError::Reference(format!(
                "{} is not a registry reference: {e}",
                reference.full()
            ))
        })
    }

    /// Uploads the blobs the registry lacks, then the manifest.
    pub async fn push(
        &self,
        reference: &Reference,
        image: &Image,
        progress: &dyn TransferProgress,
    ) -> Result<String> {
        let target = Self::oci_reference(reference)?;
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.auth)
            .await;
        progress.start(&format!("push {}", reference.full()), image.size() as u64);
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
                    .map_err(OciError::registry(format!(
                        "pushing blob {digest} to {}",
                        reference.full()
                    )))?;
            }
            progress.advance(blob.bytes.len() as u64);
        }
        self.client
            .push_manifest_raw(
                &target,
                image.manifest.bytes.clone(),
                http::HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .map_err(OciError::registry(format!(
                "pushing the manifest of {}",
                reference.full()
            )))?;
        progress.advance(image.manifest.bytes.len() as u64);
        progress.finish();
        Ok(image.digest())
    }

    /// Downloads an image, checking every digest.
    pub async fn pull(
        &self,
        reference: &Reference,
        progress: &dyn TransferProgress,
    ) -> Result<Image> {
        let source = Self::oci_reference(reference)?;
        let (manifest_bytes, digest) = self
            .client
            .pull_manifest_raw(&source, &self.auth, &[OCI_MANIFEST])
            .await
            .map_err(OciError::registry(format!(
                "pulling the manifest of {}",
                reference.full()
            )))?;
        let manifest = Blob {
            media_type: oci_spec::image::MediaType::ImageManifest,
            bytes: manifest_bytes.to_vec(),
        };
        if manifest.digest() != digest {
            return Err(OciError::Malformed(format!(
                "{}: manifest digest mismatch",
                reference.full()
            )));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes)
            .map_err(OciError::json("manifest is not JSON".into()))?;
        let descriptors: Vec<&serde_json::Value> = std::iter::once(&parsed["config"])
            .chain(
                parsed["layers"]
                    .as_array()
                    .ok_or_else(|| OciError::malformed("manifest without layers"))?,
            )
            .collect();
        let total = descriptors.iter().filter_map(|d| d["size"].as_u64()).sum();
        progress.start(&format!("pull {}", reference.full()), total);
        let mut blobs = Vec::new();
        for descriptor in descriptors {
            let digest = descriptor["digest"]
                .as_str()
                .ok_or_else(|| OciError::malformed("descriptor without digest"))?;
            let mut bytes = Vec::new();
            self.client
                .pull_blob(&source, digest, &mut bytes)
                .await
                .map_err(OciError::registry(format!(
                    "pulling blob {digest} of {}",
                    reference.full()
                )))?;
            let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            if actual != digest {
                return Err(OciError::Malformed(format!(
                    "blob {digest} arrived as {actual}"
                )));
            }
            progress.advance(bytes.len() as u64);
            blobs.push(Blob {
                media_type: oci_spec::image::MediaType::from(
                    descriptor["mediaType"].as_str().unwrap_or_default(),
                ),
                bytes,
            });
        }
        progress.finish();
        let config = blobs.remove(0);
        Ok(Image {
            manifest,
            config,
            layers: blobs,
        })
    }
}
