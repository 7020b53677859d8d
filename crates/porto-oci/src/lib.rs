//! porto-oci: OCI images of WebAssembly components, built without a
//! daemon and byte-reproducible.
//!
//! [`build`] turns a `.wasm` into the blobs of an image: by default the
//! shape `docker buildx --platform wasi/wasm` gives a `FROM scratch` +
//! `COPY` + `ENTRYPOINT` Dockerfile (config `os: wasi`, `architecture:
//! wasm`, one uncompressed tar layer holding `/<name>.wasm`), or with
//! [`Form::Artifact`] the CNCF Wasm OCI artifact (`application/wasm`
//! layer). [`archive`] and [`write_dir`] write images as a `docker load` /
//! `ctr import` tarball or an OCI layout directory; [`store`] and
//! [`load_component`] keep them in a local store (an OCI layout directory)
//! and take the component back out; [`Registry`] pushes and pulls them.
//!
//! Reproducibility comes from what is left out or fixed: no `created`
//! time, tar entries with mtime 0 and uid/gid 0, an uncompressed layer, and
//! JSON written with sorted keys (oci-spec keeps annotations in a
//! `HashMap`, whose order changes between runs). The tag is not part of
//! the manifest, so the manifest digest depends on the wasm bytes alone:
//!
//! ```
//! use porto_oci::{Form, Reference, build, load_component, store};
//!
//! let wasm = b"\0asm\x0d\0\x01\0 a component";
//! let image = build("hello", wasm, Form::Scratch)?;
//! assert_eq!(image.digest(), build("hello", wasm, Form::Scratch)?.digest());
//!
//! let local = tempfile::tempdir()?;
//! let reference = Reference::parse("hello:1.0")?;
//! assert_eq!(reference.full(), "docker.io/library/hello:1.0");
//! store(local.path(), &reference, &image)?;
//! assert_eq!(load_component(local.path(), &reference)?, wasm);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod layout;
mod registry;

pub use error::{OciError, Result};
pub use layout::{
    Reference, archive, component_of, contains, files, load_component, read_image, store, write_dir,
};
pub use registry::{Registry, TransferProgress};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder, Sha256Digest,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::str::FromStr;

pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Which image shape to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `FROM scratch` + `COPY` image runwasi runs from its root filesystem.
    Scratch,
    /// The CNCF Wasm OCI artifact: wasm config, one `application/wasm` layer.
    Artifact,
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: MediaType,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.bytes)))
    }

    pub fn descriptor(&self) -> Result<Descriptor> {
        Ok(DescriptorBuilder::default()
            .media_type(self.media_type.clone())
            .digest(Digest::from(Sha256Digest::from_str(&hex::encode(
                Sha256::digest(&self.bytes),
            ))?))
            .size(self.bytes.len() as u64)
            .build()?)
    }
}

/// An image: its manifest, config and layers, ready to write anywhere.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.manifest)
            .chain(std::iter::once(&self.config))
            .chain(&self.layers)
    }

    pub fn size(&self) -> usize {
        self.blobs().map(|b| b.bytes.len()).sum()
    }
}

/// Builds the image of `wasm`, which runs as `/<name>.wasm`.
pub fn build(name: &str, wasm: &[u8], form: Form) -> Result<Image> {
    let (config, layer) = match form {
        Form::Scratch => {
            let path = format!("{name}.wasm");
            let layer = Blob {
                media_type: MediaType::ImageLayer,
                bytes: single_file_tar(&path, wasm)?,
            };
            let config = ImageConfigurationBuilder::default()
                .architecture(Arch::Wasm)
                .os(Os::Other("wasi".into()))
                .config(
                    ConfigBuilder::default()
                        .entrypoint(vec![format!("/{path}")])
                        .build()?,
                )
                .rootfs(
                    RootFsBuilder::default()
                        .typ("layers")
                        .diff_ids(vec![layer.digest()])
                        .build()?,
                )
                .build()?;
            (
                Blob {
                    media_type: MediaType::ImageConfig,
                    bytes: canonical_json(&config)?,
                },
                layer,
            )
        }
        Form::Artifact => {
            let layer = Blob {
                media_type: MediaType::Other(WASM_LAYER_MEDIA_TYPE.into()),
                bytes: wasm.to_vec(),
            };
            let config = serde_json::json!({
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer.digest()],
            });
            (
                Blob {
                    media_type: MediaType::Other(WASM_CONFIG_MEDIA_TYPE.into()),
                    bytes: canonical_json(&config)?,
                },
                layer,
            )
        }
    };
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor()?)
        .layers(vec![layer.descriptor()?]);
    if form == Form::Artifact {
        manifest = manifest.artifact_type(MediaType::Other(WASM_CONFIG_MEDIA_TYPE.into()));
    }
    let manifest = Blob {
        media_type: MediaType::ImageManifest,
        bytes: canonical_json(&manifest.build()?)?,
    };
    Ok(Image {
        manifest,
        config,
        layers: vec![layer],
    })
}

