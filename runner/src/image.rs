//! Images in the store: loading one (manifest, config, snapshot) and writing
//! a new one (config and manifest blobs).
//!
//! The config and manifest types are oci-spec's; kiln serializes them
//! through [`crate::json::canonical`] so their digests are stable. A
//! snapshot is rebuilt from the layer indexes kiln keeps beside each layer;
//! layers without one (images copied in by other tools) are read once and
//! indexed.

use std::fmt;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::digest::Digest;
use crate::layer::{LayerError, read_layer};
use crate::snapshot::{ChangeSet, Snapshot};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store, StoreError};

/// The media type of an OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Deepest chain of image indexes [`Image::load`] follows to a manifest.
/// Registries and tools write one index over the manifests (two at most, for
/// an index of indexes); the chain is followed by recursion, so a store
/// holding thousands of chained indexes must end in an error, not a stack
/// overflow.
pub const MAX_INDEX_DEPTH: usize = 8;

/// An OS/architecture pair, as `--platform` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `os` of the image config (`wasi`, `linux`...).
    pub os: String,
    /// `architecture` (`wasm`, `amd64`...).
    pub arch: String,
    /// `variant` (`v8`...), if any.
    pub variant: Option<String>,
}

impl Platform {
    /// What kiln images are by default: wasm modules for WASI.
    pub fn wasi() -> Platform {
        Platform {
            os: "wasi".into(),
            arch: "wasm".into(),
            variant: None,
        }
    }

