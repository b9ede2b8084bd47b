//! The step cache's exchange format, one implementation for every place a
//! cache is exported to or imported from (`--cache-to`, `--cache-from`):
//! an OCI directory (`cache_dir.rs`) or a registry (`cache_registry.rs`).
//!
//! A cache is one OCI artifact manifest:
//!
//! ```text
//! manifest   artifactType application/vnd.kiln.cache.v1,
//!            config: application/vnd.kiln.cache.config.v1+json,
//!            layers: every cached layer blob (sorted by digest)
//! config     {"entries": [{"key", "diff_id", "layer"}]}, sorted by key
//! ```
//!
//! Exporting merges into what the place already holds (the newer entry
//! wins a key); importing is lazy: only a hit's layer is fetched, checked
//! against its digest and size, and read once like any imported layer.
//! Keys of steps with secret mounts hold an HMAC under the store's own key,
//! so they never match in another store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::store::{Descriptor, MANIFEST_MEDIA_TYPE, StepEntry, Store};

/// The artifact type of the cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// The media type of the cache's config (its entries).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// Largest cache config read (and, for a directory, index or manifest).
pub const MAX_JSON: u64 = 64 << 20;

/// One exported entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The step's cache key.
    pub key: Digest,
    /// The layer's diff_id, when the step made one.
    pub diff_id: Option<Digest>,
    /// The layer blob, when the step made one.
    pub layer: Option<Descriptor>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    entries: Vec<Record>,
}

/// The documents of a cache, ready to be written: the config and the
/// manifest (canonical JSON) and the layers the manifest names.
#[derive(Debug, Clone)]
pub struct Documents {
    /// The config's bytes.
    pub config: Vec<u8>,
    /// Its descriptor.
    pub config_desc: Descriptor,
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor.
    pub manifest_desc: Descriptor,
    /// Every layer blob of the entries, once each, by digest.
    pub layers: Vec<Descriptor>,
    /// How many entries the config holds.
    pub entries: usize,
}

/// `old` (what a place holds) with `new` (this build's entries) merged in:
/// a key of both takes the new entry.
pub fn merge(old: Vec<Record>, new: &[(Digest, StepEntry)]) -> BTreeMap<Digest, Record> {
    let mut merged: BTreeMap<Digest, Record> = old.into_iter().map(|r| (r.key, r)).collect();
    for (key, entry) in new {
        merged.insert(
            *key,
            Record {
                key: *key,
                diff_id: entry.diff_id,
                layer: entry.layer.clone(),
            },
        );
    }
    merged
}

/// The config and manifest holding `records`.
pub fn documents(records: &BTreeMap<Digest, Record>) -> Documents {
    let mut layers: BTreeMap<Digest, Descriptor> = BTreeMap::new();
    for record in records.values() {
        if let Some(l) = &record.layer {
            layers.insert(l.digest, l.clone());
        }
    }
    let layers: Vec<Descriptor> = layers.into_values().collect();
    let config = crate::json::canonical(&Config {
        entries: records.values().cloned().collect(),
    });
    let config_desc = Descriptor::new(CONFIG_MEDIA_TYPE, Digest::of(&config), config.len() as u64);
    let manifest = crate::json::canonical(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": config_desc,
        "layers": layers,
    }));
    let manifest_desc = Descriptor::new(
        MANIFEST_MEDIA_TYPE,
        Digest::of(&manifest),
        manifest.len() as u64,
    );
    Documents {
        config,
        config_desc,
        manifest,
        manifest_desc,
        layers,
        entries: records.len(),
    }
}

/// The config descriptor of a cache manifest; an error when the manifest
/// is not a kiln cache or names a config kiln would not read.
pub fn read_manifest(bytes: &[u8]) -> Result<Descriptor, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the cache manifest: {e}"))?;
    if doc.get("artifactType").and_then(|t| t.as_str()) != Some(ARTIFACT_TYPE) {
        return Err(format!("it is not a kiln cache ({ARTIFACT_TYPE})"));
    }
    let config: Descriptor = doc
        .get("config")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or("the cache manifest has no config")?;
    if config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "the cache manifest's config is a {}, not a {CONFIG_MEDIA_TYPE}",
            config.media_type
        ));
    }
    if config.size > MAX_JSON {
        return Err(format!(
            "the cache config is {} bytes, more than kiln reads ({MAX_JSON})",
            config.size
        ));
    }
    Ok(config)
}

/// The entries of a cache config (`bytes`, already checked against its
/// digest).
pub fn read_config(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let config: Config =
        serde_json::from_slice(bytes).map_err(|e| format!("the cache config: {e}"))?;
    Ok(config.entries)
}

/// A place entries are imported from (`--cache-from`), its records read
/// once when opened.
pub trait CacheSource: Send + Sync {
    /// How messages name it (`cache directory DIR`, `cache REF`).
    fn name(&self) -> String;
    /// The record for `key`, if the cache has one.
    fn record(&self, key: &Digest) -> Option<&Record>;
    /// Copies the blob `layer` into `store`. It must be checked against
    /// its digest and size: the blob is never stored under `layer`'s name
    /// otherwise.
    fn fetch_layer(&self, store: &Store, layer: &Descriptor) -> Result<(), String>;
}

/// Copies the entry for `key` from `source` into `store` (its layer blob,
/// checked, and the layer's index, rebuilt from the blob); returns it.
/// `None` when the source has no entry for the key.
pub fn import(
    source: &dyn CacheSource,
    store: &Store,
    key: &Digest,
    used: i64,
) -> Result<Option<StepEntry>, String> {
    let Some(record) = source.record(key) else {
        return Ok(None);
    };
    if let (Some(layer), Some(diff_id)) = (&record.layer, &record.diff_id) {
        let present = store.has_blob(&layer.digest)
            && store
                .blob_size(&layer.digest)
                .is_ok_and(|s| s == layer.size);
        if !present {
            source.fetch_layer(store, layer)?;
        }
        crate::image::layer_changes(store, layer, diff_id)
            .map_err(|e| format!("{}: {e}", source.name()))?;
    }
    let entry = StepEntry {
        diff_id: record.diff_id,
        layer: record.layer.clone(),
        used,
        clean_of: Vec::new(),
    };
    store
        .put_step_entry(key, &entry)
        .map_err(|e| e.to_string())?;
    Ok(Some(entry))
}

/// A place entries are exported to (`--cache-to`).
pub trait CacheDest {
    /// The records it holds now (none when it holds no cache yet).
    fn existing(&mut self) -> Result<Vec<Record>, String>;
    /// Writes `docs`: the layers it lacks (from `store`), the config, then
    /// the manifest, so the cache never names content the place lacks.
    fn write(&mut self, store: &Store, docs: &Documents) -> Result<(), String>;
}

/// Writes `entries` (with their layers from `store`) into `dest`'s cache,
/// merged with what it holds; returns how many entries it has now.
pub fn export(
    dest: &mut dyn CacheDest,
    store: &Store,
    entries: &[(Digest, StepEntry)],
) -> Result<usize, String> {
    let old = dest.existing()?;
    let docs = documents(&merge(old, entries));
    dest.write(store, &docs)?;
    Ok(docs.entries)
}

#[cfg(test)]
mod tests;
