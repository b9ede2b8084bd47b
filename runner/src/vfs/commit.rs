//! From a step's overlay to the change set of its layer.
//!
//! Only directories the step loaded can hold changes, so the walk follows
//! loaded directories and compares each with the lower snapshot:
//! - a lower name that is gone is a whiteout;
//! - an inode at the path it was loaded from, unchanged, is nothing;
//!   changed, it is put again (a directory only when its metadata changed);
//! - anything else at a path (new, moved here, or replacing what the lower
//!   layer had) is put with everything under it; a directory replacing a
//!   lower directory is opaque, so nothing of the old one shows through;
//! - directories kiln made for mountpoints appear only if the step put real
//!   files in them; mounted content never appears.
//!
//! An inode put at several paths (hard links) is written once, at its first
//! path in tar order, and linked from the others.

use std::collections::HashMap;

use super::fs::VfsResult;
use super::overlay::{Inode, Kind, OverlayFs};
use crate::layer::{Content, PendingChanges};
use crate::snapshot::{Change, ImagePath, Meta, Node};

enum Emit {
    Put(u64),
    Opaque(u64),
    Whiteout,
}

fn meta_of(n: &Inode) -> Meta {
    Meta {
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        mtime: n.mtime.div_euclid(1_000_000_000),
    }
}

impl OverlayFs {
    /// The change set of everything the step did. See the module docs.
    pub fn changes(&mut self) -> VfsResult<PendingChanges> {
        let mut emitted: Vec<(ImagePath, Emit)> = Vec::new();
        self.diff_dir(
            super::fs::FileSystem::root(self),
            ImagePath::root(),
            &mut emitted,
        )?;
        emitted.sort_by(|a, b| a.0.cmp(&b.0));

        let mut first_path: HashMap<u64, ImagePath> = HashMap::new();
        let mut out = PendingChanges::new();
        for (path, emit) in emitted {
            let change = match emit {
                Emit::Whiteout => Change::Whiteout,
                Emit::Opaque(id) => Change::Opaque(meta_of(&self.nodes[&id])),
                Emit::Put(id) => {
                    let node = &self.nodes[&id];
                    let is_file = matches!(node.kind, Kind::File { .. });
                    if is_file && let Some(first) = first_path.get(&id) {
                        Change::Hardlink(first.clone())
                    } else {
                        if is_file {
                            first_path.insert(id, path.clone());
                        }
                        let meta = meta_of(node);
                        Change::Put(match &node.kind {
                            Kind::Dir { .. } => Node::Dir(meta),
                            Kind::File { data } => Node::File(meta, data.layer_content()?),
                            Kind::Symlink { target } => Node::Symlink(meta, target.clone()),
                        })
                    }
                }
            };
            out.insert(path, change);
        }
        Ok(out)
    }

    /// A directory that is the lower directory at `path`.
    fn diff_dir(
        &mut self,
        id: u64,
        path: ImagePath,
        out: &mut Vec<(ImagePath, Emit)>,
    ) -> VfsResult<()> {
        let node = &self.nodes[&id];
        if !path.is_root()
            && let Some(Node::Dir(lower_meta)) = self.lower().get(&path)
            && meta_of(node) != *lower_meta
        {
            out.push((path.clone(), Emit::Put(id)));
        }
        let entries: Vec<(String, u64)> = match &node.kind {
            Kind::Dir { entries: Some(e) } => e.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            _ => return Ok(()),
        };
        let lower_names: Vec<String> = self
            .lower()
            .children(&path)
            .map(|(p, _)| p.name().to_string())
            .collect();
        for name in lower_names {
            if !entries.iter().any(|(n, _)| *n == name) {
                out.push((path.join(&name), Emit::Whiteout));
            }
        }
        for (name, child) in entries {
            self.diff_child(child, path.join(&name), out)?;
        }
        Ok(())
    }

    fn diff_child(
        &mut self,
        id: u64,
        path: ImagePath,
        out: &mut Vec<(ImagePath, Emit)>,
    ) -> VfsResult<()> {
        let node = &self.nodes[&id];
        if node.synthetic {
            if matches!(node.kind, Kind::Dir { .. }) {
                // Only what the step itself put inside makes it real.
                let mut inner = Vec::new();
                self.emit_contents(id, &path, &mut inner)?;
                if !inner.is_empty() {
                    out.push((path, Emit::Put(id)));
                    out.extend(inner);
                }
            }
            return Ok(());
        }
        let same = node.origin.as_ref() == Some(&path);
        match &node.kind {
            Kind::Dir { .. } if same => self.diff_dir(id, path, out),
            Kind::Dir { .. } => {
                let replaces_dir = matches!(self.lower().get(&path), Some(Node::Dir(_)));
                out.push((
                    path.clone(),
                    if replaces_dir {
                        Emit::Opaque(id)
                    } else {
                        Emit::Put(id)
                    },
                ));
                self.emit_contents(id, &path, out)
            }
            _ if same && !node.data_dirty && !node.meta_dirty => Ok(()),
            _ => {
                out.push((path, Emit::Put(id)));
                Ok(())
            }
        }
    }

    /// Everything inside directory `id`, which is new at `path`.
    fn emit_contents(
        &mut self,
        id: u64,
        path: &ImagePath,
        out: &mut Vec<(ImagePath, Emit)>,
    ) -> VfsResult<()> {
        let children: Vec<(String, u64)> = self
            .entries(id)?
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (name, child) in children {
            let child_path = path.join(&name);
            let node = &self.nodes[&child];
            if node.synthetic {
                self.diff_child(child, child_path, out)?;
                continue;
            }
            let is_dir = matches!(node.kind, Kind::Dir { .. });
            out.push((child_path.clone(), Emit::Put(child)));
            if is_dir {
                self.emit_contents(child, &child_path, out)?;
            }
        }
        Ok(())
    }

    /// Content of a file node, for tests and `kiln run` checks.
    pub fn content_of(&self, id: u64) -> Option<VfsResult<Content>> {
        match &self.nodes.get(&id)?.kind {
            Kind::File { data } => Some(data.layer_content()),
            _ => None,
        }
    }
}
