//! The filesystem of an image at one point of a build, and the changes a
//! layer makes to it.
//!
//! A [`Snapshot`] maps every path of the image to a [`Node`] (directory,
//! regular file or symlink with its metadata); file contents live in the
//! store, named by digest ([`FileRef`]), never in a host directory tree. A
//! [`ChangeSet`] is what one instruction did: nodes put, hardlinks made,
//! paths deleted (whiteouts) and directories replaced (opaque). Applying the
//! change sets of an image's layers in order gives its snapshot; writing one
//! gives a layer (see [`crate::layer`]).
//!
//! This module is pure: no I/O.

mod path;
#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;
use std::ops::Bound;

pub use path::{ImagePath, MAX_NAME_BYTES, MAX_PATH_BYTES, PathError};

use crate::digest::Digest;

/// Ownership, permissions and modification time of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// Permission bits, including setuid/setgid/sticky (`0o7777` at most).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

impl Meta {
    /// `mode`, owned by root, at `mtime`.
    pub fn root(mode: u32, mtime: i64) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime,
        }
    }
}

/// The contents of a regular file in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// sha256 of the contents.
    pub digest: Digest,
    /// Length in bytes.
    pub size: u64,
    /// Where the bytes are: inside a layer's uncompressed tar (`Some`), or
    /// a file of their own in the content area (`None`: stores written
    /// before packs, and contents that belong to no layer).
    pub at: Option<Packed>,
}

/// Contents inside a layer's uncompressed tar, the *pack* of the layer:
/// the blob named by its diff_id (for an uncompressed layer, the layer blob
/// itself). Every file of a layer kiln wrote or read is there already, so
/// its bytes are written once, not once more per file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packed {
    /// The layer's diff_id: the digest, and the name, of the pack.
    pub layer: Digest,
    /// Where the file's bytes start in it.
    pub offset: u64,
}

/// Whether some file of `changes` is in a pack.
pub fn packed(changes: &ChangeSet) -> bool {
    changes
        .values()
        .any(|c| matches!(c, Change::Put(Node::File(_, FileRef { at: Some(_), .. }))))
}

impl FileRef {
    /// Contents in a file of their own in the content area.
    pub fn loose(digest: Digest, size: u64) -> FileRef {
        FileRef {
            digest,
            size,
            at: None,
        }
    }
}

/// One path of an image. `C` is how a file's contents are given: a
/// [`FileRef`] in snapshots and layer indexes, something readable when a
/// layer is being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node<C = FileRef> {
    /// A directory.
    Dir(Meta),
    /// A regular file.
    File(Meta, C),
    /// A symbolic link and its target, as written.
    Symlink(Meta, String),
}

impl<C> Node<C> {
    /// The node's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Node::Dir(m) | Node::File(m, _) | Node::Symlink(m, _) => m,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir(_))
    }
}

/// What a layer does to one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<C = FileRef> {
    /// Creates or replaces the path. A directory put over a directory keeps
    /// the lower contents; anything else replaces the whole subtree.
    Put(Node<C>),
    /// A hard link to another path of the same layer.
    Hardlink(ImagePath),
    /// Deletes the path from the lower layers (a `.wh.` whiteout).
    Whiteout,
    /// A directory that hides everything the lower layers had inside it
    /// (`.wh..wh..opq`).
    Opaque(Meta),
}

/// The changes of one layer, in tar order.
pub type ChangeSet<C = FileRef> = BTreeMap<ImagePath, Change<C>>;

/// How many symlinks a path lookup follows before giving up, as Linux's
/// `MAXSYMLINKS`: a loop must end in an error, not hang the build.
pub const MAX_SYMLINK_HOPS: usize = 40;

/// An image's whole filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    nodes: BTreeMap<ImagePath, Node>,
}

/// Why a path could not be resolved in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Too many symlinks (a loop).
    #[error("too many levels of symbolic links resolving {0}")]
    Loop(ImagePath),
    /// A component that is not a directory.
    #[error("{0} is not a directory")]
    NotDir(ImagePath),
    /// A symlink target that is not a valid path.
    #[error("symlink {0}: {1}")]
    BadTarget(ImagePath, PathError),
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::empty()
    }
}

impl Snapshot {
    /// The empty filesystem of `FROM scratch`: just `/`.
    pub fn empty() -> Snapshot {
        let mut nodes = BTreeMap::new();
        nodes.insert(ImagePath::root(), Node::Dir(Meta::root(0o755, 0)));
        Snapshot { nodes }
    }

