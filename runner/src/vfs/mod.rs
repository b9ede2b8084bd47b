//! The virtual filesystem a step sees: one namespace over several backends.
//!
//! The root is an [`OverlayFs`] over the image so far; mounts (bind, cache,
//! tmpfs, secrets) are other [`FileSystem`]s attached at directories of it.
//! Both WASI host layers (`wasi::p1` for core modules, `wasi::p2` for
//! components) are thin translations onto [`Vfs`]: it walks paths, follows
//! symlinks inside the VFS only, crosses mounts, and enforces the scope of
//! directory handles:
//!
//! - A handle with [`Scope::Clamp`] (the preopened `/`) behaves like a
//!   container root: `..` at `/` stays at `/`, and an absolute symlink
//!   target means the image's `/`, never the host's.
//! - A handle with [`Scope::Deny`] (any other directory handle) is a WASI
//!   capability for its subtree: a path or symlink that would leave it fails
//!   with [`Errno::Notcapable`].
//! - Path arguments are always relative; an absolute one is `Notcapable`.
//!
//! Nothing here touches the host except through a backend.
//!
//! The namespace owns the step's [`WriteBudget`] and shares it with every
//! backend it holds, so `--step-max-write`/`--step-max-files` bound what a
//! step writes anywhere, mounts included (`budget.rs`).

mod budget;
mod commit;
pub mod content;
mod fs;
mod handles;
pub mod host;
mod overlay;
mod secretfs;
mod shared;
pub mod spill;
mod tmpfs;

use std::collections::HashMap;
use std::sync::Arc;

pub use budget::{LimitHit, WriteBudget, WriteLimits};
pub use fs::{DirEntry, Errno, FileSystem, FileType, SetTime, Stat, VfsResult};
pub use handles::MAX_CONTENT_HANDLES;
pub use host::HostFs;
pub use overlay::OverlayFs;
pub use secretfs::{SecretFile, SecretFs};
pub use shared::Vfs;
pub use tmpfs::{DEFAULT_TMPFS_SIZE, tmpfs};

use crate::snapshot::{ImagePath, MAX_PATH_BYTES, MAX_SYMLINK_HOPS};

/// The step's clock for file times: nanoseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    })
}

/// A node in the namespace: which backend, and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// Index of the backend (0 is the root overlay).
    pub fs: usize,
    /// The backend's node id.
    pub id: u64,
}

/// How far a directory handle reaches. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The image root: `..` stops at `/`, absolute symlinks restart at `/`.
    Clamp,
    /// A capability for one subtree: leaving it is `Notcapable`.
    Deny,
}

/// How [`Vfs::open_at`] opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Create the file if missing.
    pub create: bool,
    /// With `create`: fail if it exists.
    pub exclusive: bool,
    /// Truncate to zero length.
    pub truncate: bool,
    /// Must be a directory.
    pub directory: bool,
    /// Follow a symlink in the last component.
    pub follow: bool,
    /// Will be written (refused on directories and read-only mounts).
    pub write: bool,
}

/// The namespace. See the module docs. Reached through [`Vfs`], the handle
/// the instances of one step share (`shared.rs`).
pub(crate) struct Namespace {
    overlay: OverlayFs,
    mounted: Vec<Box<dyn FileSystem>>,
    /// Mountpoint node (in its parent backend) -> backend index.
    mounts: HashMap<NodeRef, usize>,
    /// What the step may still write, shared by every backend.
    budget: Arc<WriteBudget>,
}

/// A path split for walking.
struct Parsed<'p> {
    components: Vec<&'p str>,
    trailing_slash: bool,
}

fn parse(path: &str) -> VfsResult<Parsed<'_>> {
    if path.is_empty() {
        return Err(Errno::Noent);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(Errno::Nametoolong);
    }
    if path.contains('\0') {
        return Err(Errno::Inval);
    }
    if path.starts_with('/') {
        return Err(Errno::Notcapable);
    }
    Ok(Parsed {
        components: path.split('/').filter(|c| !c.is_empty()).collect(),
        trailing_slash: path.ends_with('/'),
    })
}

/// The path that a symlink with `target`, found as the last component of
/// `path`, stands for: `target` in place of that component, or for an
/// absolute target, `target` from the root (only a [`Scope::Clamp`] handle
/// is the root; a [`Scope::Deny`] one cannot follow it).
fn redirect(path: &str, target: &str, scope: Scope) -> VfsResult<String> {
    if target.is_empty() {
        return Err(Errno::Noent);
    }
    if let Some(rest) = target.strip_prefix('/') {
        if scope == Scope::Deny {
            return Err(Errno::Notcapable);
        }
        let rest = rest.trim_start_matches('/');
        return Ok(if rest.is_empty() {
            ".".into()
        } else {
            rest.into()
        });
    }
    Ok(match path.trim_end_matches('/').rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{target}"),
        None => target.to_string(),
    })
}

