//! `kiln check --repair`: acts on what `check.rs` found, under the
//! exclusive store lock.
//!
//! Rebuilt: a damaged layer index, and a damaged or missing pack, from the
//! layer blob when that is intact (reading a layer writes its pack and
//! index anew, replacing a damaged copy); a layer whose index names damaged
//! or missing loose contents is read again the same way, after which its
//! index names its pack instead. Removed: damaged blobs (nothing else
//! holds their bytes), indexes and contents that cannot be rebuilt, cache
//! entries that are unreadable or whose layer is gone, and every
//! `index.json` entry whose image is broken beyond repair; each removal is
//! in the report. An unreadable `index.json` is left as it is: it names
//! every image, so it is for a person to restore.

use std::collections::{BTreeSet, HashMap};

use super::blob::remove_if_exists;
use super::check::{Object, Repair, Scan, loose_contents};
use super::{Descriptor, Result, Store};
use crate::digest::Digest;
use crate::snapshot::ChangeSet;

impl Store {
    /// Reads layer `blob` again (writing its pack anew) and saves the
    /// index that gives.
    fn reindex(&self, blob: &Descriptor, diff_id: &Digest) -> Result<ChangeSet, String> {
        let changes = crate::layer::read_layer(self, blob, diff_id).map_err(|e| e.to_string())?;
        self.put_layer_index(diff_id, &changes)
            .map_err(|e| e.to_string())?;
        Ok(changes)
    }

    pub(super) fn repair(&self, scan: &mut Scan) -> Result<()> {
        let mut repairs = Vec::new();
        // Layers that were read again (their packs and indexes written
        // anew), and layers that cannot be read at all.
        let mut reread: BTreeSet<Digest> = BTreeSet::new();
        let mut unusable: BTreeSet<Digest> = BTreeSet::new();
        let bad_blobs = scan.bad_blobs.clone();
        let intact = |d: &Digest| !bad_blobs.contains(d) && self.has_blob(d);

        for diff_id in scan.bad_indexes.clone() {
            let object = Object::LayerIndex(diff_id);
            let blob = scan.layers.get(&diff_id).filter(|b| intact(&b.digest));
            let rebuilt = blob.map(|b| self.reindex(b, &diff_id));
            match (blob, rebuilt) {
                (Some(b), Some(Ok(changes))) => {
                    scan.index_contents
                        .insert(diff_id, loose_contents(&changes));
                    reread.insert(diff_id);
                    repairs.push(Repair {
                        object,
                        action: format!("rebuilt from layer blob {}", b.digest),
                    });
                }
                (_, rebuilt) => {
                    remove_if_exists(&self.layer_index_path(&diff_id))?;
                    let why = match rebuilt {
                        Some(Err(e)) => format!("its layer cannot be read: {e}"),
                        _ => "no intact layer blob to rebuild it from".into(),
                    };
                    if scan.layers.contains_key(&diff_id) {
                        unusable.insert(diff_id);
                    }
                    repairs.push(Repair {
                        object,
                        action: format!("removed ({why})"),
                    });
                }
            }
        }

        // A damaged or missing pack (the uncompressed tar beside a
        // compressed layer) is written again from its layer blob.
        for digest in scan.bad_blobs.clone() {
            let Some(layer) = scan
                .layers
                .get(&digest)
                .filter(|l| l.digest != digest && intact(&l.digest))
            else {
                continue;
            };
            if reread.contains(&digest) || self.reindex(layer, &digest).is_ok() {
                reread.insert(digest);
                scan.bad_blobs.remove(&digest);
                repairs.push(Repair {
                    object: Object::Blob(digest),
                    action: format!("rewritten from layer blob {}", layer.digest),
                });
            }
        }

        // Loose contents (stores of format 1): a layer that names damaged
        // ones is read again, which puts its files in a pack and its index
        // no longer names them.
        let mut holders: HashMap<Digest, Vec<Digest>> = HashMap::new();
        for (diff_id, named) in &scan.index_contents {
            for content in named {
                holders.entry(*content).or_default().push(*diff_id);
            }
        }
        for content in scan.bad_contents.clone() {
            let object = Object::FileContent(content);
            let mut from = Vec::new();
            let mut lost = false;
            for diff_id in holders.get(&content).into_iter().flatten() {
                let layer = scan.layers.get(diff_id);
                if reread.contains(diff_id) {
                    from.extend(layer.map(|b| b.digest.to_string()));
                    continue;
                }
                match layer {
                    Some(blob) if intact(&blob.digest) && self.reindex(blob, diff_id).is_ok() => {
                        reread.insert(*diff_id);
                        from.push(blob.digest.to_string());
                    }
                    Some(_) => {
                        lost = true;
                        unusable.insert(*diff_id);
                    }
                    // An index nothing uses: prune removes it.
                    None => {}
                }
            }
            let present = self.has_content(&content);
            remove_if_exists(&self.content_path(&content))?;
            let action = if lost {
                "removed (no intact layer holds it)".to_string()
            } else if from.is_empty() {
                "removed (nothing uses it)".to_string()
            } else {
                format!(
                    "removed: layer blob {} read again into a pack, which holds it now",
                    from.join(", ")
                )
            };
            if present || !from.is_empty() || lost {
                repairs.push(Repair { object, action });
            }
        }

        for digest in scan.bad_blobs.clone() {
            if self.has_blob(&digest) {
                self.discard_blob(&digest)?;
                repairs.push(Repair {
                    object: Object::Blob(digest),
                    action: "removed (its bytes exist nowhere else; a rebuild writes it again)"
                        .into(),
                });
            }
        }

        let mut broken: Vec<(String, String)> = Vec::new();
        for image in &mut scan.images {
            if image.broken.is_none()
                && let Some(d) = image.diff_ids.iter().find(|d| unusable.contains(*d))
            {
                image.broken = Some(format!("layer {d} cannot be read"));
            }
            if let Some(why) = &image.broken {
                broken.push((image.label.clone(), why.clone()));
            }
        }
        if !broken.is_empty() {
            let labels: BTreeSet<&String> = broken.iter().map(|(l, _)| l).collect();
            self.update_index(|index| {
                index
                    .manifests
                    .retain(|d| !labels.contains(&Scan::label(d)));
                Ok(())
            })?;
            for (label, why) in broken {
                repairs.push(Repair {
                    object: Object::Image(label),
                    action: format!("removed: its image is broken beyond repair ({why})"),
                });
            }
        }

        for entry in &scan.entries {
            let layer_gone = entry.diff_id.is_some_and(|d| unusable.contains(&d));
            if entry.broken || layer_gone {
                self.remove_step_entry(&entry.key)?;
                repairs.push(Repair {
                    object: Object::CacheEntry(entry.key),
                    action: "removed (the step runs again when next built)".into(),
                });
            }
        }

        if let Some(e) = &scan.index_error {
            scan.report.unrepaired.push(format!(
                "index.json cannot be read ({e}); kiln does not rewrite it because it names every image: restore it from a backup, or remove it to start with no tags"
            ));
        }
        scan.report.repairs = repairs;
        Ok(())
    }
}