    /// The node at `path`, without following symlinks.
    pub fn get(&self, path: &ImagePath) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of paths, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Every path and node in tar order (the root first).
    pub fn iter(&self) -> impl Iterator<Item = (&ImagePath, &Node)> {
        self.nodes.iter()
    }

    /// Everything strictly inside `dir`, in order.
    pub fn descendants<'a>(
        &'a self,
        dir: &'a ImagePath,
    ) -> impl Iterator<Item = (&'a ImagePath, &'a Node)> + 'a {
        self.nodes
            .range((Bound::Excluded(dir), Bound::Unbounded))
            .take_while(move |(p, _)| p.starts_with(dir))
    }

    /// The direct children of `dir`, in order. Each child's own subtree is
    /// skipped in one look-up, so listing a directory costs its children,
    /// not everything beneath it (a tree 2,000 levels deep would otherwise
    /// make every level walk all the levels below).
    pub fn children<'a>(
        &'a self,
        dir: &'a ImagePath,
    ) -> impl Iterator<Item = (&'a ImagePath, &'a Node)> + 'a {
        let next_from = move |from: Bound<ImagePath>| {
            self.nodes
                .range((from, Bound::Unbounded))
                .next()
                .filter(|(p, _)| p.starts_with(dir) && *p != dir)
        };
        std::iter::successors(next_from(Bound::Excluded(dir.clone())), move |(p, _)| {
            next_from(Bound::Excluded(p.subtree_end()))
        })
        .filter(move |(p, _)| p.is_child_of(dir))
    }

    /// Resolves symlinks in `path` inside the image (an absolute target means
    /// the image's `/`, `..` stops at `/`), following the last component too
    /// when `follow_last`. The result may not exist.
    pub fn resolve(&self, path: &ImagePath, follow_last: bool) -> Result<ImagePath, LookupError> {
        let mut hops = 0;
        let mut pending: Vec<String> = path.components().rev().map(str::to_string).collect();
        let mut current = ImagePath::root();
        while let Some(name) = pending.pop() {
            let next = match name.as_str() {
                "." | "" => continue,
                ".." => {
                    current = current.parent();
                    continue;
                }
                _ => current.join(&name),
            };
            match self.nodes.get(&next) {
                Some(Node::Symlink(_, target)) if follow_last || !pending.is_empty() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(LookupError::Loop(path.clone()));
                    }
                    if target.starts_with('/') {
                        current = ImagePath::root();
                    }
                    if target.contains('\0') {
                        return Err(LookupError::BadTarget(next, PathError::Nul(target.clone())));
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(Node::Dir(_)) | None => current = next,
                Some(_) if pending.is_empty() => current = next,
                Some(_) => return Err(LookupError::NotDir(next)),
            }
        }
        Ok(current)
    }

    /// The part of this filesystem under directory `dir`, as a filesystem of
    /// its own (`dir` becomes `/`). `None` when `dir` is not a directory.
    pub fn subtree(&self, dir: &ImagePath) -> Option<Snapshot> {
        let Some(Node::Dir(meta)) = self.nodes.get(dir) else {
            return None;
        };
        let mut nodes = BTreeMap::new();
        nodes.insert(ImagePath::root(), Node::Dir(*meta));
        let skip = if dir.is_root() {
            0
        } else {
            dir.as_str().len() + 1
        };
        for (p, n) in self.descendants(dir) {
            nodes.insert(ImagePath(p.as_str()[skip..].to_string()), n.clone());
        }
        Some(Snapshot { nodes })
    }

    /// Applies one layer's changes, the way a container runtime extracts it.
    pub fn apply(&mut self, changes: &ChangeSet) {
        // The parent directory last found (or made) in the snapshot. The
        // changes come in path order, and nothing a later one does removes
        // a directory that sorts before it, so a run of siblings checks
        // their parent once.
        let mut parent = None;
        for (path, change) in changes {
            match change {
                Change::Whiteout => self.remove_tree(path),
                Change::Opaque(meta) => {
                    self.remove_tree(path);
                    self.put_in(path, Node::Dir(*meta), &mut parent);
                }
                Change::Put(node) => {
                    // Only a directory has descendants (every node's
                    // ancestors are directories of the snapshot); a
                    // directory put over one keeps them, anything else put
                    // over one drops them.
                    let old = self.put_in(path, node.clone(), &mut parent);
                    if !node.is_dir() && old.as_ref().is_some_and(Node::is_dir) {
                        self.remove_descendants(path);
                    }
                }
                Change::Hardlink(target) => {
                    if let Some(node) = self.nodes.get(target).cloned() {
                        self.remove_tree(path);
                        self.put_in(path, node, &mut parent);
                    }
                }
            }
        }
    }

    /// Inserts a node, creating missing parent directories (owned by root,
    /// 0755) the way tar extraction does.
    #[cfg(test)]
    fn put(&mut self, path: &ImagePath, node: Node) {
        self.put_in(path, node, &mut None);
    }

    /// Inserts a node, creating missing parent directories (owned by root,
    /// 0755) the way tar extraction does, where `known` is a directory of the snapshot (or
    /// `None`): a path inside it needs no look-up of its parents, and a
    /// path elsewhere leaves its own parent there. Gives back the node
    /// that was at `path`.
    fn put_in(
        &mut self,
        path: &ImagePath,
        node: Node,
        known: &mut Option<ImagePath>,
    ) -> Option<Node> {
        if path.is_root() {
            return match node {
                Node::Dir(meta) => self.nodes.insert(ImagePath::root(), Node::Dir(meta)),
                _ => self.nodes.get(path).cloned(),
            };
        }
        let parent = path.parent_str();
        if known.as_ref().is_none_or(|k| k.as_str() != parent) {
            self.make_parents(path, node.meta().mtime);
            *known = Some(ImagePath(parent.to_string()));
        }
        self.nodes.insert(path.clone(), node)
    }

    /// Makes the missing parent directories of `path`, with `mtime`.
    fn make_parents(&mut self, path: &ImagePath, mtime: i64) {
        // Every node's ancestors are directories of the snapshot, so the
        // first existing directory on the way up ends the search: a change
        // set in path order checks one parent per directory, and a tree
        // 2,000 levels deep costs 2,000 look-ups, not 2,000 per entry.
        let mut missing = Vec::new();
        let mut ancestor = path.parent();
        while !ancestor.is_root() && !matches!(self.nodes.get(&ancestor), Some(Node::Dir(_))) {
            let up = ancestor.parent();
            missing.push(ancestor);
            ancestor = up;
        }
        for ancestor in missing.into_iter().rev() {
            self.remove_tree(&ancestor);
            self.nodes
                .insert(ancestor, Node::Dir(Meta::root(0o755, mtime)));
        }
    }

    /// Removes `path` and everything inside it (never the root itself).
    fn remove_tree(&mut self, path: &ImagePath) {
        self.remove_descendants(path);
        if !path.is_root() {
            self.nodes.remove(path);
        }
    }

    /// Removes everything inside `path`.
    fn remove_descendants(&mut self, path: &ImagePath) {
        let doomed: Vec<ImagePath> = self.descendants(path).map(|(p, _)| p.clone()).collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::parse(s).unwrap()
    }

    #[test]
    fn children_skip_whole_subtrees_and_keep_their_order() {
        let mut s = Snapshot::empty();
        for path in ["a/b/c/d", "a/b-c", "a-b/x", "a/bc", "a0", "b"] {
            s.put(&p(path), Node::Dir(Meta::root(0o755, 0)));
        }
        let kids = |d: &str| -> Vec<String> {
            s.children(&p(d))
                .map(|(c, _)| c.as_str().to_string())
                .collect()
        };
        assert_eq!(kids("/"), ["a", "a-b", "a0", "b"]);
        assert_eq!(kids("a"), ["a/b", "a/b-c", "a/bc"]);
        assert_eq!(kids("a/b"), ["a/b/c"]);
        assert!(kids("b").is_empty());
    }

    #[test]
    fn a_tree_thousands_of_levels_deep_applies_level_by_level() {
        // Each put looks up one parent, not every ancestor: 2,000 levels
        // (the most a 4 KiB path holds) apply in milliseconds, not hours.
        let mut changes = ChangeSet::new();
        let mut path = ImagePath::root();
        for _ in 0..2_000 {
            path = path.join("a");
            changes.insert(path.clone(), Change::Put(Node::Dir(Meta::root(0o755, 0))));
        }
        let mut s = Snapshot::empty();
        s.apply(&changes);
        assert_eq!(s.children(&p("a/a")).count(), 1);
        assert!(s.get(&path).is_some());
    }

    fn file(n: u8) -> Node {
        Node::File(Meta::root(0o644, 0), FileRef::loose(Digest::of(&[n]), 1))
    }

    fn dir() -> Node {
        Node::Dir(Meta::root(0o755, 0))
    }

    fn paths(s: &Snapshot) -> Vec<&str> {
        s.iter().map(|(p, _)| p.as_str()).collect()
    }

    #[test]
    fn apply_creates_parents_and_replaces() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("a/b/f"), Change::Put(file(1)));
        c.insert(p("x"), Change::Put(file(2)));
        s.apply(&c);
        assert_eq!(paths(&s), vec!["", "a", "a/b", "a/b/f", "x"]);
        // A file over a directory replaces the whole subtree.
        let mut c = ChangeSet::new();
        c.insert(p("a"), Change::Put(file(3)));
        s.apply(&c);
        assert_eq!(paths(&s), vec!["", "a", "x"]);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_content() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        for f in ["d/1", "d/2", "d/sub/3", "e/4"] {
            c.insert(p(f), Change::Put(file(1)));
        }
        s.apply(&c);
        let mut c = ChangeSet::new();
        c.insert(p("d/1"), Change::Whiteout);
        c.insert(p("e"), Change::Opaque(Meta::root(0o700, 0)));
        c.insert(p("e/new"), Change::Put(file(9)));
        s.apply(&c);
        assert_eq!(
            paths(&s),
            vec!["", "d", "d/2", "d/sub", "d/sub/3", "e", "e/new"]
        );
        assert_eq!(s.get(&p("e")).unwrap().meta().mode, 0o700);
    }

    #[test]
    fn dir_over_dir_keeps_children() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("d/f"), Change::Put(file(1)));
        s.apply(&c);
        let mut c = ChangeSet::new();
        c.insert(p("d"), Change::Put(Node::Dir(Meta::root(0o711, 5))));
        s.apply(&c);
        assert_eq!(paths(&s), vec!["", "d", "d/f"]);
        assert_eq!(s.get(&p("d")).unwrap().meta().mode, 0o711);
    }

    #[test]
    fn hardlinks_copy_the_target_node() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("a"), Change::Put(file(7)));
        c.insert(p("b"), Change::Hardlink(p("a")));
        s.apply(&c);
        assert_eq!(s.get(&p("b")), s.get(&p("a")));
    }

    #[test]
    fn subtrees_are_rerooted() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("opt/tools/bin/x"), Change::Put(file(1)));
        c.insert(p("opt/other"), Change::Put(file(2)));
        s.apply(&c);
        let sub = s.subtree(&p("opt/tools")).unwrap();
        assert_eq!(paths(&sub), vec!["", "bin", "bin/x"]);
        assert!(s.subtree(&p("opt/other")).is_none());
        assert_eq!(s.subtree(&ImagePath::root()).unwrap(), s);
    }

    #[test]
    fn children_are_direct_only() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("d/x/deep"), Change::Put(file(1)));
        c.insert(p("d/y"), Change::Put(file(1)));
        c.insert(p("d-z"), Change::Put(dir()));
        s.apply(&c);
        let d = p("d");
        let kids: Vec<&str> = s.children(&d).map(|(p, _)| p.as_str()).collect();
        assert_eq!(kids, vec!["d/x", "d/y"]);
    }

    #[test]
    fn resolves_symlinks_inside_the_image() {
        let mut s = Snapshot::empty();
        let mut c = ChangeSet::new();
        c.insert(p("usr/local/bin"), Change::Put(dir()));
        c.insert(
            p("bin"),
            Change::Put(Node::Symlink(Meta::root(0o777, 0), "usr/local/bin".into())),
        );
        c.insert(
            p("abs"),
            Change::Put(Node::Symlink(Meta::root(0o777, 0), "/../../usr".into())),
        );
        c.insert(
            p("loop"),
            Change::Put(Node::Symlink(Meta::root(0o777, 0), "loop".into())),
        );
        c.insert(p("f"), Change::Put(file(1)));
        s.apply(&c);
        assert_eq!(
            s.resolve(&p("bin/tool"), true).unwrap(),
            p("usr/local/bin/tool")
        );
        assert_eq!(s.resolve(&p("abs/local"), true).unwrap(), p("usr/local"));
        assert_eq!(s.resolve(&p("bin"), false).unwrap(), p("bin"));
        assert!(matches!(
            s.resolve(&p("loop/x"), true),
            Err(LookupError::Loop(_))
        ));
        assert!(matches!(
            s.resolve(&p("f/x"), true),
            Err(LookupError::NotDir(_))
        ));
    }
}
