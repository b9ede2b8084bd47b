//! `kiln prune`: mark and sweep under the exclusive store lock.
//!
//! Everything reachable from `index.json` is live: manifests, their configs
//! and layers, the layer indexes of the config's diff_ids, and the file
//! contents those indexes name. Everything else in `blobs/`, `kiln/files/`,
//! `kiln/layers/` and `kiln/tmp/` is deleted. Running builds hold the lock
//! shared, so prune waits for them instead of deleting what they write.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::blob::remove_if_exists;
use super::{Result, Store, io_err};
use crate::digest::Digest;
use crate::snapshot::{Change, Node};

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Untagged images removed from the index (with `untagged`).
    pub images: usize,
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
    /// Deletes everything unreachable from the index; with `untagged`, first
    /// drops untagged images from the index.
    pub fn prune(&self, untagged: bool) -> Result<PruneReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = PruneReport::default();
        if untagged {
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
            match self.layer_index(diff_id) {
                Ok(Some(changes)) => {
                    for change in changes.values() {
                        if let Change::Put(Node::File(_, f)) = change {
                            contents.insert(f.digest);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => report.problems.push(e.to_string()),
            }
        }

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
        sweep(
            &self.tmp_dir(),
            |_| false,
            |n, b| {
                report.other += n;
                report.bytes += b;
            },
        )?;
        Ok(report)
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
