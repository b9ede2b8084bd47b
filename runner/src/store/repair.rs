//! `kiln check --repair`: acts on what `check.rs` found, under the
//! exclusive store lock.
//!
//! Rebuilt: a damaged layer index, from its layer blob when that is intact;
//! damaged or missing file contents, by reading again an intact layer blob
//! whose index names them (reading a layer stores every file it holds, and
//! storing replaces a damaged copy). Removed: damaged blobs (nothing else
//! holds their bytes), indexes and contents that cannot be rebuilt, cache
//! entries that are unreadable or whose layer is gone, and every
//! `index.json` entry whose image is broken beyond repair; each removal is
//! in the report. An unreadable `index.json` is left as it is: it names
//! every image, so it is for a person to restore.

use std::collections::{BTreeSet, HashMap};

use super::blob::{remove_if_exists, verify_file};
use super::check::{Object, Repair, Scan};
use super::{Result, Store};
use crate::digest::Digest;
use crate::snapshot::{Change, Node};

impl Store {
    pub(super) fn repair(&self, scan: &mut Scan) -> Result<()> {
        let mut repairs = Vec::new();
        // Layers that were read again (their contents are stored anew), and
        // layers that cannot be read at all.
        let mut reread: BTreeSet<Digest> = BTreeSet::new();
        let mut unusable: BTreeSet<Digest> = BTreeSet::new();
        let bad_blobs = scan.bad_blobs.clone();
        let intact = |d: &Digest| !bad_blobs.contains(d) && self.has_blob(d);

        for diff_id in scan.bad_indexes.clone() {
            let object = Object::LayerIndex(diff_id);
            let blob = scan.layers.get(&diff_id).filter(|b| intact(&b.digest));
            let rebuilt = blob.map(|b| {
                crate::layer::read_layer(self, b, &diff_id)
                    .map_err(|e| e.to_string())
                    .and_then(|c| {
                        self.put_layer_index(&diff_id, &c)
                            .map(|()| c)
                            .map_err(|e| e.to_string())
                    })
            });
            match (blob, rebuilt) {
                (Some(b), Some(Ok(changes))) => {
                    scan.index_contents.insert(diff_id, file_digests(&changes));
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

        let mut holders: HashMap<Digest, Vec<Digest>> = HashMap::new();
        for (diff_id, named) in &scan.index_contents {
            for content in named {
                holders.entry(*content).or_default().push(*diff_id);
            }
        }
        for content in scan.bad_contents.clone() {
            let object = Object::FileContent(content);
            let candidates = holders.get(&content).cloned().unwrap_or_default();
            let mut fixed_from = None;
            for diff_id in candidates {
                let Some(blob) = scan.layers.get(&diff_id).filter(|b| intact(&b.digest)) else {
                    continue;
                };
                if !reread.contains(&diff_id) {
                    if crate::layer::read_layer(self, blob, &diff_id).is_err() {
                        continue;
                    }
                    reread.insert(diff_id);
                }
                if verify_file(&self.content_path(&content), &content, None).is_ok() {
                    fixed_from = Some(blob.digest);
                    break;
                }
            }
            match fixed_from {
                Some(blob) => repairs.push(Repair {
                    object,
                    action: format!("rewritten from layer blob {blob}"),
                }),
                None => {
                    let present = self.has_content(&content);
                    remove_if_exists(&self.content_path(&content))?;
                    for diff_id in holders.get(&content).into_iter().flatten() {
                        if scan.layers.contains_key(diff_id) {
                            unusable.insert(*diff_id);
                        }
                    }
                    if present {
                        repairs.push(Repair {
                            object,
                            action: "removed (no intact layer holds it)".into(),
                        });
                    }
                }
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

fn file_digests(changes: &crate::snapshot::ChangeSet) -> Vec<Digest> {
    changes
        .values()
        .filter_map(|c| match c {
            Change::Put(Node::File(_, f)) => Some(f.digest),
            _ => None,
        })
        .collect()
}
