//! `kiln check`: verifies every object of the store against its digest and
//! says what is damaged and which tags and cache entries reach it, like
//! `git fsck` or `podman system check`.
//!
//! Checked: every blob (packs among them) and loose file content (hashed
//! whole), every layer index (parsed, its own digest checked, its pack
//! present), `index.json` and each image it
//! names (manifest, config and layer blobs present and intact, the size it
//! records), and every step cache entry (readable, its layer present and
//! intact). Objects that something refers to but the store lacks are
//! reported as missing, except layer indexes: those are rebuilt from their
//! blob when next used. With `repair`, `repair.rs` then rebuilds what can
//! be rebuilt and removes what cannot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::blob::verify_file;
use super::{Descriptor, Result, Store, io_err};
use crate::digest::Digest;
use crate::snapshot::{Change, Node};

/// What `kiln check` does besides reporting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Rebuild what can be rebuilt; remove what cannot.
    pub repair: bool,
}

/// An object of the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// `index.json`, which names the images.
    TagIndex,
    /// An image entry of `index.json`, as [`Scan::label`] names it.
    Image(String),
    /// `blobs/sha256/<hex>`: a manifest, config or layer.
    Blob(Digest),
    /// `kiln/layers/sha256/<diff_id>.json`.
    LayerIndex(Digest),
    /// `kiln/files/sha256/<hex>`: loose contents (format 1 stores).
    FileContent(Digest),
    /// `kiln/steps/<key>.json`.
    CacheEntry(Digest),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::TagIndex => f.write_str("index.json"),
            Object::Image(label) => f.write_str(label),
            Object::Blob(d) => write!(f, "blob {d}"),
            Object::LayerIndex(d) => write!(f, "layer index {d}"),
            Object::FileContent(d) => write!(f, "file content {d}"),
            Object::CacheEntry(k) => write!(f, "{}", entry_label(k)),
        }
    }
}

fn entry_label(key: &Digest) -> String {
    format!("cache entry {}", &key.hex()[..12])
}

/// A damaged or missing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The object.
    pub object: Object,
    /// Where it is (or should be).
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
    /// The tags, images and cache entries that use it.
    pub reached_by: BTreeSet<String>,
}

/// What `repair` did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The object.
    pub object: Object,
    /// `rebuilt from ...`, `removed: ...`.
    pub action: String,
}

/// How many objects were checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckCounts {
    /// Entries of `index.json`.
    pub images: usize,
    /// Blobs.
    pub blobs: usize,
    /// Layer indexes.
    pub layer_indexes: usize,
    /// File contents.
    pub file_contents: usize,
    /// Step cache entries.
    pub cache_entries: usize,
}

/// What `kiln check` found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// What was checked.
    pub counts: CheckCounts,
    /// Every damaged or missing object, in a stable order.
    pub damaged: Vec<Finding>,
    /// What `repair` rebuilt or removed.
    pub repairs: Vec<Repair>,
    /// Damage `repair` could not deal with.
    pub unrepaired: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// One entry of `index.json` as the scan saw it.
#[derive(Debug)]
pub(super) struct ImageScan {
    pub(super) entry: Descriptor,
    pub(super) label: String,
    pub(super) diff_ids: Vec<Digest>,
    /// Why it cannot be read, beyond what repair can rebuild.
    pub(super) broken: Option<String>,
}

/// One step cache entry as the scan saw it.
#[derive(Debug)]
pub(super) struct EntryScan {
    pub(super) key: Digest,
    pub(super) diff_id: Option<Digest>,
    pub(super) broken: bool,
}

/// Everything the scan learned; `repair.rs` acts on it.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub(super) report: CheckReport,
    pub(super) findings: BTreeMap<Object, Finding>,
    reached: HashMap<Object, BTreeSet<String>>,
    pub(super) bad_blobs: BTreeSet<Digest>,
    pub(super) bad_indexes: BTreeSet<Digest>,
    /// Damaged or missing file contents that something uses or holds.
    pub(super) bad_contents: BTreeSet<Digest>,
    /// The loose file contents each readable layer index names.
    pub(super) index_contents: HashMap<Digest, Vec<Digest>>,
    /// The readable layer indexes that name files in their layer's pack.
    pub(super) index_packed: BTreeSet<Digest>,
    /// Every layer an image or cache entry uses: diff_id -> blob.
    pub(super) layers: BTreeMap<Digest, Descriptor>,
    pub(super) images: Vec<ImageScan>,
    pub(super) entries: Vec<EntryScan>,
    /// Why `index.json` cannot be read, if it cannot.
    pub(super) index_error: Option<String>,
}

impl Scan {
    fn damaged(&mut self, object: Object, path: PathBuf, reason: String) {
        self.findings.entry(object.clone()).or_insert(Finding {
            object,
            path,
            reason,
            reached_by: BTreeSet::new(),
        });
    }

