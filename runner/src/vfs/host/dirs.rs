//! Directory handles a [`super::HostFs`] keeps so that looking a name up
//! in a directory is one `statx` relative to it. Without them every lookup
//! goes through the directory's path from the mount root, which cap-std
//! resolves safely by opening the parent, stating, and closing it: three
//! system calls a component, and a deep walk pays them for every level.
//!
//! A handle belongs to a node (a host inode on Unix), so it stays right
//! when the directory is renamed; every change that could make a node id
//! name another directory (a rename or removal) empties the set, which
//! costs nothing but a reopen.

use cap_std::fs::Dir;

/// At most this many directories are kept open: a walk works down one
/// path at a time, and a step has a few mounts.
const MAX_DIR_HANDLES: usize = 8;

/// The directory handles, most recently used last.
#[derive(Default)]
pub(super) struct Dirs(Vec<(u64, Dir)>);

impl Dirs {
    /// The handle of directory node `id`, opening it with `open` when it
    /// is not kept; `None` when it cannot be opened (the caller falls back
    /// to the path, whose error says why).
    pub(super) fn get(
        &mut self,
        id: u64,
        open: impl FnOnce() -> std::io::Result<Dir>,
    ) -> Option<&Dir> {
        if let Some(at) = self.0.iter().position(|(d, _)| *d == id) {
            let entry = self.0.remove(at);
            self.0.push(entry);
        } else {
            let dir = open().ok()?;
            if self.0.len() == MAX_DIR_HANDLES {
                self.0.remove(0);
            }
            self.0.push((id, dir));
        }
        self.0.last().map(|(_, d)| d)
    }

    /// Forgets every handle (see the module docs).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}
