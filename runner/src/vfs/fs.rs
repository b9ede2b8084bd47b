//! The [`FileSystem`] trait: what every backend of the VFS provides, and
//! the types its operations use.
//!
//! A backend names its nodes with `u64` ids it chooses (inode numbers for
//! the overlay); ids stay valid across renames and, while a node is open
//! ([`FileSystem::open`]), across unlinks. Operations take a directory id and
//! a single name: path walking, symlinks, `.`/`..` and mounts are the
//! namespace's job ([`super::Vfs`]), not the backend's.

use std::fmt;
use std::sync::Arc;

use super::budget::WriteBudget;
use crate::digest::Digest;

/// Errors, named after the POSIX errno each WASI layer maps them to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// EACCES: permission denied (a read-only file opened for writing...).
    Acces,
    /// EBADF: not open for this kind of access.
    Badf,
    /// EBUSY: a mountpoint cannot be removed or renamed.
    Busy,
    /// EEXIST: the name exists.
    Exist,
    /// EFBIG: a size beyond what a file may have.
    Fbig,
    /// EINVAL: an invalid argument (renaming a dir into itself...).
    Inval,
    /// EIO: the store or the host failed underneath.
    Io,
    /// EISDIR: a directory where a file was needed.
    Isdir,
    /// ELOOP: too many symlinks, or a symlink where none may be followed.
    Loop,
    /// ENAMETOOLONG: a name or path beyond the limits.
    Nametoolong,
    /// ENOENT: no such file or directory.
    Noent,
    /// ENOSPC: a step write limit was hit.
    Nospc,
    /// ENOTDIR: a non-directory where a directory was needed.
    Notdir,
    /// ENOTEMPTY: a directory that must be empty is not.
    Notempty,
    /// ENOTCAPABLE: the path leaves the directory it was resolved from.
    Notcapable,
    /// ENOTSUP: not supported by this backend.
    Notsup,
    /// EPERM: not permitted (unlinking a directory...).
    Perm,
    /// EROFS: a read-only mount.
    Rofs,
    /// EXDEV: a link or rename across mounts.
    Xdev,
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

/// `Result` with [`Errno`].
pub type VfsResult<T> = Result<T, Errno>;

/// The type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// Metadata of a node. Times are nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The backend's device number (distinct per mount).
    pub dev: u64,
    /// The node id within the backend.
    pub ino: u64,
    /// The type.
    pub kind: FileType,
    /// Number of names the node has.
    pub nlink: u64,
    /// Size in bytes (symlinks: length of the target).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last access (kiln does not update it on reads).
    pub atime: i64,
    /// Last data modification.
    pub mtime: i64,
    /// Last status change.
    pub ctime: i64,
}

/// How to change a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// Leave it.
    Keep,
    /// The current time of the step's clock.
    Now,
    /// This many nanoseconds since the epoch.
    At(i64),
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name.
    pub name: String,
    /// The node id in the backend that listed it.
    pub id: u64,
    /// Its type.
    pub kind: FileType,
}

/// A backend of the VFS. See the module docs.
pub trait FileSystem: Send {
    /// The root node.
    fn root(&self) -> u64;
    /// Whether writes are refused with EROFS.
    fn readonly(&self) -> bool;
    /// Metadata of a node.
    fn stat(&mut self, node: u64) -> VfsResult<Stat>;
    /// What kind of node it is: [`FileSystem::stat`]'s `kind`, for a
    /// backend that knows it without asking its host (path walks ask it
    /// at every component).
    fn kind(&mut self, node: u64) -> VfsResult<FileType> {
        Ok(self.stat(node)?.kind)
    }
    /// The child `name` of directory `dir` (no `.`/`..`).
    fn lookup(&mut self, dir: u64, name: &str) -> VfsResult<u64>;
    /// The entries of `dir`, sorted by name (bytewise), without `.`/`..`.
    fn read_dir(&mut self, dir: u64) -> VfsResult<Vec<DirEntry>>;
    /// The target of a symlink.
    fn read_link(&mut self, node: u64) -> VfsResult<String>;
    /// Creates an empty file; EEXIST if `name` exists.
    fn create_file(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64>;
    /// Creates a directory; EEXIST if `name` exists.
    fn mkdir(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64>;
    /// Creates a symlink to `target`; EEXIST if `name` exists.
    fn symlink(&mut self, dir: u64, name: &str, target: &str) -> VfsResult<u64>;
    /// Gives `node` (not a directory) another name.
    fn link(&mut self, node: u64, dir: u64, name: &str) -> VfsResult<()>;
    /// Removes a non-directory name.
    fn unlink(&mut self, dir: u64, name: &str) -> VfsResult<()>;
    /// Removes an empty directory.
    fn rmdir(&mut self, dir: u64, name: &str) -> VfsResult<()>;
    /// Renames with POSIX semantics (replacing a file, or an empty dir).
    fn rename(&mut self, from_dir: u64, from: &str, to_dir: u64, to: &str) -> VfsResult<()>;
    /// Reads at `offset`; 0 at or past the end.
    fn read(&mut self, node: u64, offset: u64, buf: &mut [u8]) -> VfsResult<usize>;
    /// The sha256 of a file's contents when the backend knows it without
    /// reading them (a file of the image, unchanged): a step's program is
    /// then found among those already compiled without being read.
    fn content_digest(&mut self, _node: u64) -> Option<Digest> {
        None
    }
    /// Writes at `offset`, extending the file as needed.
    fn write(&mut self, node: u64, offset: u64, data: &[u8]) -> VfsResult<usize>;
    /// Truncates or extends (with zeros).
    fn set_size(&mut self, node: u64, size: u64) -> VfsResult<()>;
    /// Changes access and modification times.
    fn set_times(&mut self, node: u64, atime: SetTime, mtime: SetTime) -> VfsResult<()>;
    /// Notes that a handle to `node` was opened: an unlinked node stays
    /// readable until the matching [`FileSystem::close`].
    fn open(&mut self, node: u64) -> VfsResult<()>;
    /// Notes that a handle to `node` was closed.
    fn close(&mut self, node: u64);
    /// Makes written data durable (a no-op for memory backends).
    fn sync(&mut self, _node: u64) -> VfsResult<()> {
        Ok(())
    }
    /// Charges what this backend writes to the step's `budget` from now on
    /// (called by the namespace when it mounts the backend). A backend that
    /// cannot be written keeps the default, which ignores it.
    fn share_budget(&mut self, _budget: Arc<WriteBudget>) {}
}