impl Namespace {
    /// A namespace whose root is `overlay`, with no write limits until
    /// [`Vfs::set_write_limits`].
    pub(super) fn new(mut overlay: OverlayFs) -> Namespace {
        let budget = Arc::new(WriteBudget::new(WriteLimits::default()));
        overlay.share_budget(Arc::clone(&budget));
        Namespace {
            overlay,
            mounted: Vec::new(),
            mounts: HashMap::new(),
            budget,
        }
    }

    /// The step's budget, shared with every backend.
    pub(super) fn budget_arc(&self) -> &Arc<WriteBudget> {
        &self.budget
    }

    /// The root overlay (its changes become the layer).
    pub(super) fn overlay(&mut self) -> &mut OverlayFs {
        &mut self.overlay
    }

    /// The root overlay, to read.
    pub(super) fn overlay_ref(&self) -> &OverlayFs {
        &self.overlay
    }

    /// The backend `index`.
    pub(super) fn fs(&mut self, index: usize) -> &mut dyn FileSystem {
        if index == 0 {
            &mut self.overlay
        } else {
            &mut *self.mounted[index - 1]
        }
    }

    fn enter(&mut self, node: NodeRef) -> NodeRef {
        match self.mounts.get(&node) {
            Some(&m) => NodeRef {
                fs: m,
                id: self.fs(m).root(),
            },
            None => node,
        }
    }

    /// The root directory of the namespace.
    pub(super) fn root(&mut self) -> NodeRef {
        let r = NodeRef {
            fs: 0,
            id: self.overlay.root(),
        };
        self.enter(r)
    }

    /// Attaches `backend` at the absolute `path`, creating the mountpoint
    /// (and its parents) in the overlay as directories that are never part
    /// of the layer by themselves. `is_dir` says whether the backend's root
    /// is a directory.
    pub(super) fn mount(
        &mut self,
        path: &ImagePath,
        backend: Box<dyn FileSystem>,
        is_dir: bool,
    ) -> VfsResult<NodeRef> {
        let mut backend = backend;
        backend.share_budget(Arc::clone(&self.budget));
        self.mounted.push(backend);
        let index = self.mounted.len();
        let mut at = NodeRef {
            fs: 0,
            id: self.overlay.root(),
        };
        let names: Vec<&str> = path.components().collect();
        for (i, name) in names.iter().enumerate() {
            let here = self.enter(at);
            if here.fs != 0 {
                return Err(Errno::Xdev);
            }
            let last = i + 1 == names.len();
            let id = self.overlay.mountpoint(here.id, name, !last || is_dir)?;
            at = NodeRef { fs: 0, id };
        }
        if self.mounts.contains_key(&at) {
            return Err(Errno::Busy);
        }
        self.mounts.insert(at, index);
        Ok(NodeRef {
            fs: index,
            id: self.mounted[index - 1].root(),
        })
    }

    /// The child `name` of directory `dir`, entering mounts.
    fn child(&mut self, dir: NodeRef, name: &str) -> VfsResult<NodeRef> {
        let id = self.fs(dir.fs).lookup(dir.id, name)?;
        Ok(self.enter(NodeRef { fs: dir.fs, id }))
    }

