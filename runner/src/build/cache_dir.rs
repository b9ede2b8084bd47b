//! Step cache export and import through an OCI image layout directory
//! (`--cache-to type=local,dest=DIR`, `--cache-from type=local,src=DIR`),
//! so CI machines can share a cache as plain files.
//!
//! The directory is an OCI layout holding one artifact, tagged
//! `kiln-cache:latest`:
//!
//! ```text
//! DIR/oci-layout
//! DIR/index.json                 one manifest, ref name kiln-cache:latest
//! DIR/blobs/sha256/<manifest>    artifactType application/vnd.kiln.cache.v1,
//!                                layers: every cached layer blob
//! DIR/blobs/sha256/<config>      {"entries": [{"key", "diff_id", "layer"}]}, sorted by key
//! DIR/blobs/sha256/<layer>...    the layers, as the store has them
//! ```
//!
//! Exporting merges into what the directory already holds (the newer entry
//! wins a key), so builds of several targets can share one directory.
//! Importing is lazy: a key missing from the store is looked up in the
//! `--cache-from` directories, and only that entry's layer is copied in
//! (digest checked) and indexed. Keys of steps with secret mounts hold an
//! HMAC under the store's own key, so they never match in another store:
//! a shared cache cannot be used to test guesses of a secret.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME, StepEntry, Store};

/// The artifact type of the cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// The media type of the cache's config (its entries).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The tag of the cache in the layout's index.
pub const REF: &str = "kiln-cache:latest";

/// Largest JSON document read from a cache directory.
const MAX_JSON: u64 = 64 << 20;

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

/// A `--cache-from` directory, its entries read once.
#[derive(Debug)]
pub struct CacheDir {
    dir: PathBuf,
    entries: BTreeMap<Digest, Record>,
}

fn err(dir: &Path, what: impl std::fmt::Display) -> String {
    format!("cache directory {}: {what}", dir.display())
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(digest.hex())
}

/// Reads a JSON blob of the layout, checking its digest.
fn read_json_blob<T: serde::de::DeserializeOwned>(
    dir: &Path,
    digest: &Digest,
) -> Result<T, String> {
    let path = blob_path(dir, digest);
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .and_then(|f| f.take(MAX_JSON + 1).read_to_end(&mut bytes))
        .map_err(|e| err(dir, format!("reading {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(err(
            dir,
            format!("blob {digest} is larger than {MAX_JSON} bytes"),
        ));
    }
    if Digest::of(&bytes) != *digest {
        return Err(err(dir, format!("blob {digest} does not match its digest")));
    }
    serde_json::from_slice(&bytes).map_err(|e| err(dir, format!("blob {digest}: {e}")))
}

/// The manifest descriptor of the cache in `dir`'s index, if it has one.
fn cache_manifest(dir: &Path) -> Result<Option<Descriptor>, String> {
    let path = dir.join("index.json");
    let mut bytes = Vec::new();
    match fs::File::open(&path).and_then(|f| f.take(MAX_JSON + 1).read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(dir, format!("reading index.json: {e}"))),
    }
    if bytes.len() as u64 > MAX_JSON {
        return Err(err(
            dir,
            format!("index.json is larger than {MAX_JSON} bytes"),
        ));
    }
    #[derive(Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let index: Index =
        serde_json::from_slice(&bytes).map_err(|e| err(dir, format!("index.json: {e}")))?;
    Ok(index
        .manifests
        .into_iter()
        .find(|d| d.ref_name() == Some(REF)))
}

/// A cache as read: its entries, and the digests of its manifest and config.
type CacheRead = (Vec<Record>, Vec<Digest>);

/// The cache in `dir`; `None` when the directory holds none.
fn read_cache(dir: &Path) -> Result<Option<CacheRead>, String> {
    let Some(manifest) = cache_manifest(dir)? else {
        return Ok(None);
    };
    let doc: serde_json::Value = read_json_blob(dir, &manifest.digest)?;
    if doc.get("artifactType").and_then(|t| t.as_str()) != Some(ARTIFACT_TYPE) {
        return Err(err(
            dir,
            format!("{REF} is not a kiln cache ({ARTIFACT_TYPE})"),
        ));
    }
    let config: Descriptor = doc
        .get("config")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| err(dir, "the cache manifest has no config"))?;
    let cfg: Config = read_json_blob(dir, &config.digest)?;
    Ok(Some((cfg.entries, vec![manifest.digest, config.digest])))
}

impl CacheDir {
    /// Reads the cache in `dir`. A directory without one is an error: a
    /// `--cache-from` that names the wrong place should say so.
    pub fn open(dir: &Path) -> Result<CacheDir, String> {
        if !dir.join("oci-layout").is_file() {
            return Err(err(dir, "not an OCI image layout (no oci-layout file)"));
        }
        let Some((records, _)) = read_cache(dir)? else {
            return Err(err(dir, format!("holds no kiln cache ({REF})")));
        };
        Ok(CacheDir {
            dir: dir.to_path_buf(),
            entries: records.into_iter().map(|r| (r.key, r)).collect(),
        })
    }