    fn reach(&mut self, object: Object, by: &str) {
        self.reached
            .entry(object)
            .or_default()
            .insert(by.to_string());
    }

    /// How an `index.json` entry is named in reports.
    pub(super) fn label(entry: &Descriptor) -> String {
        match entry.ref_name() {
            Some(name) => format!("tag {name}"),
            None => format!("untagged image {}", entry.digest),
        }
    }

    /// The report, with what reaches each finding filled in.
    pub(super) fn finish(mut self) -> CheckReport {
        let mut report = std::mem::take(&mut self.report);
        for (object, mut finding) in std::mem::take(&mut self.findings) {
            finding.reached_by = self.reached.remove(&object).unwrap_or_default();
            report.damaged.push(finding);
        }
        report
    }
}

impl Store {
    /// Checks the store (see the module docs) and, with `opts.repair`,
    /// repairs it. Holds the store lock: shared to check, exclusive to
    /// repair, so no build writes while objects are removed.
    pub fn check(&self, opts: CheckOptions) -> Result<CheckReport> {
        let _lock = if opts.repair {
            self.lock_exclusive()?
        } else {
            self.lock_shared()?
        };
        let mut scan = self.scan()?;
        if opts.repair && !scan.findings.is_empty() {
            self.repair(&mut scan)?;
        }
        Ok(scan.finish())
    }

