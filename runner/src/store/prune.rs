//! `kiln prune`: mark and sweep under the exclusive store lock.
//!
//! Everything reachable from `index.json` is live: manifests, their configs
//! and layers, the layer indexes and packs of the config's diff_ids, and
//! the loose file contents those indexes name. So is what the step cache
//! (`kiln/steps/`) names: each entry's layer blob, its index, pack and
//! contents. First the cache
//! is trimmed: `--all` drops every entry, `--keep-storage SIZE` drops the
//! least recently used entries until what only the cache holds fits in
//! SIZE, and entries whose layer is gone are dropped always. Everything
//! else in `blobs/`, `kiln/files/`, `kiln/layers/` and `kiln/tmp/` is
//! deleted. Running builds hold the lock shared, so prune waits for them
//! instead of deleting what they write.
//!
//! A damaged store never makes prune delete what is in use: when a
//! manifest, config, layer index or cache entry cannot be read, what it
//! refers to is unknown, so the kinds of object it could name are not swept
//! at all; each such skip is a warning in the report (`kiln check
//! --repair` fixes the cause).
//!
//! `--all` also deletes the cache mount directories (`kiln/cache/<id>`);
//! [`Store::prune_cache_mounts`] deletes only those. Builds and `kiln run`
//! hold the store lock shared while they use a cache mount, so neither
//! ever loses a directory it is using.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::blob::remove_if_exists;
use super::{Result, Store, io_err};
use crate::digest::Digest;
use crate::snapshot::{Change, Node};

/// What to prune besides what nothing refers to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneOptions {
    /// Drop untagged images from the index first.
    pub untagged: bool,
    /// Drop every step cache entry.
    pub all_cache: bool,
    /// Keep at most this many bytes that only the step cache holds,
    /// dropping the least recently used entries first.
    pub keep_storage: Option<u64>,
    /// Delete the cache mount directories (`RUN --mount=type=cache`).
    pub cache_mounts: bool,
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Untagged images removed from the index (with `untagged`).
    pub images: usize,
    /// Step cache entries dropped.
    pub cache_entries: usize,
    /// Blobs deleted.
    pub blobs: usize,
    /// File contents deleted.
    pub files: usize,
    /// Layer indexes and temp files deleted.
    pub other: usize,
    /// Cache mount directories deleted.
    pub cache_mounts: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// Objects the index refers to that are missing or unreadable, and
    /// what was kept because of them.
    pub problems: Vec<String>,
}

/// Which kinds of object some unreadable document might refer to: those
/// are kept whole, since what is in use among them is unknown.
#[derive(Debug, Default, Clone, Copy)]
struct Unknown {
    blobs: bool,
    layer_indexes: bool,
    contents: bool,
}

impl Unknown {
    fn all() -> Unknown {
        Unknown {
            blobs: true,
            layer_indexes: true,
            contents: true,
        }
    }

    fn add(&mut self, other: Unknown) {
        self.blobs |= other.blobs;
        self.layer_indexes |= other.layer_indexes;
        self.contents |= other.contents;
    }
}

impl Store {
    /// Deletes everything unreachable from the index and the step cache,
    /// after trimming them as `opts` says.
    pub fn prune(&self, opts: PruneOptions) -> Result<PruneReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = PruneReport::default();
        if opts.untagged {
            self.update_index(|index| {
                let before = index.manifests.len();
                index.manifests.retain(|d| d.ref_name().is_some());
                report.images = before - index.manifests.len();
                Ok(())
            })?;
        }

        let mut blobs = HashSet::new();
        let mut diff_ids = HashSet::new();
        let mut unknown = Unknown::default();
        for image in self.images()? {
            unknown.add(self.mark_manifest(
                &image.manifest.digest,
                0,
                &mut blobs,
                &mut diff_ids,
                &mut report,
            ));
        }
        let mut contents = HashSet::new();
        for diff_id in &diff_ids {
            match self.index_contents(diff_id, &mut report.problems) {
                Some(named) => contents.extend(named.into_iter().map(|(d, _)| d)),
                None => unknown.contents = true,
            }
        }
        unknown.add(self.trim_cache(
            opts,
            &mut blobs,
            &mut diff_ids,
            &mut contents,
            &mut report,
        )?);
        if opts.cache_mounts {
            self.sweep_cache_mounts(&mut report)?;
        }

