//! `kiln prune`: mark and sweep under the exclusive store lock.
//!
//! Everything reachable from `index.json` is live: manifests, their configs
//! and layers, the layer indexes of the config's diff_ids, and the file
//! contents those indexes name. So is what the step cache (`kiln/steps/`)
//! names: each entry's layer blob, its index and contents. First the cache
//! is trimmed: `--all` drops every entry, `--keep-storage SIZE` drops the
//! least recently used entries until what only the cache holds fits in
//! SIZE, and entries whose layer is gone are dropped always. Everything
//! else in `blobs/`, `kiln/files/`, `kiln/layers/` and `kiln/tmp/` is
//! deleted. Running builds hold the lock shared, so prune waits for them
//! instead of deleting what they write.

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
    /// Bytes freed.
    pub bytes: u64,
    /// Objects the index refers to that are missing or unreadable.
    pub problems: Vec<String>,
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
        for image in self.images()? {
            self.mark_manifest(
                &image.manifest.digest,
                &mut blobs,
                &mut diff_ids,
                &mut report,
            );
        }
        let mut contents = HashSet::new();
        for diff_id in &diff_ids {
            for (digest, _) in self.index_contents(diff_id, &mut report.problems) {
                contents.insert(digest);
            }
        }
        self.trim_cache(opts, &mut blobs, &mut diff_ids, &mut contents, &mut report)?;

        let root = self.root().to_path_buf();
        sweep(
            &root.join("blobs/sha256"),
            |name| keep(name, &blobs),
            |n, b| {
                report.blobs += n;
                report.bytes += b;
            },
        )?;
        sweep(
            &self.kiln_dir().join("files/sha256"),
            |name| keep(name, &contents),
            |n, b| {
                report.files += n;
                report.bytes += b;
            },
        )?;
        sweep(
            &self.kiln_dir().join("layers/sha256"),
            |name| keep(name.trim_end_matches(".json"), &diff_ids),
            |n, b| {
                report.other += n;
                report.bytes += b;
            },
        )?;
        // Builds wait for the exclusive lock prune holds, so every temp
        // file but this process's own is left from a dead one.
        report.other += self.sweep_temps(true).removed as usize;
        Ok(report)
    }

    /// Drops the cache entries `opts` and their state say to drop, and
    /// marks what the others keep alive.
    fn trim_cache(
        &self,
        opts: PruneOptions,
        blobs: &mut HashSet<Digest>,
        diff_ids: &mut HashSet<Digest>,
        contents: &mut HashSet<Digest>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let mut entries = self.step_entries(&mut report.problems)?;
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
            if let Some((_, diff_id)) = layer
                && !broken
                && !diff_ids.contains(&diff_id)
            {
                for (digest, size) in self.index_contents(&diff_id, &mut report.problems) {
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
        Ok(())
    }

    /// The file contents (digest, size) a layer's index names.
    fn index_contents(&self, diff_id: &Digest, problems: &mut Vec<String>) -> Vec<(Digest, u64)> {
        match self.layer_index(diff_id) {
            Ok(Some(changes)) => changes
                .values()
                .filter_map(|change| match change {
                    Change::Put(Node::File(_, f)) => Some((f.digest, f.size)),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                problems.push(e.to_string());
                Vec::new()
            }
        }
    }

    fn mark_manifest(
        &self,
        digest: &Digest,
        blobs: &mut HashSet<Digest>,
        diff_ids: &mut HashSet<Digest>,
        report: &mut PruneReport,
    ) {
        if !blobs.insert(*digest) {
            return;
        }
        let doc: serde_json::Value = match self.read_json(digest) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(e.to_string());
                return;
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
                self.mark_manifest(&child, blobs, diff_ids, report);
            }
            return;
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
                Err(e) => report.problems.push(e.to_string()),
            }
        }
    }
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