    /// Walks `components` from `base`, following symlinks (the last one only
    /// with `follow_last`). Returns the node and its parent chain.
    fn walk(
        &mut self,
        base: NodeRef,
        scope: Scope,
        components: Vec<String>,
        follow_last: bool,
    ) -> VfsResult<Vec<NodeRef>> {
        let mut stack = vec![base];
        // Remaining components, last at the end of the vector's front...
        let mut pending: Vec<String> = components.into_iter().rev().collect();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            let cur = *stack.last().expect("never empty");
            match name.as_str() {
                "" | "." => {
                    if self.fs(cur.fs).kind(cur.id)? != FileType::Dir {
                        return Err(Errno::Notdir);
                    }
                    continue;
                }
                ".." => {
                    if self.fs(cur.fs).kind(cur.id)? != FileType::Dir {
                        return Err(Errno::Notdir);
                    }
                    if stack.len() > 1 {
                        stack.pop();
                    } else if scope == Scope::Deny {
                        return Err(Errno::Notcapable);
                    }
                    continue;
                }
                _ => {}
            }
            if self.fs(cur.fs).kind(cur.id)? != FileType::Dir {
                return Err(Errno::Notdir);
            }
            let next = self.child(cur, &name)?;
            let is_last = pending.is_empty();
            let kind = self.fs(next.fs).kind(next.id)?;
            if kind == FileType::Symlink && (!is_last || follow_last) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(Errno::Loop);
                }
                let target = self.fs(next.fs).read_link(next.id)?;
                if target.is_empty() {
                    return Err(Errno::Noent);
                }
                if target.starts_with('/') {
                    match scope {
                        Scope::Deny => return Err(Errno::Notcapable),
                        Scope::Clamp => stack.truncate(1),
                    }
                }
                let mut parts: Vec<String> = target.split('/').map(str::to_string).collect();
                // A trailing slash in the target means "a directory".
                if target.ends_with('/') {
                    parts.push(".".into());
                }
                pending.extend(parts.into_iter().rev());
                continue;
            }
            stack.push(next);
        }
        Ok(stack)
    }

    /// Resolves `path` relative to `base`.
    pub(super) fn resolve(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
        follow: bool,
    ) -> VfsResult<NodeRef> {
        let parsed = parse(path)?;
        let mut comps: Vec<String> = parsed.components.iter().map(|s| s.to_string()).collect();
        if parsed.trailing_slash {
            comps.push(".".into());
        }
        let stack = self.walk(base, scope, comps, follow || parsed.trailing_slash)?;
        Ok(*stack.last().expect("never empty"))
    }

    /// Resolves everything but the last component of `path`: the directory
    /// and the final name (`.`/`..` included as written). The boolean is
    /// whether the path had a trailing slash.
    pub(super) fn resolve_parent(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
    ) -> VfsResult<(NodeRef, String, bool)> {
        let parsed = parse(path)?;
        let Some((last, dirs)) = parsed.components.split_last() else {
            // "/" or "///": the base itself, named ".".
            return Ok((base, ".".into(), true));
        };
        let dirs: Vec<String> = dirs.iter().map(|s| s.to_string()).collect();
        let stack = self.walk(base, scope, dirs, true)?;
        let dir = *stack.last().expect("never empty");
        if self.fs(dir.fs).kind(dir.id)? != FileType::Dir {
            return Err(Errno::Notdir);
        }
        if *last == ".." && stack.len() == 1 && scope == Scope::Deny {
            return Err(Errno::Notcapable);
        }
        Ok((dir, last.to_string(), parsed.trailing_slash))
    }

    /// Metadata of a node.
    pub(super) fn stat(&mut self, node: NodeRef) -> VfsResult<Stat> {
        self.fs(node.fs).stat(node.id)
    }

    /// The kind of a node (its [`Stat::kind`], often known without a stat).
    pub(super) fn kind(&mut self, node: NodeRef) -> VfsResult<FileType> {
        self.fs(node.fs).kind(node.id)
    }

    /// Metadata at a path.
    pub(super) fn stat_at(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
        follow: bool,
    ) -> VfsResult<Stat> {
        let n = self.resolve(base, scope, path, follow)?;
        self.stat(n)
    }

    /// Opens (and with `create`, creates) the node at `path`. The caller
    /// owns one open reference and must [`Vfs::close`] it.
    pub(super) fn open_at(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
        flags: OpenFlags,
    ) -> VfsResult<NodeRef> {
        let node = if flags.create {
            self.create_at(base, scope, path, flags)?
        } else {
            let n = self.resolve(base, scope, path, flags.follow)?;
            if !flags.follow && self.kind(n)? == FileType::Symlink {
                return Err(Errno::Loop);
            }
            n
        };
        let kind = self.kind(node)?;
        if flags.directory && kind != FileType::Dir {
            return Err(Errno::Notdir);
        }
        if kind == FileType::Dir && (flags.write || flags.truncate) {
            return Err(Errno::Isdir);
        }
        if (flags.write || flags.truncate) && self.fs(node.fs).readonly() {
            return Err(Errno::Rofs);
        }
        if flags.truncate && kind == FileType::File {
            self.fs(node.fs).set_size(node.id, 0)?;
        }
        self.fs(node.fs).open(node.id)?;
        Ok(node)
    }

    /// The `create` half of [`Vfs::open_at`], as Linux `open(O_CREAT)`: a
    /// trailing slash or an existing directory is `Isdir`, and a symlink in
    /// the last component (when followed) is followed even if dangling, so
    /// the file is created where it points.
    fn create_at(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
        flags: OpenFlags,
    ) -> VfsResult<NodeRef> {
        if flags.directory {
            // open(O_CREAT | O_DIRECTORY) makes no directory.
            return Err(Errno::Inval);
        }
        let mut path = path.to_string();
        let mut hops = 0;
        loop {
            let (dir, name, trailing) = self.resolve_parent(base, scope, &path)?;
            if trailing {
                return Err(Errno::Isdir);
            }
            if name == "." || name == ".." {
                return Err(if flags.exclusive {
                    Errno::Exist
                } else {
                    Errno::Isdir
                });
            }
            match self.child(dir, &name) {
                Ok(existing) => {
                    if flags.exclusive {
                        return Err(Errno::Exist);
                    }
                    match self.kind(existing)? {
                        FileType::File => return Ok(existing),
                        FileType::Dir => return Err(Errno::Isdir),
                        FileType::Symlink if !flags.follow => return Err(Errno::Loop),
                        FileType::Symlink => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return Err(Errno::Loop);
                            }
                            let target = self.fs(existing.fs).read_link(existing.id)?;
                            path = redirect(&path, &target, scope)?;
                        }
                    }
                }
                Err(Errno::Noent) => {
                    if self.fs(dir.fs).readonly() {
                        return Err(Errno::Rofs);
                    }
                    let id = self.fs(dir.fs).create_file(dir.id, &name, 0o644)?;
                    return Ok(NodeRef { fs: dir.fs, id });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes another open reference to `node` (a duplicated handle).
    pub(super) fn retain(&mut self, node: NodeRef) -> VfsResult<()> {
        self.fs(node.fs).open(node.id)
    }

    /// Releases an open reference.
    pub(super) fn close(&mut self, node: NodeRef) {
        self.fs(node.fs).close(node.id);
    }

    /// Reads at `offset`.
    pub(super) fn read(&mut self, node: NodeRef, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        self.fs(node.fs).read(node.id, offset, buf)
    }

    /// The digest of a file's contents, when known without reading them.
    pub(super) fn content_digest(&mut self, node: NodeRef) -> Option<crate::digest::Digest> {
        self.fs(node.fs).content_digest(node.id)
    }

    /// Writes at `offset`.
    pub(super) fn write(&mut self, node: NodeRef, offset: u64, data: &[u8]) -> VfsResult<usize> {
        self.fs(node.fs).write(node.id, offset, data)
    }

    /// Truncates or extends.
    pub(super) fn set_size(&mut self, node: NodeRef, size: u64) -> VfsResult<()> {
        self.fs(node.fs).set_size(node.id, size)
    }

    /// Changes times.
    pub(super) fn set_times(
        &mut self,
        node: NodeRef,
        atime: SetTime,
        mtime: SetTime,
    ) -> VfsResult<()> {
        self.fs(node.fs).set_times(node.id, atime, mtime)
    }

    /// Changes times at a path.
    pub(super) fn set_times_at(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
        follow: bool,
        atime: SetTime,
        mtime: SetTime,
    ) -> VfsResult<()> {
        let n = self.resolve(base, scope, path, follow)?;
        self.set_times(n, atime, mtime)
    }

    /// Syncs a node's data.
    pub(super) fn sync(&mut self, node: NodeRef) -> VfsResult<()> {
        self.fs(node.fs).sync(node.id)
    }

    /// The entries of a directory, sorted by name, mounts entered.
    pub(super) fn read_dir(&mut self, dir: NodeRef) -> VfsResult<Vec<(String, NodeRef, FileType)>> {
        let entries = self.fs(dir.fs).read_dir(dir.id)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let node = self.enter(NodeRef {
                fs: dir.fs,
                id: e.id,
            });
            let kind = if node.fs == dir.fs {
                e.kind
            } else {
                self.kind(node)?
            };
            out.push((e.name, node, kind));
        }
        Ok(out)
    }

    /// The target of the symlink at `path`.
    pub(super) fn read_link_at(
        &mut self,
        base: NodeRef,
        scope: Scope,
        path: &str,
    ) -> VfsResult<String> {
        let n = self.resolve(base, scope, path, false)?;
        if self.kind(n)? != FileType::Symlink {
            return Err(Errno::Inval);
        }
        self.fs(n.fs).read_link(n.id)
    }

    /// Creates a directory at `path`.
    pub(super) fn mkdir_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()> {
        let (dir, name, _) = self.resolve_parent(base, scope, path)?;
        if name == "." || name == ".." {
            return Err(Errno::Exist);
        }
        if self.child(dir, &name).is_ok() {
            return Err(Errno::Exist);
        }
        self.fs(dir.fs).mkdir(dir.id, &name, 0o755).map(drop)
    }

    /// Removes the empty directory at `path`.
    pub(super) fn rmdir_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()> {
        let (dir, name, _) = self.resolve_parent(base, scope, path)?;
        match name.as_str() {
            "." => return Err(Errno::Inval),
            ".." => return Err(Errno::Notempty),
            _ => {}
        }
        let target = self.child(dir, &name)?;
        if target.fs != dir.fs {
            return Err(Errno::Busy);
        }
        self.fs(dir.fs).rmdir(dir.id, &name)
    }

    /// Removes the non-directory at `path`.
    pub(super) fn unlink_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()> {
        let (dir, name, trailing) = self.resolve_parent(base, scope, path)?;
        if name == "." || name == ".." {
            return Err(Errno::Isdir);
        }
        let target = self.child(dir, &name)?;
        if target.fs != dir.fs {
            return Err(Errno::Busy);
        }
        let kind = self.kind(target)?;
        if trailing {
            return Err(if kind == FileType::Dir {
                Errno::Isdir
            } else {
                Errno::Notdir
            });
        }
        self.fs(dir.fs).unlink(dir.id, &name)
    }

    /// Creates a symlink at `path` pointing to `target`. Through a
    /// [`Scope::Deny`] handle, absolute targets are refused (they would
    /// leave the capability).
    pub(super) fn symlink_at(
        &mut self,
        target: &str,
        base: NodeRef,
        scope: Scope,
        path: &str,
    ) -> VfsResult<()> {
        if scope == Scope::Deny && target.starts_with('/') {
            return Err(Errno::Perm);
        }
        let (dir, name, trailing) = self.resolve_parent(base, scope, path)?;
        if name == "." || name == ".." {
            return Err(Errno::Exist);
        }
        if self.child(dir, &name).is_ok() {
            return Err(Errno::Exist);
        }
        if trailing {
            return Err(Errno::Noent);
        }
        self.fs(dir.fs).symlink(dir.id, &name, target).map(drop)
    }

    /// Gives the node at `from` (followed when `follow`) the name `to`.
    #[allow(
        clippy::too_many_arguments,
        reason = "linkat(2): two (directory, scope, path) triples and the follow flag"
    )]
    pub(super) fn link_at(
        &mut self,
        from_base: NodeRef,
        from_scope: Scope,
        from: &str,
        follow: bool,
        to_base: NodeRef,
        to_scope: Scope,
        to: &str,
    ) -> VfsResult<()> {
        let src = self.resolve(from_base, from_scope, from, follow)?;
        if self.kind(src)? == FileType::Dir {
            return Err(Errno::Perm);
        }
        let (dir, name, trailing) = self.resolve_parent(to_base, to_scope, to)?;
        if name == "." || name == ".." || self.child(dir, &name).is_ok() {
            return Err(Errno::Exist);
        }
        if trailing {
            return Err(Errno::Noent);
        }
        if src.fs != dir.fs {
            return Err(Errno::Xdev);
        }
        self.fs(dir.fs).link(src.id, dir.id, &name)
    }

    /// Renames `from` to `to` with POSIX semantics.
    pub(super) fn rename_at(
        &mut self,
        from_base: NodeRef,
        from_scope: Scope,
        from: &str,
        to_base: NodeRef,
        to_scope: Scope,
        to: &str,
    ) -> VfsResult<()> {
        let (sdir, sname, strail) = self.resolve_parent(from_base, from_scope, from)?;
        let (ddir, dname, dtrail) = self.resolve_parent(to_base, to_scope, to)?;
        if sname == "." || sname == ".." || dname == "." || dname == ".." {
            return Err(Errno::Busy);
        }
        let src = self.child(sdir, &sname)?;
        if src.fs != sdir.fs {
            return Err(Errno::Busy);
        }
        let src_kind = self.kind(src)?;
        if (strail || dtrail) && src_kind != FileType::Dir {
            return Err(Errno::Notdir);
        }
        if let Ok(dst) = self.child(ddir, &dname)
            && dst.fs != ddir.fs
        {
            return Err(Errno::Busy);
        }
        if sdir.fs != ddir.fs {
            return Err(Errno::Xdev);
        }
        self.fs(sdir.fs).rename(sdir.id, &sname, ddir.id, &dname)
    }
}

#[cfg(test)]
mod tests;
