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
//! The format, merging and the import path are `cache_format.rs`'s, shared
//! with registry caches (`cache_registry.rs`). Exporting merges into what
//! the directory already holds (the newer entry wins a key), so builds of
//! several targets can share one directory. Importing is lazy: a key
//! missing from the store is looked up in the `--cache-from` caches, and
//! only that entry's layer is copied in (digest and size checked) and
//! indexed. Keys of steps with secret mounts hold an HMAC under the store's
//! own key, so they never match in another store: a shared cache cannot be
//! used to test guesses of a secret.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cache_format::{self, CacheDest, CacheSource, Documents, MAX_JSON};
pub use super::cache_format::{ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, Record};
use crate::digest::{Digest, Hasher};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, REF_NAME, StepEntry, Store};

/// The tag of the cache in the layout's index.
pub const REF: &str = "kiln-cache:latest";

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
fn read_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, String> {
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
    Ok(bytes)
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
    let config = cache_format::read_manifest(&read_blob(dir, &manifest.digest)?)
        .map_err(|e| err(dir, format!("{REF}: {e}")))?;
    let records =
        cache_format::read_config(&read_blob(dir, &config.digest)?).map_err(|e| err(dir, e))?;
    Ok(Some((records, vec![manifest.digest, config.digest])))
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
        cache_format::import(self, store, key, used)
    }
}

impl CacheSource for CacheDir {
    fn name(&self) -> String {
        format!("cache directory {}", self.dir.display())
    }

    fn record(&self, key: &Digest) -> Option<&Record> {
        self.entries.get(key)
    }

    fn fetch_layer(&self, store: &Store, layer: &Descriptor) -> Result<(), String> {
        let path = blob_path(&self.dir, &layer.digest);
        let src = fs::File::open(&path)
            .map_err(|e| err(&self.dir, format!("reading {}: {e}", path.display())))?;
        let mut w = store.blob_writer().map_err(|e| e.to_string())?;
        // One byte more than the descriptor says is enough to tell.
        io::copy(&mut src.take(layer.size + 1), &mut w).map_err(|e| err(&self.dir, e))?;
        let (digest, size) = w.commit().map_err(|e| e.to_string())?;
        if digest != layer.digest || size != layer.size {
            return Err(err(
                &self.dir,
                format!("blob {} does not match its digest or size", layer.digest),
            ));
        }
        Ok(())
    }
}

/// A `--cache-to` directory.
struct DirDest<'a> {
    dir: &'a Path,
    /// The manifest and config it held: garbage once the new ones are in.
    old_docs: Vec<Digest>,
}

impl CacheDest for DirDest<'_> {
    fn existing(&mut self) -> Result<Vec<Record>, String> {
        let dir = self.dir;
        fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| err(dir, e))?;
        let layout = dir.join("oci-layout");
        if !layout.is_file() {
            write_atomic(dir, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let (old, old_docs) = read_cache(dir)?.unwrap_or_default();
        self.old_docs = old_docs;
        Ok(old)
    }

    fn write(&mut self, store: &Store, docs: &Documents) -> Result<(), String> {
        let dir = self.dir;
        for layer in &docs.layers {
            let path = blob_path(dir, &layer.digest);
            if path.is_file() {
                continue;
            }
            let mut src = store.open_blob(&layer.digest).map_err(|e| e.to_string())?;
            copy_blob(dir, &path, &mut src, &layer.digest)?;
        }
        put_blob(dir, &docs.config, &docs.config_desc.digest)?;
        put_blob(dir, &docs.manifest, &docs.manifest_desc.digest)?;
        let mut tagged = docs.manifest_desc.clone();
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
        for d in &self.old_docs {
            if *d != docs.manifest_desc.digest && *d != docs.config_desc.digest {
                let _ = fs::remove_file(blob_path(dir, d));
            }
        }
        Ok(())
    }
}

/// Writes `entries` (with their layers from `store`) into the cache in
/// `dir`, merged with what it holds; returns how many entries it has now.
pub fn export(store: &Store, dir: &Path, entries: &[(Digest, StepEntry)]) -> Result<usize, String> {
    let mut dest = DirDest {
        dir,
        old_docs: Vec::new(),
    };
    cache_format::export(&mut dest, store, entries)
}

fn put_blob(dir: &Path, bytes: &[u8], digest: &Digest) -> Result<(), String> {
    let path = blob_path(dir, digest);
    if !path.is_file() {
        copy_blob(dir, &path, &mut &bytes[..], digest)?;
    }
    Ok(())
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