        // A layer's pack is the blob named by its diff_id. When which
        // layers are in use is unknown, every index stays, and so does
        // every pack of one.
        blobs.extend(diff_ids.iter().copied());
        if unknown.layer_indexes {
            let indexes = super::check::hex_files(&self.kiln_dir().join("layers/sha256"), ".json")?;
            blobs.extend(indexes.into_iter().map(|(diff_id, _)| diff_id));
        }
        let root = self.root().to_path_buf();
        let kept = |what: &str| {
            format!(
                "kept every {what}: something that may use them could not be read (see above; `kiln check --repair` repairs the store)"
            )
        };
        if unknown.blobs {
            report.problems.push(kept("blob"));
        } else {
            sweep(
                &root.join("blobs/sha256"),
                |name| keep(name, &blobs),
                |n, b| {
                    report.blobs += n;
                    report.bytes += b;
                },
            )?;
            // The notes of blobs checked whole (store/verified.rs).
            sweep(
                &self.kiln_dir().join("verified"),
                |name| keep(name, &blobs),
                |n, b| {
                    report.other += n;
                    report.bytes += b;
                },
            )?;
        }
        if unknown.contents {
            report.problems.push(kept("file content"));
        } else {
            sweep(
                &self.kiln_dir().join("files/sha256"),
                |name| keep(name, &contents),
                |n, b| {
                    report.files += n;
                    report.bytes += b;
                },
            )?;
        }
        if unknown.layer_indexes {
            report.problems.push(kept("layer index"));
        } else {
            sweep(
                &self.kiln_dir().join("layers/sha256"),
                |name| keep(name.trim_end_matches(".json"), &diff_ids),
                |n, b| {
                    report.other += n;
                    report.bytes += b;
                },
            )?;
        }
        // Builds wait for the exclusive lock prune holds, so every temp
        // file but this process's own is left from a dead one.
        report.other += self.sweep_temps(true).removed as usize;
        Ok(report)
    }

    /// Deletes only the cache mount directories (`kiln/cache/<id>`), like
    /// `docker builder prune --filter type=exec.cachemount`.
    pub fn prune_cache_mounts(&self) -> Result<PruneReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = PruneReport::default();
        self.sweep_cache_mounts(&mut report)?;
        Ok(report)
    }

    /// Deletes every cache mount directory; the caller holds the lock.
    fn sweep_cache_mounts(&self, report: &mut PruneReport) -> Result<()> {
        let dir = self.kiln_dir().join("cache");
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        for entry in listing {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let path = entry.path();
            let bytes = tree_size(&path);
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(io_err("removing", &path))?;
            report.cache_mounts += 1;
            report.bytes += bytes;
        }
        Ok(())
    }

    /// Drops the cache entries `opts` and their state say to drop, and
    /// marks what the others keep alive. Returns what is unknown because
    /// an entry or a layer index could not be read.
    fn trim_cache(
        &self,
        opts: PruneOptions,
        blobs: &mut HashSet<Digest>,
        diff_ids: &mut HashSet<Digest>,
        contents: &mut HashSet<Digest>,
        report: &mut PruneReport,
    ) -> Result<Unknown> {
        let before = report.problems.len();
        let mut entries = self.step_entries(&mut report.problems)?;
        // An entry that cannot be read may name any layer.
        let mut unknown = if report.problems.len() > before {
            Unknown::all()
        } else {
            Unknown::default()
        };
        // Most recently used first: those are kept when space is short.
        entries.sort_by(|(ka, a), (kb, b)| b.used.cmp(&a.used).then(ka.cmp(kb)));
        let mut cache_only = 0u64;
        for (key, entry) in entries {
            let layer = match (&entry.layer, entry.diff_id) {
                (Some(l), Some(d)) => Some((l, d)),
                (None, None) => None,
                _ => {
                    self.remove_step_entry(&key)?;
                    report.cache_entries += 1;
                    continue;
                }
            };
            let broken = layer.is_some_and(|(l, d)| {
                !self.has_blob(&l.digest) || !self.layer_index_path(&d).is_file()
            });
            let mut extra = 0u64;
            let mut new_contents = Vec::new();
            if let Some((l, _)) = layer
                && !blobs.contains(&l.digest)
            {
                extra += l.size;
            }
            // The pack beside a compressed layer (an uncompressed layer is
            // its own).
            if let Some((l, d)) = layer
                && l.digest != d
                && !diff_ids.contains(&d)
            {
                extra += self.blob_size(&d).unwrap_or(0);
            }
            if let Some((_, diff_id)) = layer
                && !broken
                && !diff_ids.contains(&diff_id)
            {
                let named = self.index_contents(&diff_id, &mut report.problems);
                if named.is_none() {
                    unknown.contents = true;
                }
                for (digest, size) in named.unwrap_or_default() {
                    if !contents.contains(&digest) && !new_contents.contains(&digest) {
                        extra += size;
                        new_contents.push(digest);
                    }
                }
            }
            let over = opts
                .keep_storage
                .is_some_and(|limit| cache_only.saturating_add(extra) > limit);
            if broken || opts.all_cache || over {
                self.remove_step_entry(&key)?;
                report.cache_entries += 1;
                continue;
            }
            cache_only += extra;
            if let Some((l, d)) = layer {
                blobs.insert(l.digest);
                diff_ids.insert(d);
            }
            contents.extend(new_contents);
        }
        Ok(unknown)
    }

    /// The loose file contents (digest, size) a layer's index names (a
    /// packed file's bytes are in the layer's pack); `None` when the index
    /// cannot be read. A layer without an index names none: its contents
    /// are read from its blob when it is next used.
    fn index_contents(
        &self,
        diff_id: &Digest,
        problems: &mut Vec<String>,
    ) -> Option<Vec<(Digest, u64)>> {
        match self.layer_index(diff_id) {
            Ok(Some(changes)) => Some(
                changes
                    .values()
                    .filter_map(|change| match change {
                        Change::Put(Node::File(_, f)) if f.at.is_none() => Some((f.digest, f.size)),
                        _ => None,
                    })
                    .collect(),
            ),
            Ok(None) => Some(Vec::new()),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        }
    }

    /// Marks a manifest (or index) and what it names; returns what is
    /// unknown because a document could not be read.
    fn mark_manifest(
        &self,
        digest: &Digest,
        depth: usize,
        blobs: &mut HashSet<Digest>,
        diff_ids: &mut HashSet<Digest>,
        report: &mut PruneReport,
    ) -> Unknown {
        let mut unknown = Unknown::default();
        if !blobs.insert(*digest) {
            return unknown;
        }
        // Indexes nested deeper than kiln ever reads them: keep everything
        // rather than recurse without bound.
        if depth > crate::image::MAX_INDEX_DEPTH {
            report.problems.push(format!(
                "index {digest} is nested more than {} levels deep",
                crate::image::MAX_INDEX_DEPTH
            ));
            return Unknown::all();
        }
        let doc: serde_json::Value = match self.read_json(digest) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(e.to_string());
                return Unknown::all();
            }
        };
        let digest_of = |v: &serde_json::Value| {
            v.get("digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Digest>().ok())
        };
        // An index: recurse into its manifests.
        if let Some(children) = doc.get("manifests").and_then(|m| m.as_array()) {
            for child in children.iter().filter_map(digest_of) {
                unknown.add(self.mark_manifest(&child, depth + 1, blobs, diff_ids, report));
            }
            return unknown;
        }
        for layer in doc
            .get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(d) = digest_of(layer) {
                blobs.insert(d);
            }
        }
        if let Some(config) = doc.get("config").and_then(digest_of) {
            blobs.insert(config);
            match self.read_json::<serde_json::Value>(&config) {
                Ok(cfg) => {
                    let ids = cfg.pointer("/rootfs/diff_ids").and_then(|d| d.as_array());
                    for id in ids.into_iter().flatten() {
                        if let Some(d) = id.as_str().and_then(|s| s.parse().ok()) {
                            diff_ids.insert(d);
                        }
                    }
                }
                Err(e) => {
                    report.problems.push(e.to_string());
                    unknown.layer_indexes = true;
                    unknown.contents = true;
                }
            }
        }
        unknown
    }
}

/// Bytes of the files under `path` (best effort: for the report only).
fn tree_size(path: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    fs::read_dir(path).map_or(0, |listing| {
        listing
            .filter_map(|e| e.ok())
            .map(|e| tree_size(&e.path()))
            .sum()
    })
}

fn keep(hex_name: &str, live: &HashSet<Digest>) -> bool {
    // Unparseable names are not ours: leave them alone.
    Digest::from_hex(hex_name).map_or(true, |d| live.contains(&d))
}

fn sweep(dir: &Path, keep: impl Fn(&str) -> bool, mut freed: impl FnMut(usize, u64)) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        remove_if_exists(&entry.path())?;
        freed(1, size);
    }
    Ok(())
}
