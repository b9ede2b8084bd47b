//! docker's own archive format: `manifest.json`, a list of images, each a
//! `Config` (the image config: `<hex>.json`, or `blobs/sha256/<hex>` since
//! docker 25), its `RepoTags` and its `Layers` (tar files, uncompressed
//! whose digest is the config's diff_id, or gzip/zstd compressed as docker
//! with the containerd store writes them).

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::archive::Entries;
use super::{LoadError, Plan, image_name, push_name};
use crate::digest::Digest;
use crate::image::CONFIG_MEDIA_TYPE;
use crate::layer::{MEDIA_TYPE_GZIP, MEDIA_TYPE_TAR, MEDIA_TYPE_ZSTD};
use crate::registry::pull::{MAX_CONFIG, MAX_MANIFEST};
use crate::store::{Descriptor, MANIFEST_MEDIA_TYPE};

/// One image of `manifest.json`.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn manifest(entries: &mut Entries) -> Result<Vec<Entry>, LoadError> {
    entries.json("manifest.json", MAX_MANIFEST as u64)
}

fn config_digest(entries: &Entries, path: &str) -> Result<Digest, LoadError> {
    let staged = entries.get(path).ok_or_else(|| {
        LoadError::Damaged(format!(
            "manifest.json names config {path}, which it does not hold"
        ))
    })?;
    // `<hex>.json`: the name is the config's digest.
    let stem = path.rsplit('/').next().unwrap_or(path);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    if stem.len() == 64
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && stem != staged.digest.hex()
    {
        return Err(LoadError::Damaged(format!(
            "config {path} holds bytes whose digest is {}: a digest mismatch",
            staged.digest
        )));
    }
    Ok(staged.digest)
}

fn names(entry: &Entry) -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    for raw in entry.repo_tags.iter().flatten() {
        push_name(&mut out, image_name(raw)?);
    }
    Ok(out)
}

/// `RepoTags` by config digest, to name the images of an OCI layout in
/// the same archive.
pub(super) fn names_by_config(
    entries: &mut Entries,
) -> Result<BTreeMap<Digest, Vec<String>>, LoadError> {
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for entry in manifest(entries)? {
        let digest = config_digest(entries, &entry.config)?;
        let list = out.entry(digest).or_default();
        for name in names(&entry)? {
            push_name(list, name);
        }
    }
    Ok(out)
}

/// The images of `manifest.json`, each with an OCI manifest kiln writes.
pub(super) fn plans(entries: &mut Entries) -> Result<Vec<Plan>, LoadError> {
    let mut plans = Vec::new();
    for entry in manifest(entries)? {
        let config_digest = config_digest(entries, &entry.config)?;
        let config_bytes = entries.read(&entry.config, MAX_CONFIG)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes).map_err(|e| {
            LoadError::Format(format!(
                "config {} is not an image config: {e}",
                entry.config
            ))
        })?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::Format(format!("config {}: {e}", entry.config)))?;
        if diff_ids.len() != entry.layers.len() {
            return Err(LoadError::Damaged(format!(
                "manifest.json lists {} layers for config {}, which has {} diff_ids",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, (path, diff_id)) in entry.layers.iter().zip(&diff_ids).enumerate() {
            let staged = entries.get(path).ok_or_else(|| {
                LoadError::Damaged(format!(
                    "manifest.json names layer {path}, which it does not hold"
                ))
            })?;
            let media_type = match staged.magic {
                [0x1f, 0x8b, ..] => MEDIA_TYPE_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => MEDIA_TYPE_ZSTD,
                _ => MEDIA_TYPE_TAR,
            };
            // A compressed layer's diff_id is checked when it is read.
            if media_type == MEDIA_TYPE_TAR && staged.digest != *diff_id {
                return Err(LoadError::Damaged(format!(
                    "layer {} ({path}) has digest {}, but the config's diff_id is {diff_id}: a digest mismatch",
                    i + 1,
                    staged.digest
                )));
            }
            layers.push(Descriptor::new(media_type, staged.digest, staged.size));
        }
        let manifest = crate::json::canonical(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": layers,
        }));
        let top = Descriptor::new(
            MANIFEST_MEDIA_TYPE,
            Digest::of(&manifest),
            manifest.len() as u64,
        );
        let mut blobs = vec![config_digest];
        blobs.extend(layers.iter().map(|l| l.digest));
        plans.push(Plan {
            names: names(&entry)?,
            blobs,
            documents: vec![manifest],
            images: vec![top.clone()],
            configs: vec![config_digest],
            top: Some(top),
        });
    }
    Ok(plans)
}