    /// The platform of the machine kiln runs on, in OCI's words
    /// (`linux/amd64`, `darwin/arm64`).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Platform {
                os: os.to_ascii_lowercase(),
                arch: arch.to_ascii_lowercase(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Platform {
                os: os.to_ascii_lowercase(),
                arch: arch.to_ascii_lowercase(),
                variant: Some(variant.to_ascii_lowercase()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], like wasi/wasm or linux/amd64"
            )),
        }
    }

    /// The platform an image config declares.
    pub fn of(config: &ImageConfiguration) -> Platform {
        Platform {
            os: config.os().to_string(),
            arch: config.architecture().to_string(),
            variant: config.variant().clone(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Errors loading or writing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer could not be read.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A manifest or config that is not what kiln can use.
    #[error("image {digest}: {reason}")]
    Invalid {
        /// The manifest or config digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// An image loaded from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config's digest.
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfiguration,
}

impl Image {
    /// Loads the image `descriptor` points to. An index (multi-platform
    /// image) is resolved to the manifest for `platform`, or its only one.
    pub fn load(
        store: &Store,
        descriptor: &Descriptor,
        platform: Option<&Platform>,
    ) -> Result<Image, ImageError> {
        Image::load_at(store, descriptor, platform, 0)
    }

    fn load_at(
        store: &Store,
        descriptor: &Descriptor,
        platform: Option<&Platform>,
        depth: usize,
    ) -> Result<Image, ImageError> {
        let invalid = |d: &Digest, reason: String| ImageError::Invalid { digest: *d, reason };
        let doc: serde_json::Value = store.read_json(&descriptor.digest)?;
        let media_type = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(descriptor.media_type.as_str())
            .to_string();
        if media_type == INDEX_MEDIA_TYPE
            || media_type == DOCKER_LIST
            || doc.get("manifests").is_some()
        {
            let index: oci_spec::image::ImageIndex = serde_json::from_value(doc)
                .map_err(|e| invalid(&descriptor.digest, e.to_string()))?;
            let candidates: Vec<_> = index
                .manifests()
                .iter()
                .filter(|m| {
                    platform.is_none_or(|p| {
                        m.platform().as_ref().is_none_or(|mp| {
                            mp.os().to_string() == p.os && mp.architecture().to_string() == p.arch
                        })
                    })
                })
                .collect();
            let chosen = match candidates.as_slice() {
                [one] => *one,
                [] => {
                    return Err(invalid(
                        &descriptor.digest,
                        format!(
                            "no manifest for platform {}",
                            platform.map_or("(any)".into(), ToString::to_string)
                        ),
                    ));
                }
                several => match default_choice(several) {
                    Some(m) => m,
                    None => {
                        let offered: Vec<String> = several
                            .iter()
                            .filter_map(|m| m.platform().as_ref())
                            .map(|p| format!("{}/{}", p.os(), p.architecture()))
                            .collect();
                        return Err(invalid(
                            &descriptor.digest,
                            format!(
                                "a multi-platform image ({}) with none for wasi/wasm or this host ({}): choose one with --platform",
                                offered.join(", "),
                                Platform::host()
                            ),
                        ));
                    }
                },
            };
            let child = Descriptor::new(
                chosen.media_type().as_ref(),
                Digest::from_oci(chosen.digest())
                    .map_err(|e| invalid(&descriptor.digest, e.to_string()))?,
                chosen.size(),
            );
            if depth >= MAX_INDEX_DEPTH {
                return Err(invalid(
                    &descriptor.digest,
                    format!("image indexes nested deeper than {MAX_INDEX_DEPTH}"),
                ));
            }
            return Image::load_at(store, &child, platform, depth + 1);
        }
        if media_type != MANIFEST_MEDIA_TYPE && media_type != DOCKER_MANIFEST {
            return Err(invalid(
                &descriptor.digest,
                format!("unsupported manifest media type {media_type:?}"),
            ));
        }
        let manifest: ImageManifest =
            serde_json::from_value(doc).map_err(|e| invalid(&descriptor.digest, e.to_string()))?;
        let config_digest = Digest::from_oci(manifest.config().digest())
            .map_err(|e| invalid(&descriptor.digest, e.to_string()))?;
        let config: ImageConfiguration = store.read_json(&config_digest)?;
        if manifest.layers().len() != config.rootfs().diff_ids().len() {
            return Err(invalid(
                &config_digest,
                format!(
                    "{} layers but {} diff_ids",
                    manifest.layers().len(),
                    config.rootfs().diff_ids().len()
                ),
            ));
        }
        Ok(Image {
            descriptor: descriptor.clone(),
            manifest,
            config_digest,
            config,
        })
    }

    /// The layers with their diff_ids, in order.
    pub fn layers(&self) -> Result<Vec<(Descriptor, Digest)>, ImageError> {
        self.manifest
            .layers()
            .iter()
            .zip(self.config.rootfs().diff_ids())
            .map(|(layer, diff_id)| {
                let invalid = |reason: String| ImageError::Invalid {
                    digest: self.config_digest,
                    reason,
                };
                let digest =
                    Digest::from_oci(layer.digest()).map_err(|e| invalid(e.to_string()))?;
                let diff_id: Digest = diff_id
                    .parse()
                    .map_err(|e: crate::digest::DigestParseError| invalid(e.to_string()))?;
                Ok((
                    Descriptor::new(layer.media_type().as_ref(), digest, layer.size()),
                    diff_id,
                ))
            })
            .collect()
    }

    /// The image's filesystem. Layers without an index are read and indexed.
    pub fn snapshot(&self, store: &Store) -> Result<Snapshot, ImageError> {
        let mut snapshot = Snapshot::empty();
        for (blob, diff_id) in self.layers()? {
            snapshot.apply(&layer_changes(store, &blob, &diff_id)?);
        }
        Ok(snapshot)
    }

    /// Checks that every layer blob is in the store with its size (the
    /// manifest and config were verified when the image was loaded), so a
    /// name is never given to an image that cannot be read. The layers'
    /// bytes were verified when they were written or reused.
    pub fn check_layers_present(&self, store: &Store) -> Result<(), ImageError> {
        for (blob, _) in self.layers()? {
            let size = match store.blob_size(&blob.digest) {
                Ok(size) => size,
                Err(_) if !store.has_blob(&blob.digest) => {
                    return Err(StoreError::Missing {
                        what: "layer blob",
                        digest: blob.digest,
                        root: store.root().to_path_buf(),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            };
            if size != blob.size {
                return Err(StoreError::Corrupt {
                    path: store.blob_path(&blob.digest),
                    reason: format!("{size} bytes, expected {}", blob.size),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Total size of the image: manifest, config and layer blobs.
    pub fn size(&self) -> u64 {
        self.descriptor.size
            + self.manifest.config().size()
            + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

/// Which of several manifests of an index a command without `--platform`
/// (`kiln images`, `history`, `run`) uses: `wasi/wasm`, else the host's.
fn default_choice<'d>(
    manifests: &[&'d oci_spec::image::Descriptor],
) -> Option<&'d oci_spec::image::Descriptor> {
    let is = |m: &oci_spec::image::Descriptor, want: &Platform| {
        m.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == want.os && p.architecture().to_string() == want.arch
        })
    };
    [Platform::wasi(), Platform::host()]
        .iter()
        .find_map(|want| manifests.iter().find(|m| is(m, want)).copied())
}

/// The changes of layer `blob` (uncompressed digest `diff_id`): its index,
/// or, when the index is missing or damaged or its pack is gone, what
/// reading the blob gives (which writes the pack and the index again).
pub fn layer_changes(
    store: &Store,
    blob: &Descriptor,
    diff_id: &Digest,
) -> Result<ChangeSet, LayerError> {
    match store.layer_index(diff_id) {
        Ok(Some(c)) if !crate::snapshot::packed(&c) || store.has_blob(diff_id) => return Ok(c),
        Ok(Some(_)) => {}
        Ok(None) | Err(StoreError::Corrupt { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let c = read_layer(store, blob, diff_id)?;
    store.put_layer_index(diff_id, &c)?;
    Ok(c)
}

/// Writes `config` and a manifest for it and `layers` into the store.
/// Returns the manifest's descriptor (not yet tagged).
pub fn write_image(
    store: &Store,
    config: &ImageConfiguration,
    layers: &[Descriptor],
) -> Result<Descriptor, ImageError> {
    let config_json = crate::json::canonical(config);
    let config_digest = store.put_blob(&config_json)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config_json.len(),
        },
        "layers": layers,
    });
    let manifest_json = crate::json::canonical(&manifest);
    let digest = store.put_blob(&manifest_json)?;
    Ok(Descriptor::new(
        MANIFEST_MEDIA_TYPE,
        digest,
        manifest_json.len() as u64,
    ))
}

/// The `Env` of an image config as `(name, value)` pairs, in order.
pub fn env_pairs(config: Option<&oci_spec::image::Config>) -> Vec<(String, String)> {
    config
        .and_then(|c| c.env().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect()
}

/// Formats seconds since the epoch as RFC 3339 (`1970-01-01T00:00:00Z`).
pub fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/ARM64/v8")
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "lin ux/amd64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_long_chain_of_indexes_is_an_error_not_a_stack_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut child = Descriptor::new(MANIFEST_MEDIA_TYPE, store.put_blob(b"{}").unwrap(), 2);
        for _ in 0..200 {
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": INDEX_MEDIA_TYPE,
                "manifests": [child],
            });
            let bytes = serde_json::to_vec(&index).unwrap();
            child = Descriptor::new(
                INDEX_MEDIA_TYPE,
                store.put_blob(&bytes).unwrap(),
                bytes.len() as u64,
            );
        }
        let e = Image::load(&store, &child, None).unwrap_err();
        assert!(e.to_string().contains("nested deeper than 8"), "{e}");
    }
}