/// A tar holding one regular file, with every variable field fixed.
fn single_file_tar(path: &str, contents: &[u8]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, path, contents, 0o644)?;
    Ok(builder.into_inner()?)
}

/// Appends a regular file with mtime 0, uid/gid 0 and no user names.
fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(contents.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, contents)?;
    Ok(())
}

/// JSON with object keys sorted at every level, whatever map type the
/// value was built from.
fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    fn sort(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    Ok(serde_json::to_vec(&sort(serde_json::to_value(value)?))?)
}

/// `(path, header, contents)` of every entry of a tar, for tests.
#[cfg(test)]
pub(crate) fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let entries = archive.entries().expect("tar entries");
    entries
        .map(|entry| {
            let mut entry = entry.expect("tar entry");
            let header = entry.header().clone();
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).expect("tar read");
            let path = entry.path().expect("tar path").display().to_string();
            (path, header, contents)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &[u8] = b"\0asm\x0d\0\x01\0 pretend component";

    fn json(blob: &Blob) -> serde_json::Value {
        serde_json::from_slice(&blob.bytes).expect("json")
    }

    #[test]
    fn same_wasm_same_digest() {
        let a = build("user-service", WASM, Form::Scratch).expect("build");
        let b = build("user-service", WASM, Form::Scratch).expect("build");
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.manifest.bytes, b.manifest.bytes);
        let other = build("user-service", b"\0asm other", Form::Scratch).expect("build");
        assert_ne!(a.digest(), other.digest());
    }

    #[test]
    fn scratch_image_config_says_wasi_wasm_with_entrypoint() {
        let image = build("user-service", WASM, Form::Scratch).expect("build");
        let config = json(&image.config);
        assert_eq!(config["os"], "wasi");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/user-service.wasm"])
        );
        assert!(config.get("created").is_none());
        assert_eq!(config["rootfs"]["diff_ids"][0], image.layers[0].digest());
        let manifest = json(&image.manifest);
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(manifest["config"]["digest"], image.config.digest());
        assert_eq!(manifest["config"]["size"], image.config.bytes.len());
    }

    #[test]
    fn layer_holds_only_the_component_with_fixed_metadata() {
        let image = build("order-service", WASM, Form::Scratch).expect("build");
        let entries = tar_entries(&image.layers[0].bytes);
        assert_eq!(entries.len(), 1);
        let (path, header, contents) = &entries[0];
        assert_eq!(path, "order-service.wasm");
        assert_eq!(contents.as_slice(), WASM);
        assert_eq!(header.mtime().ok(), Some(0));
        assert_eq!(header.uid().ok(), Some(0));
        assert_eq!(header.gid().ok(), Some(0));
    }

    #[test]
    fn artifact_form_uses_wasm_media_types() {
        let image = build("api-gateway", WASM, Form::Artifact).expect("build");
        let manifest = json(&image.manifest);
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["artifactType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(image.layers[0].bytes, WASM);
        assert_eq!(
            json(&image.config)["layerDigests"][0],
            image.layers[0].digest()
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut map = std::collections::HashMap::new();
        for k in ["zeta", "alpha", "mid"] {
            map.insert(k, serde_json::json!({"b": 1, "a": [{"y": 1, "x": 2}]}));
        }
        let text = String::from_utf8(canonical_json(&map).expect("json")).expect("utf8");
        assert_eq!(
            text,
            r#"{"alpha":{"a":[{"x":2,"y":1}],"b":1},"mid":{"a":[{"x":2,"y":1}],"b":1},"zeta":{"a":[{"x":2,"y":1}],"b":1}}"#
        );
    }
}
