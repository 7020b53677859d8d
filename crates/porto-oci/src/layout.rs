//! Writing images as an OCI image layout: a directory, or one tar file
//! that `docker load` (containerd image store) and `ctr import` accept.
//!
//! The tar holds `oci-layout`, `index.json`, `blobs/sha256/…` and a
//! Docker-compatible `manifest.json`; image names go in the index entries'
//! annotations (`io.containerd.image.name`, `org.opencontainers.image.ref.name`).
//! Entries are sorted and their metadata fixed, so the same images give
//! the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use sha2::Digest as _;

use crate::{Blob, Image, OciError, Result, WASM_LAYER_MEDIA_TYPE, append_file, canonical_json};

pub const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image reference split the way registries and containerd see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io/library/user-service`, `127.0.0.1:5000/shop/api`, …
    pub repository: String,
    pub tag: String,
}

impl Reference {
    /// Parses `name[:tag]`, `host[:port]/path[:tag]`; no tag means `latest`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(OciError::Reference("an image reference is required".into()));
        }
        if text.contains('@') {
            return Err(OciError::Reference(format!(
                "{text:?}: digest references cannot be tagged"
            )));
        }
        let (name, tag) = match text.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag.to_string()),
            _ => (text, "latest".to_string()),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
        };
        if !(valid(name) && valid(&tag) && !tag.contains('/')) {
            return Err(OciError::Reference(format!(
                "{text:?} is not an image reference"
            )));
        }
        let first = name.split('/').next().unwrap_or_default();
        let has_registry = name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let repository = if has_registry {
            name.to_string()
        } else if name.contains('/') {
            format!("docker.io/{name}")
        } else {
            format!("docker.io/library/{name}")
        };
        Ok(Self {
            repository: repository.to_ascii_lowercase(),
            tag,
        })
    }

    pub fn full(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn index_entry(reference: &Reference, image: &Image) -> Result<serde_json::Value> {
    let mut descriptor = serde_json::to_value(image.manifest.descriptor()?)?;
    descriptor["annotations"] = serde_json::json!({
        CONTAINERD_NAME: reference.full(),
        REF_NAME: reference.tag,
    });
    Ok(descriptor)
}

fn index_bytes(entries: Vec<serde_json::Value>) -> Result<Vec<u8>> {
    canonical_json(&Index {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.index.v1+json".into()),
        manifests: entries,
    })
}

/// Every file of a layout holding `images`, by path, sorted.
pub fn files(images: &[(Reference, &Image)]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert("oci-layout".to_string(), LAYOUT_FILE.as_bytes().to_vec());
    let mut entries = Vec::new();
    let mut docker = Vec::new();
    for (reference, image) in images {
        for blob in image.blobs() {
            files.insert(blob_path(&blob.digest()), blob.bytes.clone());
        }
        entries.push(index_entry(reference, image)?);
        docker.push(DockerManifest {
            config: blob_path(&image.config.digest()),
            repo_tags: vec![reference.full()],
            layers: image
                .layers
                .iter()
                .map(|l| blob_path(&l.digest()))
                .collect(),
        });
    }
    files.insert("index.json".to_string(), index_bytes(entries)?);
    files.insert("manifest.json".to_string(), canonical_json(&docker)?);
    Ok(files)
}

/// One tar of the layout, for `docker load -i`.
pub fn archive(images: &[(Reference, &Image)]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, bytes) in files(images)? {
        // Parent directories first, as `docker save` writes them.
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            prefix.push_str(part);
            prefix.push('/');
            if dirs_done.insert(prefix.clone()) {
                let mut header = tar::Header::new_ustar();
                header.set_path(&prefix)?;
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_mtime(0);
                header.set_uid(0);
                header.set_gid(0);
                header.set_cksum();
                builder.append(&header, std::io::empty())?;
            }
        }
        append_file(&mut builder, &path, &bytes, 0o644)?;
    }
    Ok(builder.into_inner()?)
}

/// Adds `image` under `reference` to the OCI layout in `dir` (created if
/// needed); an older image of the same name is replaced in the index.
pub fn store(dir: &Path, reference: &Reference, image: &Image) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(OciError::io(format!("creating {}", blobs.display())))?;
    write_atomically(&dir.join("oci-layout"), LAYOUT_FILE.as_bytes())?;
    for blob in image.blobs() {
        let path = dir.join(blob_path(&blob.digest()));
        if !path.exists() {
            write_atomically(&path, &blob.bytes)?;
        }
    }
    let index_path = dir.join("index.json");
    let mut entries = match std::fs::read(&index_path) {
        Ok(bytes) => {
            serde_json::from_slice::<Index>(&bytes)
                .map_err(OciError::json(format!("reading {}", index_path.display())))?
                .manifests
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(OciError::io(format!("reading {}", index_path.display()))(e)),
    };
    let full = reference.full();
    entries.retain(|entry| entry["annotations"][CONTAINERD_NAME] != full.as_str());
    entries.push(index_entry(reference, image)?);
    entries.sort_by_key(|e| {
        e["annotations"][CONTAINERD_NAME]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    write_atomically(&index_path, &index_bytes(entries)?)
}

/// Whether the OCI layout `dir` holds an image named `reference`.
pub fn contains(dir: &Path, reference: &Reference) -> bool {
    read_index(dir).is_ok_and(|index| find_entry(&index, reference).is_some())
}

fn read_index(dir: &Path) -> Result<Index> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path)
        .map_err(OciError::io(format!("no image store at {}", dir.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(OciError::json(format!("reading {}", index_path.display())))
}

fn find_entry<'a>(index: &'a Index, reference: &Reference) -> Option<&'a serde_json::Value> {
    let full = reference.full();
    index
        .manifests
        .iter()
        .find(|m| m["annotations"][CONTAINERD_NAME] == full.as_str())
}

/// Reads a blob and checks it is what its digest says.
fn read_blob(dir: &Path, digest: &str, media_type: &str) -> Result<Blob> {
    let bytes = std::fs::read(dir.join(blob_path(digest)))
        .map_err(OciError::io(format!("blob {digest} missing")))?;
    let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    if actual != digest {
        return Err(OciError::Malformed(format!(
            "blob {digest} is corrupt (its content hashes to {actual})"
        )));
    }
    Ok(Blob {
        media_type: oci_spec::image::MediaType::from(media_type),
        bytes,
    })
}

/// The image named `reference` in the OCI layout `dir`.
pub fn read_image(dir: &Path, reference: &Reference) -> Result<Image> {
    let index = read_index(dir)?;
    let full = reference.full();
    let entry = find_entry(&index, reference).ok_or_else(|| OciError::NotFound {
        reference: full.clone(),
        store: dir.to_path_buf(),
    })?;
    let digest = entry["digest"]
        .as_str()
        .ok_or_else(|| OciError::malformed("index entry without digest"))?;
    let manifest = read_blob(dir, digest, "application/vnd.oci.image.manifest.v1+json")?;
    let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(OciError::json(format!("manifest of {full}")))?;
    let descriptor = |d: &serde_json::Value| -> Result<Blob> {
        read_blob(
            dir,
            d["digest"]
                .as_str()
                .ok_or_else(|| OciError::malformed("descriptor without digest"))?,
            d["mediaType"]
                .as_str()
                .ok_or_else(|| OciError::malformed("descriptor without mediaType"))?,
        )
    };
    let config = descriptor(&parsed["config"])?;
    let layers = parsed["layers"]
        .as_array()
        .ok_or_else(|| OciError::malformed("manifest without layers"))?
        .iter()
        .map(descriptor)
        .collect::<Result<Vec<_>>>()?;
    Ok(Image {
        manifest,
        config,
        layers,
    })
}

/// The component of the image named `reference` in the OCI layout `dir`.
pub fn load_component(dir: &Path, reference: &Reference) -> Result<Vec<u8>> {
    let image = read_image(dir, reference)?;
    component_of(&image).map_err(|e| OciError::Malformed(format!("{}: {e}", reference.full())))
}

/// The `.wasm` an image carries: its `application/wasm` layer, or the one
/// `.wasm` file of its tar layer.
pub fn component_of(image: &Image) -> Result<Vec<u8>> {
    let [layer] = image.layers.as_slice() else {
        return Err(OciError::Malformed(format!(
            "expected one layer, found {}",
            image.layers.len()
        )));
    };
    if layer.media_type.to_string() == WASM_LAYER_MEDIA_TYPE {
        return Ok(layer.bytes.clone());
    }
    let mut archive = tar::Archive::new(layer.bytes.as_slice());
    for file in archive.entries()? {
        let mut file = file?;
        if file.path()?.extension().is_some_and(|e| e == "wasm") {
            let mut wasm = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut wasm)?;
            return Ok(wasm);
        }
    }
    Err(OciError::malformed("the layer holds no .wasm file"))
}

/// Writes `files` into `dir` as an OCI layout directory.
pub fn write_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    for (path, bytes) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(OciError::io(format!("creating {}", parent.display())))?;
        }
        write_atomically(&target, bytes)?;
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(OciError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(OciError::io(format!("writing {}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Form, build, tar_entries};
    use sha2::{Digest, Sha256};

    #[test]
    fn references_normalise_like_docker() {
        let r = Reference::parse("user-service").expect("ref");
        assert_eq!(r.full(), "docker.io/library/user-service:latest");
        assert_eq!(
            Reference::parse("shop/api:1.2").expect("ref").full(),
            "docker.io/shop/api:1.2"
        );
        assert_eq!(
            Reference::parse("127.0.0.1:5000/shop/api:v1")
                .expect("ref")
                .full(),
            "127.0.0.1:5000/shop/api:v1"
        );
        assert_eq!(
            Reference::parse("localhost/x").expect("ref").full(),
            "localhost/x:latest"
        );
        for bad in ["", "a b", "x@sha256:00", "x:tag!", ":tag"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_archive_is_a_complete_layout() {
        let image = build("user-service", b"\0asm component", Form::Scratch).expect("build");
        let reference = Reference::parse("user-service:1.0").expect("ref");
        let tar_bytes = archive(&[(reference, &image)]).expect("archive");
        let entries = tar_entries(&tar_bytes);
        let names: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        for required in [
            "oci-layout",
            "index.json",
            "manifest.json",
            "blobs/",
            "blobs/sha256/",
        ] {
            assert!(names.contains(&required), "{required} missing: {names:?}");
        }
        let file = |name: &str| -> Vec<u8> {
            entries
                .iter()
                .find(|(p, _, _)| p == name)
                .map(|(_, _, c)| c.clone())
                .unwrap_or_else(|| panic!("{name}"))
        };
        // Every blob is named by its own digest.
        for (path, header, contents) in &entries {
            assert_eq!(header.mtime().ok(), Some(0), "{path}");
            if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(hex, hex::encode(Sha256::digest(contents)));
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&file("index.json")).expect("index");
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.digest());
        assert_eq!(
            entry["annotations"][CONTAINERD_NAME],
            "docker.io/library/user-service:1.0"
        );
        assert_eq!(entry["annotations"][REF_NAME], "1.0");
        let docker: serde_json::Value =
            serde_json::from_slice(&file("manifest.json")).expect("manifest.json");
        assert_eq!(
            docker[0]["RepoTags"][0],
            "docker.io/library/user-service:1.0"
        );
        let config_path = docker[0]["Config"].as_str().expect("config");
        assert_eq!(file(config_path), image.config.bytes);
        let layer_path = docker[0]["Layers"][0].as_str().expect("layer");
        assert_eq!(file(layer_path), image.layers[0].bytes);
        assert_eq!(
            String::from_utf8(file("oci-layout")).expect("utf8"),
            LAYOUT_FILE
        );
    }

    #[test]
    fn archives_are_byte_for_byte_reproducible() {
        let make = || {
            let image = build("order-service", b"\0asm same bytes", Form::Scratch).expect("build");
            archive(&[(Reference::parse("order-service").expect("ref"), &image)]).expect("archive")
        };
        assert_eq!(make(), make());
    }

    #[test]
    fn store_replaces_an_image_of_the_same_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reference = Reference::parse("svc:dev").expect("ref");
        let first = build("svc", b"\0asm one", Form::Scratch).expect("build");
        let second = build("svc", b"\0asm two", Form::Scratch).expect("build");
        store(dir.path(), &reference, &first).expect("store");
        store(dir.path(), &Reference::parse("other").expect("ref"), &first).expect("store");
        store(dir.path(), &reference, &second).expect("store");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).expect("read"))
                .expect("json");
        let manifests = index["manifests"].as_array().expect("manifests");
        assert_eq!(manifests.len(), 2);
        let svc = manifests
            .iter()
            .find(|m| m["annotations"][CONTAINERD_NAME] == "docker.io/library/svc:dev")
            .expect("svc");
        assert_eq!(svc["digest"], second.digest());
        assert!(
            dir.path()
                .join(blob_path(&second.manifest.digest()))
                .exists()
        );
        assert_eq!(
            load_component(dir.path(), &reference).expect("load"),
            b"\0asm two"
        );
    }

    #[test]
    fn artifact_images_load_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reference = Reference::parse("art:1").expect("ref");
        let image = build("art", b"\0asm artifact", Form::Artifact).expect("build");
        store(dir.path(), &reference, &image).expect("store");
        assert_eq!(
            load_component(dir.path(), &reference).expect("load"),
            b"\0asm artifact"
        );
        let missing = load_component(dir.path(), &Reference::parse("art:2").expect("ref"));
        assert!(format!("{:#}", missing.expect_err("absent")).contains("porto image build"));
    }
}
