//! [`HostFs`]: a [`FileSystem`] backend over a directory of the host (the
//! conformance suite's roots, bind mounts of a build context).
//!
//! Everything goes through a cap-std [`Dir`] opened on that directory, so no
//! path can leave it, and HostFs never follows a host symlink itself: nodes
//! are looked up with `symlink_metadata`, symlinks are read with
//! `read_link_contents`, files are opened with `O_NOFOLLOW`, and times are
//! set without following. The namespace ([`super::Vfs`]) follows symlinks
//! with [`FileSystem::read_link`], inside the VFS.
//!
//! Node ids are stable for the life of a HostFs. On Unix a node is the
//! host's (device, inode), so hard links share an id; elsewhere it is the
//! path. The table records each node's current path: renames update it
//! (everything under a renamed directory too), unlinks clear it. While a node
//! is open ([`FileSystem::open`]) it has a host handle, which serves reads
//! and writes without reopening and keeps an unlinked file usable until the
//! last [`FileSystem::close`]. A guest may hold more files open than kiln
//! may open, so file handles of nodes that still have a name are kept in a
//! least-recently-used set of [`MAX_HOST_FILE_HANDLES`] (`host/lru.rs`): an
//! evicted one is reopened by its path (and checked to be the same host
//! file) on its next use. A node about to lose its last name gets its handle
//! back first and keeps it until closed. Directory handles are not evicted:
//! a walk holds one per level.
//!
//! Host errors become [`Errno`]s in `errno` below: by number on Unix, by
//! [`io::ErrorKind`] elsewhere.
//!
//! What the step writes is charged to the step's [`WriteBudget`] once the
//! namespace shares it: the nodes it creates, and the bytes by which files
//! grow. Bytes freed (truncation, the last name of a file removed) are given
//! back, but never more than were charged for that file: a step that
//! deletes what was in a cache before it ran cannot spend that space on new
//! writes.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, SystemTimeSpec};
use cap_std::fs::{Dir, DirBuilder, Metadata, OpenOptions};

use self::sys::errno;
pub(super) use self::sys::{read_full_at, write_all_at};
use super::budget::WriteBudget;
use super::fs::{DirEntry, Errno, FileSystem, FileType, SetTime, Stat, VfsResult};
use crate::snapshot::{MAX_NAME_BYTES, MAX_PATH_BYTES};

const ROOT: u64 = 1;

/// Most host file handles one HostFs keeps for its open nodes that still
/// have a name (unlinked open files keep theirs; the guest's own descriptor
/// limit bounds those). A step has a few mounts, and several steps run at
/// once: 32 each keeps kiln far below a 256-descriptor limit, while a guest
/// interleaving a few dozen open files never waits on a reopen.
pub const MAX_HOST_FILE_HANDLES: usize = 32;

/// What identifies a host node across lookups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// The host's (device, inode): hard links are one node.
    #[cfg(unix)]
    Inode(u64, u64),
    /// The path (hosts without inode numbers for paths).
    #[cfg(not(unix))]
    Path(String),
}

/// A host handle kept while a node is open.
enum Handle {
    File { file: std::fs::File, writable: bool },
    Dir(Dir),
}

struct Node {
    key: Key,
    /// Path relative to the root (`""` is the root); `None` once unlinked.
    path: Option<String>,
    kind: FileType,
    /// A FIFO, socket or device: listed, never opened.
    special: bool,
    /// Host link count when last seen (1 where the host does not say).
    nlink: u64,
    open: u32,
    handle: Option<Handle>,
}

/// A directory of the host as a VFS backend. See the module docs.
pub struct HostFs {
    dir: Dir,
    readonly: bool,
    dev: u64,
    nodes: HashMap<u64, Node>,
    ids: HashMap<Key, u64>,
    next_id: u64,
    /// The step's budget, once the namespace shares it.
    budget: Option<Arc<WriteBudget>>,
    /// Bytes charged to the budget for each node and not yet given back.
    charged: HashMap<u64, u64>,
    /// Open nodes whose file handle may be evicted.
    file_handles: lru::Lru,
    /// Directories kept open for lookups in them (`host/dirs.rs`).
    dirs: dirs::Dirs,
}