    /// Copies the entry for `key` into `store` (its layer blob, checked,
    /// and the layer's index, rebuilt from the blob); returns it.
    pub fn import(
        &self,
        store: &Store,
        key: &Digest,
        used: i64,
    ) -> Result<Option<StepEntry>, String> {
        let Some(record) = self.entries.get(key) else {
            return Ok(None);
        };
        if let (Some(layer), Some(diff_id)) = (&record.layer, &record.diff_id) {
            if !store.has_blob(&layer.digest) {
                let path = blob_path(&self.dir, &layer.digest);
                let mut src = fs::File::open(&path)
                    .map_err(|e| err(&self.dir, format!("reading {}: {e}", path.display())))?;
                let mut w = store.blob_writer().map_err(|e| e.to_string())?;
                io::copy(&mut src, &mut w).map_err(|e| err(&self.dir, e))?;
                let (digest, _) = w.commit().map_err(|e| e.to_string())?;
                if digest != layer.digest {
                    return Err(err(
                        &self.dir,
                        format!("blob {} does not match its digest", layer.digest),
                    ));
                }
            }
            crate::image::layer_changes(store, layer, diff_id).map_err(|e| err(&self.dir, e))?;
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
}

/// Writes `entries` (with their layers from `store`) into the cache in
/// `dir`, merged with what it holds; returns how many entries it has now.
pub fn export(store: &Store, dir: &Path, entries: &[(Digest, StepEntry)]) -> Result<usize, String> {
    fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| err(dir, e))?;
    let layout = dir.join("oci-layout");
    if !layout.is_file() {
        write_atomic(dir, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let (old, old_docs) = read_cache(dir)?.unwrap_or_default();
    let mut merged: BTreeMap<Digest, Record> = old.into_iter().map(|r| (r.key, r)).collect();
    for (key, entry) in entries {
        merged.insert(
            *key,
            Record {
                key: *key,
                diff_id: entry.diff_id,
                layer: entry.layer.clone(),
            },
        );
    }
    let mut layers: BTreeMap<Digest, Descriptor> = BTreeMap::new();
    for record in merged.values() {
        if let Some(l) = &record.layer {
            layers.insert(l.digest, l.clone());
        }
    }
    for layer in layers.values() {
        let path = blob_path(dir, &layer.digest);
        if path.is_file() {
            continue;
        }
        let mut src = store.open_blob(&layer.digest).map_err(|e| e.to_string())?;
        copy_blob(dir, &path, &mut src, &layer.digest)?;
    }
    let config = crate::json::canonical(&Config {
        entries: merged.values().cloned().collect(),
    });
    let config_desc = put_blob(dir, CONFIG_MEDIA_TYPE, &config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": config_desc,
        "layers": layers.values().collect::<Vec<_>>(),
    });
    let manifest_desc = put_blob(dir, MANIFEST_MEDIA_TYPE, &crate::json::canonical(&manifest))?;
    let mut tagged = manifest_desc.clone();
    tagged
        .annotations
        .get_or_insert_with(Default::default)
        .insert(REF_NAME.into(), REF.into());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [tagged],
    });
    write_atomic(
        dir,
        &dir.join("index.json"),
        &crate::json::canonical(&index),
    )?;
    // The previous manifest and config are garbage now.
    for d in old_docs {
        if d != manifest_desc.digest && d != config_desc.digest {
            let _ = fs::remove_file(blob_path(dir, &d));
        }
    }
    Ok(merged.len())
}

fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Result<Descriptor, String> {
    let digest = Digest::of(bytes);
    let path = blob_path(dir, &digest);
    if !path.is_file() {
        copy_blob(dir, &path, &mut &bytes[..], &digest)?;
    }
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

/// Copies `src` to `path` through a temp file, checking it hashes to `digest`.
fn copy_blob(dir: &Path, path: &Path, src: &mut dyn Read, digest: &Digest) -> Result<(), String> {
    let parent = path.parent().expect("blob paths have a parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)
        .map_err(|e| err(dir, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = src.read(&mut buf).map_err(|e| err(dir, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(|e| err(dir, e))?;
    }
    if hasher.finish().0 != *digest {
        return Err(err(
            dir,
            format!("blob {digest} did not match its digest while copied"),
        ));
    }
    tmp.persist(path).map_err(|e| err(dir, e.error))?;
    Ok(())
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| err(dir, e))?;
    tmp.write_all(bytes).map_err(|e| err(dir, e))?;
    tmp.persist(path).map_err(|e| err(dir, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