    fn scan(&self) -> Result<Scan> {
        let mut scan = Scan::default();
        for (digest, path) in hex_files(&self.root.join("blobs/sha256"), "")? {
            scan.report.counts.blobs += 1;
            if let Err(e) = verify_file(&path, &digest, None) {
                scan.bad_blobs.insert(digest);
                scan.damaged(Object::Blob(digest), path, e.to_string());
            }
        }
        for (digest, path) in hex_files(&self.kiln_dir().join("files/sha256"), "")? {
            scan.report.counts.file_contents += 1;
            if let Err(e) = verify_file(&path, &digest, None) {
                scan.bad_contents.insert(digest);
                scan.damaged(Object::FileContent(digest), path, e.to_string());
            }
        }
        for (diff_id, path) in hex_files(&self.kiln_dir().join("layers/sha256"), ".json")? {
            scan.report.counts.layer_indexes += 1;
            match self.layer_index(&diff_id) {
                Ok(Some(changes)) => {
                    if crate::snapshot::packed(&changes) {
                        scan.index_packed.insert(diff_id);
                    }
                    scan.index_contents
                        .insert(diff_id, loose_contents(&changes));
                }
                Ok(None) => {}
                Err(e) => {
                    scan.bad_indexes.insert(diff_id);
                    scan.damaged(Object::LayerIndex(diff_id), path, e.to_string());
                }
            }
        }
        match self.read_index() {
            Ok(index) => {
                for entry in index.manifests {
                    scan.report.counts.images += 1;
                    let image = self.scan_image(&mut scan, entry);
                    scan.images.push(image);
                }
            }
            Err(e) => {
                scan.index_error = Some(e.to_string());
                scan.damaged(Object::TagIndex, self.index_path(), e.to_string());
            }
        }
        for (key, path) in hex_files(&self.steps_dir(), ".json")? {
            scan.report.counts.cache_entries += 1;
            let label = entry_label(&key);
            let entry = match self.step_entry(&key) {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    scan.damaged(Object::CacheEntry(key), path, e.to_string());
                    scan.entries.push(EntryScan {
                        key,
                        diff_id: None,
                        broken: true,
                    });
                    continue;
                }
            };
            let mut broken = false;
            if let (Some(layer), Some(diff_id)) = (&entry.layer, entry.diff_id) {
                broken = self.scan_blob(&mut scan, &layer.digest, &label).is_some();
                scan.layers.entry(diff_id).or_insert_with(|| layer.clone());
                self.scan_layer(&mut scan, &diff_id, &label);
            }
            scan.entries.push(EntryScan {
                key,
                diff_id: entry.diff_id,
                broken,
            });
        }
        Ok(scan)
    }

    /// Checks that blob `digest`, used by `by`, is present and intact;
    /// returns what is wrong with it.
    fn scan_blob(&self, scan: &mut Scan, digest: &Digest, by: &str) -> Option<String> {
        scan.reach(Object::Blob(*digest), by);
        if scan.bad_blobs.contains(digest) {
            return Some(format!("blob {digest} is damaged"));
        }
        if !self.has_blob(digest) {
            scan.bad_blobs.insert(*digest);
            scan.damaged(
                Object::Blob(*digest),
                self.blob_path(digest),
                "missing".into(),
            );
            return Some(format!("blob {digest} is missing"));
        }
        None
    }

    /// Marks the index of layer `diff_id`, its pack and the contents it
    /// names as used by `by`; a missing pack or content is a finding.
    fn scan_layer(&self, scan: &mut Scan, diff_id: &Digest, by: &str) {
        scan.reach(Object::LayerIndex(*diff_id), by);
        if scan.index_packed.contains(diff_id) {
            self.scan_blob(scan, diff_id, by);
        }
        let named = scan
            .index_contents
            .get(diff_id)
            .cloned()
            .unwrap_or_default();
        for content in named {
            scan.reach(Object::FileContent(content), by);
            if !scan.bad_contents.contains(&content) && !self.has_content(&content) {
                scan.bad_contents.insert(content);
                scan.damaged(
                    Object::FileContent(content),
                    self.content_path(&content),
                    "missing".into(),
                );
            }
        }
    }

    fn scan_image(&self, scan: &mut Scan, entry: Descriptor) -> ImageScan {
        let label = Scan::label(&entry);
        let mut image = ImageScan {
            label: label.clone(),
            diff_ids: Vec::new(),
            broken: None,
            entry,
        };
        let digest = image.entry.digest;
        image.broken = self.scan_manifest(scan, &digest, &label, &mut image.diff_ids);
        if image.broken.is_none()
            && let Ok(size) = self.blob_size(&digest)
            && size != image.entry.size
        {
            let reason = format!(
                "index.json records {} bytes for manifest {digest}, which has {size}",
                image.entry.size
            );
            scan.damaged(
                Object::Image(label.clone()),
                self.index_path(),
                reason.clone(),
            );
            image.broken = Some(reason);
        }
        image
    }

    /// Checks a manifest (or an index of them) and what it names; returns
    /// why the image cannot be read, if it cannot.
    fn scan_manifest(
        &self,
        scan: &mut Scan,
        digest: &Digest,
        by: &str,
        diff_ids: &mut Vec<Digest>,
    ) -> Option<String> {
        if let Some(why) = self.scan_blob(scan, digest, by) {
            return Some(why);
        }
        // An intact blob that is not a usable image: the image is broken.
        let unusable = |scan: &mut Scan, reason: String| {
            scan.damaged(
                Object::Image(by.to_string()),
                self.blob_path(digest),
                reason.clone(),
            );
            Some(reason)
        };
        let doc: serde_json::Value = match self.read_json(digest) {
            Ok(v) => v,
            Err(e) => return unusable(scan, e.to_string()),
        };
        let digest_of = |v: &serde_json::Value| {
            v.get("digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Digest>().ok())
        };
        if let Some(children) = doc.get("manifests").and_then(|m| m.as_array()) {
            // A multi-platform index often comes with only some platforms'
            // manifests: an absent one is not damage, a damaged one is.
            let mut broken = None;
            let mut present = 0;
            for child in children.iter().filter_map(digest_of) {
                if !self.has_blob(&child) {
                    continue;
                }
                present += 1;
                broken = broken.or(self.scan_manifest(scan, &child, by, diff_ids));
            }
            if present == 0 {
                return unusable(scan, format!("index {digest} has none of its manifests"));
            }
            return broken;
        }
        let mut broken = None;
        let layers: Vec<Descriptor> = doc
            .get("layers")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        for layer in &layers {
            broken = broken.or(self.scan_blob(scan, &layer.digest, by));
        }
        let Some(config) = doc.get("config").and_then(digest_of) else {
            return unusable(scan, format!("manifest {digest} names no config"));
        };
        if let Some(why) = self.scan_blob(scan, &config, by) {
            return Some(why);
        }
        let cfg: serde_json::Value = match self.read_json(&config) {
            Ok(v) => v,
            Err(e) => return unusable(scan, e.to_string()),
        };
        let ids = cfg.pointer("/rootfs/diff_ids").and_then(|d| d.as_array());
        let ids: Vec<Digest> = ids
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().and_then(|s| s.parse().ok()))
            .collect();
        for (layer, diff_id) in layers.iter().zip(&ids) {
            scan.layers.entry(*diff_id).or_insert_with(|| layer.clone());
            self.scan_layer(scan, diff_id, by);
            diff_ids.push(*diff_id);
        }
        broken
    }
}

/// The loose contents `changes` names (not those in the layer's pack).
pub(super) fn loose_contents(changes: &crate::snapshot::ChangeSet) -> Vec<Digest> {
    changes
        .values()
        .filter_map(|c| match c {
            Change::Put(Node::File(_, f)) if f.at.is_none() => Some(f.digest),
            _ => None,
        })
        .collect()
}

/// The files of `dir` named `<hex digest><suffix>`, with their digests.
pub(super) fn hex_files(dir: &Path, suffix: &str) -> Result<Vec<(Digest, PathBuf)>> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in listing {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(digest) = name
            .strip_suffix(suffix)
            .and_then(|h| Digest::from_hex(h).ok())
        {
            out.push((digest, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}