fn rel(path: &str) -> &Path {
    Path::new(if path.is_empty() { "." } else { path })
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A name a backend may be asked about: one component, no `.`/`..`.
fn check_name(name: &str) -> VfsResult<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || (cfg!(windows) && (name.contains('\\') || name.contains(':')))
    {
        return Err(Errno::Inval);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Errno::Nametoolong);
    }
    Ok(())
}

fn kind_of(meta: &Metadata) -> (FileType, bool) {
    let t = meta.file_type();
    if t.is_dir() {
        (FileType::Dir, false)
    } else if t.is_symlink() {
        (FileType::Symlink, false)
    } else {
        (FileType::File, !t.is_file())
    }
}

#[cfg(unix)]
fn key_of(meta: &Metadata, _path: &str) -> Key {
    use cap_std::fs::MetadataExt;
    Key::Inode(meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn key_of(_meta: &Metadata, path: &str) -> Key {
    Key::Path(path.to_string())
}

#[cfg(unix)]
fn nlink_of(meta: &Metadata) -> u64 {
    use cap_std::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn nlink_of(_meta: &Metadata) -> u64 {
    1
}

#[cfg(unix)]
fn mode_of(meta: &Metadata, _kind: FileType) -> u32 {
    use cap_std::fs::MetadataExt;
    meta.mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &Metadata, kind: FileType) -> u32 {
    match kind {
        FileType::Dir => 0o755,
        FileType::Symlink => 0o777,
        FileType::File if meta.permissions().readonly() => 0o444,
        FileType::File => 0o644,
    }
}

fn to_ns(t: io::Result<cap_std::time::SystemTime>) -> i64 {
    match t.map(cap_std::time::SystemTime::into_std) {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        },
        Err(_) => 0,
    }
}

#[cfg(unix)]
fn ctime_of(meta: &Metadata) -> i64 {
    use cap_std::fs::MetadataExt;
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
}

#[cfg(not(unix))]
fn ctime_of(meta: &Metadata) -> i64 {
    to_ns(meta.modified())
}

fn system_time(ns: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn time_spec(t: SetTime) -> Option<SystemTimeSpec> {
    match t {
        SetTime::Keep => None,
        SetTime::Now => Some(SystemTimeSpec::SymbolicNow),
        SetTime::At(ns) => Some(SystemTimeSpec::Absolute(
            cap_std::time::SystemTime::from_std(system_time(ns)),
        )),
    }
}

impl HostFs {
    /// Opens the host directory `dir` as a backend whose [`Stat::dev`] is
    /// `dev`. With `readonly`, every change fails with [`Errno::Rofs`].
    pub fn open(dir: &Path, readonly: bool, dev: u64) -> io::Result<HostFs> {
        let dir = Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
        let meta = dir.dir_metadata()?;
        let key = key_of(&meta, "");
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                key: key.clone(),
                path: Some(String::new()),
                kind: FileType::Dir,
                special: false,
                nlink: nlink_of(&meta),
                open: 0,
                handle: None,
            },
        );
        Ok(HostFs {
            dir,
            readonly,
            dev,
            nodes,
            ids: HashMap::from([(key, ROOT)]),
            next_id: ROOT + 1,
            budget: None,
            charged: HashMap::new(),
            file_handles: lru::Lru::new(MAX_HOST_FILE_HANDLES),
            dirs: dirs::Dirs::default(),
        })
    }

    fn writable(&self) -> VfsResult<()> {
        if self.readonly {
            Err(Errno::Rofs)
        } else {
            Ok(())
        }
    }

    /// Runs `create`, a creation of one node, charged to the budget first
    /// (and given back if it fails).
    fn charged_create<T>(
        &mut self,
        create: impl FnOnce(&mut Self) -> VfsResult<T>,
    ) -> VfsResult<T> {
        if let Some(b) = &self.budget {
            b.charge_file()?;
        }
        let made = create(self);
        if made.is_err()
            && let Some(b) = &self.budget
        {
            b.refund_file();
        }
        made
    }

    /// Charges `n` bytes by which file `id` grows.
    fn charge_bytes(&mut self, id: u64, n: u64) -> VfsResult<()> {
        let Some(b) = &self.budget else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        b.charge_bytes(n)?;
        *self.charged.entry(id).or_default() += n;
        Ok(())
    }

    /// Gives back up to `n` bytes file `id` freed (at most what it was
    /// charged).
    fn refund_bytes(&mut self, id: u64, n: u64) {
        let Some(charged) = self.charged.get_mut(&id) else {
            return;
        };
        let n = n.min(*charged);
        *charged -= n;
        if *charged == 0 {
            self.charged.remove(&id);
        }
        if let Some(b) = &self.budget {
            b.refund_bytes(n);
        }
    }

    /// The current size of file `id`.
    fn size(&self, id: u64) -> VfsResult<u64> {
        Ok(self.meta(id)?.len())
    }

    /// The size of file `id` before a change that may grow it; without a
    /// budget nothing is charged, so the host is not asked (`u64::MAX`).
    fn size_to_charge(&self, id: u64) -> VfsResult<u64> {
        match self.budget {
            Some(_) => self.size(id),
            None => Ok(u64::MAX),
        }
    }

    fn node(&self, id: u64) -> VfsResult<&Node> {
        self.nodes.get(&id).ok_or(Errno::Badf)
    }

    /// The current path of a node that still has a name.
    fn path(&self, id: u64) -> VfsResult<String> {
        self.node(id)?.path.clone().ok_or(Errno::Noent)
    }

    /// The path of directory `dir`'s child `name`.
    fn child_path(&self, dir: u64, name: &str) -> VfsResult<String> {
        check_name(name)?;
        let node = self.node(dir)?;
        if node.kind != FileType::Dir {
            return Err(Errno::Notdir);
        }
        let dir_path = node.path.as_deref().ok_or(Errno::Noent)?;
        Ok(join(dir_path, name))
    }

    fn symlink_metadata(&self, path: &str) -> VfsResult<Metadata> {
        self.dir.symlink_metadata(rel(path)).map_err(errno)
    }

    /// The metadata of `name` in directory `dir`, whose path is `path`
    /// (see [`HostFs::child_path`]): one system call relative to a kept
    /// directory handle (`host/dirs.rs`).
    fn child_metadata(&mut self, dir: u64, name: &str, path: &str) -> VfsResult<Metadata> {
        let handle = if dir == ROOT {
            Some(&self.dir)
        } else {
            let root = &self.dir;
            let dir_path = self.nodes.get(&dir).and_then(|n| n.path.as_deref());
            match dir_path {
                Some(dir_path) => self.dirs.get(dir, || root.open_dir_nofollow(rel(dir_path))),
                None => None,
            }
        };
        match handle {
            Some(handle) => handle.symlink_metadata(name).map_err(errno),
            None => self.symlink_metadata(path),
        }
    }

    /// The id of the node at `path` (described by `meta`), recording the
    /// path as its current one.
    fn register(&mut self, path: String, meta: &Metadata) -> u64 {
        let key = key_of(meta, &path);
        let (kind, special) = kind_of(meta);
        let nlink = nlink_of(meta);
        if let Some(&id) = self.ids.get(&key)
            && let Some(node) = self.nodes.get_mut(&id)
        {
            node.path = Some(path);
            node.kind = kind;
            node.special = special;
            node.nlink = nlink;
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(key.clone(), id);
        self.nodes.insert(
            id,
            Node {
                key,
                path: Some(path),
                kind,
                special,
                nlink,
                open: 0,
                handle: None,
            },
        );
        id
    }

    /// Notes that `path`, a name of node `id` that had `nlink` names, is
    /// gone; the node leaves the table unless it is open or named elsewhere.
    /// What its bytes were charged is given back with its last name, or at
    /// its last close if it is open.
    fn forget_path(&mut self, id: u64, path: &str, nlink: u64) {
        #[cfg(not(unix))]
        self.ids.remove(&Key::Path(path.to_string()));
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.path.as_deref() == Some(path) {
            node.path = None;
            // Nameless: its handle cannot be reopened, so it stays.
            self.file_handles.remove(id);
        }
        node.nlink = nlink.saturating_sub(1);
        if node.nlink == 0 && node.open == 0 {
            self.drop_node(id);
            self.refund_bytes(id, u64::MAX);
        }
    }

    fn drop_node(&mut self, id: u64) {
        if let Some(node) = self.nodes.remove(&id)
            && self.ids.get(&node.key) == Some(&id)
        {
            self.ids.remove(&node.key);
        }
    }

    /// Points every node at or under `from` to the same place under `to`.
    fn moved(&mut self, from: &str, to: &str) {
        let prefix = format!("{from}/");
        #[cfg(not(unix))]
        let mut rekeyed: Vec<(Key, Key, u64)> = Vec::new();
        for (&_id, node) in self.nodes.iter_mut() {
            let Some(path) = node.path.as_deref() else {
                continue;
            };
            let new = if path == from {
                to.to_string()
            } else if let Some(rest) = path.strip_prefix(&prefix) {
                join(to, rest)
            } else {
                continue;
            };
            #[cfg(not(unix))]
            {
                let new_key = Key::Path(new.clone());
                rekeyed.push((
                    std::mem::replace(&mut node.key, new_key.clone()),
                    new_key,
                    _id,
                ));
            }
            node.path = Some(new);
        }
        #[cfg(not(unix))]
        for (old, new, id) in rekeyed {
            if self.ids.get(&old) == Some(&id) {
                self.ids.remove(&old);
            }
            self.ids.insert(new, id);
        }
    }

    fn open_options(read: bool, write: bool) -> OpenOptions {
        let mut opts = OpenOptions::new();
        opts.read(read).write(write).follow(FollowSymlinks::No);
        opts
    }

    /// Opens the host file at `path` (never through a symlink).
    fn open_file(&self, path: &str, write: bool) -> VfsResult<std::fs::File> {
        let file = self
            .dir
            .open_with(rel(path), &Self::open_options(true, write))
            .map_err(errno)?;
        Ok(file.into_std())
    }

    /// Opens the handle an open node keeps: read-write if allowed, else
    /// read-only, else write-only.
    fn open_handle(&self, node: &Node) -> VfsResult<Option<Handle>> {
        let Some(path) = node.path.as_deref() else {
            return Err(Errno::Noent);
        };
        match node.kind {
            FileType::Symlink => Ok(None),
            FileType::Dir => {
                let dir = if path.is_empty() {
                    self.dir.try_clone()
                } else {
                    self.dir.open_dir_nofollow(rel(path))
                };
                Ok(Some(Handle::Dir(dir.map_err(errno)?)))
            }
            FileType::File if node.special => Err(Errno::Notsup),
            FileType::File => {
                let mut modes = vec![(true, false)];
                if !self.readonly {
                    modes.insert(0, (true, true));
                    modes.push((false, true));
                }
                let mut last = Errno::Acces;
                for (read, write) in modes {
                    match self
                        .dir
                        .open_with(rel(path), &Self::open_options(read, write))
                    {
                        Ok(file) => {
                            return Ok(Some(Handle::File {
                                file: file.into_std(),
                                writable: write,
                            }));
                        }
                        Err(e) => last = errno(e),
                    }
                    if !matches!(last, Errno::Acces | Errno::Rofs | Errno::Perm) {
                        break;
                    }
                }
                Err(last)
            }
        }
    }

    /// Runs `op` on a host handle of file `id`: the open node's own, or a
    /// fresh one for a node that is not open.
    fn with_file<T>(
        &mut self,
        id: u64,
        write: bool,
        op: impl FnOnce(&std::fs::File) -> io::Result<T>,
    ) -> VfsResult<T> {
        let node = self.node(id)?;
        match node.kind {
            FileType::Dir => return Err(Errno::Isdir),
            FileType::Symlink => return Err(Errno::Inval),
            FileType::File if node.special => return Err(Errno::Notsup),
            FileType::File => {}
        }
        if node.open > 0 {
            self.hold(id)?;
            if self.file_handles.contains(id) {
                self.track(id);
            }
        }
        let node = self.node(id)?;
        if let Some(Handle::File { file, writable }) = &node.handle {
            if write && !*writable {
                return Err(Errno::Badf);
            }
            return op(file).map_err(errno);
        }
        let path = node.path.clone().ok_or(Errno::Noent)?;
        let file = self.open_file(&path, write)?;
        op(&file).map_err(errno)
    }

    /// Marks open node `id`'s file handle as used, closing the least
    /// recently used one past [`MAX_HOST_FILE_HANDLES`].
    fn track(&mut self, id: u64) {
        if let Some(victim) = self.file_handles.touch(id)
            && let Some(n) = self.nodes.get_mut(&victim)
        {
            n.handle = None;
        }
    }

    /// Gives open node `id` its handle back if it was evicted: reopened by
    /// path, and refused (`Io`) if the host file there is another one now.
    fn hold(&mut self, id: u64) -> VfsResult<()> {
        let node = self.node(id)?;
        if node.open == 0 || node.handle.is_some() || node.kind != FileType::File {
            return Ok(());
        }
        let handle = self.open_handle(node)?;
        #[cfg(unix)]
        if let Some(Handle::File { file, .. }) = &handle {
            let meta = Metadata::from_file(file).map_err(errno)?;
            if key_of(&meta, "") != node.key {
                return Err(Errno::Io);
            }
        }
        let named = node.path.is_some();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.handle = handle;
        }
        if named {
            self.track(id);
        }
        Ok(())
    }

    fn meta(&self, id: u64) -> VfsResult<Metadata> {
        let node = self.node(id)?;
        match (&node.handle, &node.path) {
            (Some(Handle::File { file, .. }), _) => Metadata::from_file(file).map_err(errno),
            (Some(Handle::Dir(dir)), _) => dir.dir_metadata().map_err(errno),
            (None, Some(path)) => self.symlink_metadata(path),
            (None, None) => Err(Errno::Noent),
        }
    }
}

impl FileSystem for HostFs {
    fn root(&self) -> u64 {
        ROOT
    }

    fn readonly(&self) -> bool {
        self.readonly
    }

    fn stat(&mut self, node: u64) -> VfsResult<Stat> {
        let meta = self.meta(node)?;
        let (kind, _) = kind_of(&meta);
        Ok(Stat {
            dev: self.dev,
            ino: node,
            kind,
            nlink: nlink_of(&meta),
            size: meta.len(),
            mode: mode_of(&meta, kind),
            uid: 0,
            gid: 0,
            atime: to_ns(meta.accessed()),
            mtime: to_ns(meta.modified()),
            ctime: ctime_of(&meta),
        })
    }

    fn kind(&mut self, node: u64) -> VfsResult<FileType> {
        // A node's kind never changes: a name that comes to hold another
        // kind of file is another node. A node with neither a name nor a
        // handle is gone, as `stat` would say.
        let node = self.node(node)?;
        if node.path.is_none() && node.handle.is_none() {
            return Err(Errno::Noent);
        }
        Ok(node.kind)
    }

    fn lookup(&mut self, dir: u64, name: &str) -> VfsResult<u64> {
        let path = self.child_path(dir, name)?;
        let meta = self.child_metadata(dir, name, &path)?;
        Ok(self.register(path, &meta))
    }

    fn read_dir(&mut self, dir: u64) -> VfsResult<Vec<DirEntry>> {
        let node = self.node(dir)?;
        if node.kind != FileType::Dir {
            return Err(Errno::Notdir);
        }
        let dir_path = node.path.clone().ok_or(Errno::Noent)?;
        let mut names = Vec::new();
        for entry in self.dir.read_dir(rel(&dir_path)).map_err(errno)? {
            // Names that are not UTF-8 cannot be named by a guest: skipped.
            if let Ok(name) = entry.map_err(errno)?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let path = join(&dir_path, &name);
            let meta = match self.child_metadata(dir, &name, &path) {
                Ok(meta) => meta,
                // Removed since it was listed.
                Err(Errno::Noent) => continue,
                Err(e) => return Err(e),
            };
            let (kind, _) = kind_of(&meta);
            let id = self.register(path, &meta);
            out.push(DirEntry { name, id, kind });
        }
        Ok(out)
    }

    fn read_link(&mut self, node: u64) -> VfsResult<String> {
        if self.node(node)?.kind != FileType::Symlink {
            return Err(Errno::Inval);
        }
        let path = self.path(node)?;
        let target = self.dir.read_link_contents(rel(&path)).map_err(errno)?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| Errno::Inval)
    }

    fn create_file(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64> {
        self.writable()?;
        let path = self.child_path(dir, name)?;
        let mut opts = Self::open_options(false, true);
        opts.create_new(true);
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::mode(&mut opts, mode);
        #[cfg(not(unix))]
        let _ = mode;
        self.charged_create(|fs| {
            let file = fs.dir.open_with(rel(&path), &opts).map_err(errno)?;
            let meta = file.metadata().map_err(errno)?;
            Ok(fs.register(path, &meta))
        })
    }

    fn mkdir(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64> {
        self.writable()?;
        let path = self.child_path(dir, name)?;
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut builder = DirBuilder::new();
        #[cfg(unix)]
        cap_std::fs::DirBuilderExt::mode(&mut builder, mode);
        #[cfg(not(unix))]
        let _ = mode;
        self.charged_create(|fs| {
            fs.dir
                .create_dir_with(rel(&path), &builder)
                .map_err(errno)?;
            let meta = fs.symlink_metadata(&path)?;
            Ok(fs.register(path, &meta))
        })
    }

    fn symlink(&mut self, dir: u64, name: &str, target: &str) -> VfsResult<u64> {
        self.writable()?;
        if target.is_empty() || target.contains('\0') {
            return Err(Errno::Noent);
        }
        if target.len() > MAX_PATH_BYTES {
            return Err(Errno::Nametoolong);
        }
        let path = self.child_path(dir, name)?;
        // The target is stored as written; only the VFS ever resolves it.
        self.charged_create(|fs| {
            #[cfg(unix)]
            let made = fs.dir.symlink_contents(target, rel(&path));
            #[cfg(windows)]
            let made = fs.dir.symlink_file(target, rel(&path));
            made.map_err(errno)?;
            let meta = fs.symlink_metadata(&path)?;
            Ok(fs.register(path, &meta))
        })
    }

    fn link(&mut self, node: u64, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        if self.node(node)?.kind == FileType::Dir {
            return Err(Errno::Perm);
        }
        let from = self.path(node)?;
        let to = self.child_path(dir, name)?;
        self.charged_create(|fs| {
            fs.dir
                .hard_link(rel(&from), &fs.dir, rel(&to))
                .map_err(errno)
        })?;
        // Unix: the new name has the node's inode, so it maps to the node.
        #[cfg(not(unix))]
        self.ids.insert(Key::Path(to.clone()), node);
        let meta = self.symlink_metadata(&to)?;
        if let Some(n) = self.nodes.get_mut(&node) {
            n.nlink = nlink_of(&meta);
        }
        Ok(())
    }

    fn unlink(&mut self, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        let path = self.child_path(dir, name)?;
        let meta = self.symlink_metadata(&path)?;
        if meta.is_dir() {
            return Err(Errno::Isdir);
        }
        let id = self.register(path.clone(), &meta);
        // An open file must stay readable once nameless.
        self.hold(id)?;
        self.dir.remove_file_or_symlink(rel(&path)).map_err(errno)?;
        self.forget_path(id, &path, nlink_of(&meta));
        Ok(())
    }

    fn rmdir(&mut self, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        let path = self.child_path(dir, name)?;
        let meta = self.symlink_metadata(&path)?;
        if !meta.is_dir() {
            return Err(Errno::Notdir);
        }
        let id = self.register(path.clone(), &meta);
        if id == ROOT {
            return Err(Errno::Busy);
        }
        self.dir.remove_dir(rel(&path)).map_err(errno)?;
        self.dirs.clear();
        self.forget_path(id, &path, 1);
        Ok(())
    }

    fn rename(&mut self, from_dir: u64, from: &str, to_dir: u64, to: &str) -> VfsResult<()> {
        self.writable()?;
        let src = self.child_path(from_dir, from)?;
        let dst = self.child_path(to_dir, to)?;
        let src_meta = self.symlink_metadata(&src)?;
        let src_id = self.register(src.clone(), &src_meta);
        let replaced = match self.symlink_metadata(&dst) {
            // A directory has one name (its link count counts `.` and subdirectories).
            Ok(meta) if meta.is_dir() => Some((self.register(dst.clone(), &meta), 1)),
            Ok(meta) => Some((self.register(dst.clone(), &meta), nlink_of(&meta))),
            Err(Errno::Noent) => None,
            Err(e) => return Err(e),
        };
        if let Some((dst_id, _)) = replaced
            && dst_id == src_id
        {
            // Two names of one file: POSIX says rename does nothing.
            if let Some(n) = self.nodes.get_mut(&src_id) {
                n.path = Some(src);
            }
            return Ok(());
        }
        if let Some((dst_id, _)) = replaced {
            self.hold(dst_id)?;
        }
        self.dir
            .rename(rel(&src), &self.dir, rel(&dst))
            .map_err(errno)?;
        self.dirs.clear();
        if let Some((dst_id, nlink)) = replaced {
            self.forget_path(dst_id, &dst, nlink);
        }
        self.moved(&src, &dst);
        Ok(())
    }

    fn read(&mut self, node: u64, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        self.with_file(node, false, |f| read_full_at(f, buf, offset))
    }

    fn write(&mut self, node: u64, offset: u64, data: &[u8]) -> VfsResult<usize> {
        self.writable()?;
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::Fbig)?;
        let before = self.size_to_charge(node)?;
        let grow = end.saturating_sub(before);
        self.charge_bytes(node, grow)?;
        if let Err(e) = self.with_file(node, true, |f| write_all_at(f, data, offset)) {
            // A partial write may have grown the file: keep that charged.
            let grown = self.size(node).map_or(0, |now| now.saturating_sub(before));
            self.refund_bytes(node, grow.saturating_sub(grown));
            return Err(e);
        }
        Ok(data.len())
    }

    fn set_size(&mut self, node: u64, size: u64) -> VfsResult<()> {
        self.writable()?;
        let before = self.size_to_charge(node)?;
        let grow = size.saturating_sub(before);
        self.charge_bytes(node, grow)?;
        if let Err(e) = self.with_file(node, true, |f| f.set_len(size)) {
            self.refund_bytes(node, grow);
            return Err(e);
        }
        self.refund_bytes(node, before.saturating_sub(size));
        Ok(())
    }

    fn set_times(&mut self, node: u64, atime: SetTime, mtime: SetTime) -> VfsResult<()> {
        self.writable()?;
        // cap-std cannot express times before the epoch (it panics on them).
        if matches!(atime, SetTime::At(t) if t < 0) || matches!(mtime, SetTime::At(t) if t < 0) {
            return Err(Errno::Inval);
        }
        let n = self.node(node)?;
        if let Some(path) = &n.path {
            return self
                .dir
                .set_symlink_times(rel(path), time_spec(atime), time_spec(mtime))
                .map_err(errno);
        }
        // Unlinked but open: through the handle.
        let Some(Handle::File { file, .. }) = &n.handle else {
            return Err(Errno::Noent);
        };
        let now = SystemTime::now();
        let mut times = std::fs::FileTimes::new();
        match atime {
            SetTime::Keep => {}
            SetTime::Now => times = times.set_accessed(now),
            SetTime::At(ns) => times = times.set_accessed(system_time(ns)),
        }
        match mtime {
            SetTime::Keep => {}
            SetTime::Now => times = times.set_modified(now),
            SetTime::At(ns) => times = times.set_modified(system_time(ns)),
        }
        file.set_times(times).map_err(errno)
    }

    fn open(&mut self, node: u64) -> VfsResult<()> {
        let n = self.node(node)?;
        if n.open == 0 {
            let handle = self.open_handle(n)?;
            let evictable = matches!(handle, Some(Handle::File { .. })) && n.path.is_some();
            let n = self.nodes.get_mut(&node).ok_or(Errno::Badf)?;
            n.handle = handle;
            if evictable {
                self.track(node);
            }
        }
        let n = self.nodes.get_mut(&node).ok_or(Errno::Badf)?;
        n.open += 1;
        Ok(())
    }

    fn close(&mut self, node: u64) {
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        n.open = n.open.saturating_sub(1);
        if n.open == 0 {
            self.file_handles.remove(node);
            if n.path.is_none() && n.nlink == 0 {
                // The last handle of a removed file: its bytes are freed now.
                n.handle = None;
                self.drop_node(node);
                self.refund_bytes(node, u64::MAX);
            } else {
                n.handle = None;
            }
        }
    }

    fn share_budget(&mut self, budget: Arc<WriteBudget>) {
        if !self.readonly {
            self.budget = Some(budget);
        }
    }

    fn sync(&mut self, node: u64) -> VfsResult<()> {
        self.hold(node)?;
        match &self.node(node)?.handle {
            Some(Handle::File { file, .. }) => file.sync_all().map_err(errno),
            _ => Ok(()),
        }
    }
}

mod dirs;
mod lru;
mod sys;
#[cfg(test)]
mod tests;
