//! [`Vfs`]: the handle through which a step's programs reach its one
//! namespace. The programs of a shell pipeline run at the same time, each
//! in its own wasm instance on its own thread, and see the same files: each
//! holds a handle ([`Vfs::share`]), and every call locks the namespace for
//! that call only. No lock is held between calls, so a program blocked on
//! a pipe never keeps another from its files; an uncontended lock costs
//! tens of nanoseconds, nothing beside a WASI call.
//!
//! The methods are the namespace's (`mod.rs`), one lock each.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    FileType, LimitHit, Namespace, NodeRef, OpenFlags, OverlayFs, Scope, SetTime, Stat, VfsResult,
    WriteBudget, WriteLimits,
};
use crate::snapshot::ImagePath;

/// The namespace a step sees. See the module docs.
pub struct Vfs {
    namespace: Arc<Mutex<Namespace>>,
    /// The namespace's budget, read without the lock.
    budget: Arc<WriteBudget>,
}

/// Forwards each method to the locked namespace.
macro_rules! forward {
    ($( $(#[$doc:meta])* fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?; )*) => {
        $(
            $(#[$doc])*
            #[allow(clippy::too_many_arguments)]
            pub fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
                self.lock().$name($($arg),*)
            }
        )*
    };
}

impl Vfs {
    /// A namespace whose root is `overlay`, with no write limits until
    /// [`Vfs::set_write_limits`].
    pub fn new(overlay: OverlayFs) -> Vfs {
        let namespace = Namespace::new(overlay);
        let budget = Arc::clone(namespace.budget_arc());
        Vfs {
            namespace: Arc::new(Mutex::new(namespace)),
            budget,
        }
    }

    /// Another handle on the same namespace, for a program running beside
    /// this one.
    pub fn share(&self) -> Vfs {
        Vfs {
            namespace: Arc::clone(&self.namespace),
            budget: Arc::clone(&self.budget),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Namespace> {
        // A panic under the lock is a bug already reported; the namespace
        // itself is never left half-changed by one call's unwinding in a
        // way later calls could not handle, so carry on.
        self.namespace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the step's write limits: what every backend of the namespace
    /// writes together (the root, tmpfs, cache, read-write binds).
    pub fn set_write_limits(&mut self, limits: WriteLimits) {
        self.budget.set_limits(limits);
    }

    /// The step's write limit that a write ran into, if any.
    pub fn limit_hit(&self) -> Option<LimitHit> {
        self.budget.hit()
    }

    /// The step's budget (what it has written so far).
    pub fn budget(&self) -> &WriteBudget {
        &self.budget
    }

    /// The root overlay (its changes become the layer), locked while the
    /// guard lives.
    pub fn overlay(&mut self) -> impl DerefMut<Target = OverlayFs> + '_ {
        OverlayGuard(self.lock())
    }

    /// Whether backend `index` is mounted read-only.
    pub fn readonly(&mut self, index: usize) -> bool {
        self.lock().fs(index).readonly()
    }

    forward! {
        /// The root directory of the namespace.
        fn root(&mut self) -> NodeRef;
        /// Attaches `backend` at the absolute `path` (see `Namespace::mount`).
        fn mount(&mut self, path: &ImagePath, backend: Box<dyn super::FileSystem>, is_dir: bool) -> VfsResult<NodeRef>;
        /// Resolves `path` relative to `base`.
        fn resolve(&mut self, base: NodeRef, scope: Scope, path: &str, follow: bool) -> VfsResult<NodeRef>;
        /// Resolves everything but the last component of `path`.
        fn resolve_parent(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<(NodeRef, String, bool)>;
        /// Metadata of a node.
        fn stat(&mut self, node: NodeRef) -> VfsResult<Stat>;
        /// Metadata at a path.
        fn stat_at(&mut self, base: NodeRef, scope: Scope, path: &str, follow: bool) -> VfsResult<Stat>;
        /// Opens (and with `create`, creates) the node at `path`; the
        /// caller must [`Vfs::close`] it.
        fn open_at(&mut self, base: NodeRef, scope: Scope, path: &str, flags: OpenFlags) -> VfsResult<NodeRef>;
        /// Takes another open reference to `node`.
        fn retain(&mut self, node: NodeRef) -> VfsResult<()>;
        /// Releases an open reference.
        fn close(&mut self, node: NodeRef);
        /// Reads at `offset`.
        fn read(&mut self, node: NodeRef, offset: u64, buf: &mut [u8]) -> VfsResult<usize>;
        /// The digest of a file's contents, when known without reading them.
        fn content_digest(&mut self, node: NodeRef) -> Option<crate::digest::Digest>;
        /// Writes at `offset`.
        fn write(&mut self, node: NodeRef, offset: u64, data: &[u8]) -> VfsResult<usize>;
        /// Truncates or extends.
        fn set_size(&mut self, node: NodeRef, size: u64) -> VfsResult<()>;
        /// Changes times.
        fn set_times(&mut self, node: NodeRef, atime: SetTime, mtime: SetTime) -> VfsResult<()>;
        /// Changes times at a path.
        fn set_times_at(&mut self, base: NodeRef, scope: Scope, path: &str, follow: bool, atime: SetTime, mtime: SetTime) -> VfsResult<()>;
        /// Syncs a node's data.
        fn sync(&mut self, node: NodeRef) -> VfsResult<()>;
        /// The entries of a directory, sorted by name, mounts entered.
        fn read_dir(&mut self, dir: NodeRef) -> VfsResult<Vec<(String, NodeRef, FileType)>>;
        /// The target of the symlink at `path`.
        fn read_link_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<String>;
        /// Creates a directory.
        fn mkdir_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()>;
        /// Removes an empty directory.
        fn rmdir_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()>;
        /// Removes a name that is not a directory.
        fn unlink_at(&mut self, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()>;
        /// Creates a symlink at `path` pointing to `target`.
        fn symlink_at(&mut self, target: &str, base: NodeRef, scope: Scope, path: &str) -> VfsResult<()>;
        /// Creates a hard link.
        fn link_at(&mut self, from_base: NodeRef, from_scope: Scope, from: &str, follow: bool, to_base: NodeRef, to_scope: Scope, to: &str) -> VfsResult<()>;
        /// Renames.
        fn rename_at(&mut self, from_base: NodeRef, from_scope: Scope, from: &str, to_base: NodeRef, to_scope: Scope, to: &str) -> VfsResult<()>;
    }
}

/// The overlay, with the namespace locked.
struct OverlayGuard<'a>(MutexGuard<'a, Namespace>);

impl Deref for OverlayGuard<'_> {
    type Target = OverlayFs;

    fn deref(&self) -> &OverlayFs {
        self.0.overlay_ref()
    }
}

impl DerefMut for OverlayGuard<'_> {
    fn deref_mut(&mut self) -> &mut OverlayFs {
        self.0.overlay()
    }
}
