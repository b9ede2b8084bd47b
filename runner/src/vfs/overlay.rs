//! [`OverlayFs`]: a step's root filesystem. The lower snapshot (the image so
//! far) is read lazily from the store; everything the step does happens on
//! in-memory inodes above it, so the host knows exactly what changed.
//!
//! Inodes are loaded from the lower snapshot on first lookup and remember the
//! lower path they came from (`origin`). A directory's children are loaded
//! when it is first listed or searched; a file's bytes stay in the store
//! until the step writes them ([`super::content`]). At the end,
//! [`OverlayFs::changes`] (in `commit.rs`) compares the directories the step
//! touched with the lower snapshot and yields the layer's change set: no
//! walk of anything the step did not touch, no host directory, no diff of
//! file contents.
//!
//! The same type also serves other mounts: a tmpfs is an overlay over an
//! empty snapshot that keeps every byte in memory ([`OverlayFs::memory_only`]),
//! a bind of another stage is an overlay over that stage's snapshot (writes
//! refused unless `rw`).
//!
//! What the step writes is charged to the step's [`WriteBudget`] (shared by
//! every backend of its namespace) and to the overlay's own cap
//! ([`OverlayFs::set_limits`], a tmpfs `size=`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::Clock;
use super::budget::{LimitHit, WriteBudget, WriteLimits};
use super::content::{Data, MEM_LIMIT};
use super::fs::{DirEntry, Errno, FileSystem, FileType, SetTime, Stat, VfsResult};
use super::spill::Spill;
use crate::digest::Digest;
use crate::snapshot::{FileRef, ImagePath, MAX_NAME_BYTES, Node, Snapshot};
use crate::store::Store;

#[derive(Debug)]
pub(super) enum Kind {
    /// `entries` is `None` until the lower children are loaded.
    Dir {
        entries: Option<BTreeMap<String, u64>>,
    },
    File {
        data: Data,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug)]
pub(super) struct Inode {
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) atime: i64,
    pub(super) mtime: i64,
    pub(super) ctime: i64,
    pub(super) nlink: u32,
    open: u32,
    /// The lower path this inode was loaded from.
    pub(super) origin: Option<ImagePath>,
    /// Metadata changed by the step.
    pub(super) meta_dirty: bool,
    /// Contents (file) or target (symlink) changed by the step.
    pub(super) data_dirty: bool,
    /// Made by kiln for a mountpoint; not part of the layer by itself.
    pub(super) synthetic: bool,
}

/// A step's root filesystem (or an in-memory mount). See the module docs.
pub struct OverlayFs {
    pub(super) nodes: HashMap<u64, Inode>,
    next_id: u64,
    lower: Arc<Snapshot>,
    store: Store,
    /// The directory large contents spill to (`None`: they stay in memory).
    spill: Option<PathBuf>,
    /// The spill file there, once a file needed it.
    spill_file: Option<Arc<Spill>>,
    readonly: bool,
    dev: u64,
    clock: Clock,
    /// This overlay's own cap (a tmpfs `size=`).
    limits: WriteLimits,
    upper_bytes: u64,
    created: u64,
    limit_hit: Option<LimitHit>,
    /// The step's budget, shared with the namespace's other backends.
    budget: Option<Arc<WriteBudget>>,
    verified: HashSet<FileRef>,
    owner: (u32, u32),
}

const ROOT: u64 = 1;

fn to_ns(seconds: i64) -> i64 {
    seconds.saturating_mul(1_000_000_000)
}

impl OverlayFs {
    /// An overlay over `lower`, reading contents from `store`.
    pub fn new(lower: Arc<Snapshot>, store: Store, dev: u64, clock: Clock) -> OverlayFs {
        let spill = Some(store.tmp_dir());
        let root_meta = match lower.get(&ImagePath::root()) {
            Some(Node::Dir(m)) => *m,
            _ => crate::snapshot::Meta::root(0o755, 0),
        };
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Inode {
                kind: Kind::Dir { entries: None },
                mode: root_meta.mode,
                uid: root_meta.uid,
                gid: root_meta.gid,
                atime: to_ns(root_meta.mtime),
                mtime: to_ns(root_meta.mtime),
                ctime: to_ns(root_meta.mtime),
                nlink: 1,
                open: 0,
                origin: Some(ImagePath::root()),
                meta_dirty: false,
                data_dirty: false,
                synthetic: false,
            },
        );
        OverlayFs {
            nodes,
            next_id: ROOT + 1,
            lower,
            store,
            spill,
            spill_file: None,
            readonly: false,
            dev,
            clock,
            limits: WriteLimits::default(),
            upper_bytes: 0,
            created: 0,
            limit_hit: None,
            budget: None,
            verified: HashSet::new(),
            owner: (0, 0),
        }
    }

    /// Refuses every write with EROFS.
    pub fn set_readonly(&mut self, readonly: bool) {
        self.readonly = readonly;
    }

    /// Owner of everything the step creates (the image's USER).
    pub fn set_owner_of_new(&mut self, uid: u32, gid: u32) {
        self.owner = (uid, gid);
    }

    /// Keeps every byte written in memory, never in a file (a tmpfs). Its
    /// cap ([`OverlayFs::set_limits`]) is then what bounds that memory.
    pub fn memory_only(&mut self) {
        self.spill = None;
    }

    /// Sets this overlay's own cap, checked besides the step's budget.
    pub fn set_limits(&mut self, limits: WriteLimits) {
        self.limits = limits;
    }

    /// The write limit a write here ran into, if any: this overlay's own cap
    /// or the step's budget (whichever backend hit it).
    pub fn limit_hit(&self) -> Option<LimitHit> {
        self.limit_hit
            .or_else(|| self.budget.as_ref().and_then(|b| b.hit()))
    }

    /// Bytes of contents the step's upper layer holds.
    pub fn upper_bytes(&self) -> u64 {
        self.upper_bytes
    }

    /// The lower snapshot.
    pub fn lower(&self) -> &Snapshot {
        &self.lower
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn node(&self, id: u64) -> VfsResult<&Inode> {
        self.nodes.get(&id).ok_or(Errno::Badf)
    }

    fn node_mut(&mut self, id: u64) -> VfsResult<&mut Inode> {
        self.nodes.get_mut(&id).ok_or(Errno::Badf)
    }

    fn writable(&self) -> VfsResult<()> {
        if self.readonly {
            Err(Errno::Rofs)
        } else {
            Ok(())
        }
    }

    /// Allocates an inode loaded from the lower node at `path`.
    fn load(&mut self, path: ImagePath, node: &Node) -> u64 {
        let (kind, meta) = match node {
            Node::Dir(m) => (Kind::Dir { entries: None }, *m),
            Node::File(m, f) => (
                Kind::File {
                    data: Data::Lower { file: *f },
                },
                *m,
            ),
            Node::Symlink(m, t) => (Kind::Symlink { target: t.clone() }, *m),
        };
        let id = self.next_id;
        self.next_id += 1;
        let t = to_ns(meta.mtime);
        self.nodes.insert(
            id,
            Inode {
                kind,
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                atime: t,
                mtime: t,
                ctime: t,
                nlink: 1,
                open: 0,
                origin: Some(path),
                meta_dirty: false,
                data_dirty: false,
                synthetic: false,
            },
        );
        id
    }

    /// The children map of a directory, loading it from the lower layer.
    pub(super) fn entries(&mut self, dir: u64) -> VfsResult<&mut BTreeMap<String, u64>> {
        let node = self.node(dir)?;
        let Kind::Dir { entries } = &node.kind else {
            return Err(Errno::Notdir);
        };
        if entries.is_none() {
            let origin = node.origin.clone();
            let mut loaded = BTreeMap::new();
            if let Some(origin) = origin {
                let lower = Arc::clone(&self.lower);
                for (path, child) in lower.children(&origin) {
                    let id = self.load(path.clone(), child);
                    loaded.insert(path.name().to_string(), id);
                }
            }
            if let Kind::Dir { entries } = &mut self.node_mut(dir)?.kind {
                *entries = Some(loaded);
            }
        }
        match &mut self.node_mut(dir)?.kind {
            Kind::Dir { entries: Some(e) } => Ok(e),
            _ => unreachable!("loaded above"),
        }
    }

    /// Counts one more created node against the caps.
    fn charge_file(&mut self) -> VfsResult<()> {
        if self.created >= self.limits.max_files {
            self.limit_hit = Some(LimitHit::Files);
            return Err(Errno::Nospc);
        }
        if let Some(b) = &self.budget {
            b.charge_file()?;
        }
        self.created += 1;
        Ok(())
    }

    fn new_node(&mut self, kind: Kind, mode: u32) -> VfsResult<u64> {
        self.charge_file()?;
        let id = self.next_id;
        self.next_id += 1;
        let now = self.now();
        let (uid, gid) = self.owner;
        self.nodes.insert(
            id,
            Inode {
                kind,
                mode,
                uid,
                gid,
                atime: now,
                mtime: now,
                ctime: now,
                nlink: 1,
                open: 0,
                origin: None,
                meta_dirty: true,
                data_dirty: true,
                synthetic: false,
            },
        );
        Ok(id)
    }

    fn check_name(name: &str) -> VfsResult<()> {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
        {
            return Err(Errno::Inval);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(Errno::Nametoolong);
        }
        Ok(())
    }

    /// Adds a fresh node under `dir` as `name`.
    fn insert_new(&mut self, dir: u64, name: &str, kind: Kind, mode: u32) -> VfsResult<u64> {
        self.writable()?;
        Self::check_name(name)?;
        if self.entries(dir)?.contains_key(name) {
            return Err(Errno::Exist);
        }
        let is_dir = matches!(kind, Kind::Dir { .. });
        let id = self.new_node(kind, mode)?;
        self.entries(dir)?.insert(name.to_string(), id);
        self.touch_dir(dir);
        if is_dir {
            // A new directory starts empty, not with lower children.
            if let Kind::Dir { entries } = &mut self.node_mut(id)?.kind {
                *entries = Some(BTreeMap::new());
            }
        }
        Ok(id)
    }

    fn touch_dir(&mut self, dir: u64) {
        let now = self.now();
        if let Some(n) = self.nodes.get_mut(&dir) {
            n.mtime = now;
            n.ctime = now;
            n.meta_dirty = true;
        }
    }

    /// Drops a node's name; frees it when no name or open handle is left.
    fn drop_link(&mut self, id: u64) {
        let free = match self.nodes.get_mut(&id) {
            Some(n) => {
                n.nlink = n.nlink.saturating_sub(1);
                n.ctime = (self.clock)();
                n.nlink == 0 && n.open == 0
            }
            None => false,
        };
        if free {
            self.free(id);
        }
    }

    fn free(&mut self, id: u64) {
        if let Some(n) = self.nodes.remove(&id)
            && let Kind::File { data } = &n.kind
        {
            if data.is_upper() {
                self.refund(data.len());
            } else if let Data::Lower { file } = data {
                super::content::release(&self.store, file);
            }
        }
    }

    /// Makes a directory for a mountpoint (not part of the layer unless the
    /// step puts something real in it). Reuses an existing node of the name.
    pub(super) fn mountpoint(&mut self, dir: u64, name: &str, is_dir: bool) -> VfsResult<u64> {
        if let Some(&id) = self.entries(dir)?.get(name) {
            return Ok(id);
        }
        let (kind, mode) = if is_dir {
            (Kind::Dir { entries: None }, 0o755)
        } else {
            (
                Kind::File {
                    data: Data::Mem(Vec::new()),
                },
                0o644,
            )
        };
        let id = self.next_id;
        self.next_id += 1;
        let now = self.now();
        self.nodes.insert(
            id,
            Inode {
                kind,
                mode,
                uid: 0,
                gid: 0,
                atime: now,
                mtime: now,
                ctime: now,
                nlink: 1,
                open: 0,
                origin: None,
                meta_dirty: false,
                data_dirty: false,
                synthetic: true,
            },
        );
        if let Kind::Dir { entries } = &mut self.node_mut(id)?.kind {
            *entries = Some(BTreeMap::new());
        }
        self.entries(dir)?.insert(name.to_string(), id);
        Ok(id)
    }

    fn charge(&mut self, grew: u64) -> VfsResult<()> {
        if self.upper_bytes.saturating_add(grew) > self.limits.max_bytes {
            self.limit_hit = Some(LimitHit::Bytes);
            return Err(Errno::Nospc);
        }
        if let Some(b) = &self.budget {
            b.charge_bytes(grew)?;
        }
        self.upper_bytes += grew;
        Ok(())
    }

    /// Gives back bytes the step's files no longer hold.
    fn refund(&mut self, freed: u64) {
        let freed = freed.min(self.upper_bytes);
        self.upper_bytes -= freed;
        if let Some(b) = &self.budget {
            b.refund_bytes(freed);
        }
    }

    fn file_data(&mut self, id: u64) -> VfsResult<&mut Data> {
        match &mut self.node_mut(id)?.kind {
            Kind::File { data } => Ok(data),
            Kind::Dir { .. } => Err(Errno::Isdir),
            Kind::Symlink { .. } => Err(Errno::Inval),
        }
    }

    /// The spill file for contents that reach `size` bytes: created when
    /// first needed; `None` for a memory-only overlay.
    fn spill_for(&mut self, size: u64) -> VfsResult<Option<Arc<Spill>>> {
        let Some(dir) = &self.spill else {
            return Ok(None);
        };
        if self.spill_file.is_none() && size > MEM_LIMIT as u64 {
            self.spill_file = Some(Spill::new(dir).map_err(|_| Errno::Io)?);
        }
        Ok(self.spill_file.clone())
    }

    /// Copies a lower file's bytes up, counting them against the limit.
    fn make_upper(&mut self, id: u64) -> VfsResult<()> {
        let store = self.store.clone();
        let data = self.file_data(id)?;
        let Data::Lower { file } = data else {
            return Ok(());
        };
        let (len, file) = (file.size, *file);
        let spill = self.spill_for(len)?;
        self.charge(len)?;
        let data = self.file_data(id)?;
        if let Err(e) = data.make_upper(&store, spill.as_ref()) {
            self.refund(len);
            return Err(e);
        }
        super::content::release(&store, &file);
        Ok(())
    }

    fn verify_lower(&mut self, id: u64) -> VfsResult<()> {
        let file = match self.file_data(id)? {
            Data::Lower { file } => *file,
            _ => return Ok(()),
        };
        if self.verified.contains(&file) {
            return Ok(());
        }
        // Checked once per content per step: a corrupt store must not feed
        // a build silently.
        let mut reader = self.store.open_content(&file).map_err(|_| Errno::Io)?;
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|_| Errno::Io)?;
        self.verified.insert(file);
        Ok(())
    }
}

impl FileSystem for OverlayFs {
    fn root(&self) -> u64 {
        ROOT
    }

    fn readonly(&self) -> bool {
        self.readonly
    }

    fn stat(&mut self, node: u64) -> VfsResult<Stat> {
        let dev = self.dev;
        let n = self.node(node)?;
        let (kind, size) = match &n.kind {
            Kind::Dir { .. } => (FileType::Dir, 0),
            Kind::File { data } => (FileType::File, data.len()),
            Kind::Symlink { target } => (FileType::Symlink, target.len() as u64),
        };
        Ok(Stat {
            dev,
            ino: node,
            kind,
            nlink: u64::from(n.nlink),
            size,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    fn lookup(&mut self, dir: u64, name: &str) -> VfsResult<u64> {
        if name.len() > MAX_NAME_BYTES {
            return Err(Errno::Nametoolong);
        }
        self.entries(dir)?.get(name).copied().ok_or(Errno::Noent)
    }

    fn read_dir(&mut self, dir: u64) -> VfsResult<Vec<DirEntry>> {
        let entries: Vec<(String, u64)> = self
            .entries(dir)?
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for (name, id) in entries {
            let kind = match &self.node(id)?.kind {
                Kind::Dir { .. } => FileType::Dir,
                Kind::File { .. } => FileType::File,
                Kind::Symlink { .. } => FileType::Symlink,
            };
            out.push(DirEntry { name, id, kind });
        }
        Ok(out)
    }

    fn read_link(&mut self, node: u64) -> VfsResult<String> {
        match &self.node(node)?.kind {
            Kind::Symlink { target } => Ok(target.clone()),
            _ => Err(Errno::Inval),
        }
    }

    fn create_file(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64> {
        self.insert_new(
            dir,
            name,
            Kind::File {
                data: Data::Mem(Vec::new()),
            },
            mode,
        )
    }

    fn mkdir(&mut self, dir: u64, name: &str, mode: u32) -> VfsResult<u64> {
        self.insert_new(dir, name, Kind::Dir { entries: None }, mode)
    }

    fn symlink(&mut self, dir: u64, name: &str, target: &str) -> VfsResult<u64> {
        if target.is_empty() || target.contains('\0') {
            return Err(Errno::Noent);
        }
        if target.len() > crate::snapshot::MAX_PATH_BYTES {
            return Err(Errno::Nametoolong);
        }
        self.insert_new(
            dir,
            name,
            Kind::Symlink {
                target: target.to_string(),
            },
            0o777,
        )
    }

    fn link(&mut self, node: u64, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        Self::check_name(name)?;
        if matches!(self.node(node)?.kind, Kind::Dir { .. }) {
            return Err(Errno::Perm);
        }
        if self.entries(dir)?.contains_key(name) {
            return Err(Errno::Exist);
        }
        self.charge_file()?;
        self.entries(dir)?.insert(name.to_string(), node);
        let now = self.now();
        let n = self.node_mut(node)?;
        n.nlink += 1;
        n.ctime = now;
        self.touch_dir(dir);
        Ok(())
    }

    fn unlink(&mut self, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        let id = self.lookup(dir, name)?;
        let n = self.node(id)?;
        if matches!(n.kind, Kind::Dir { .. }) {
            return Err(Errno::Isdir);
        }
        if n.synthetic {
            return Err(Errno::Busy);
        }
        self.entries(dir)?.remove(name);
        self.touch_dir(dir);
        self.drop_link(id);
        Ok(())
    }

    fn rmdir(&mut self, dir: u64, name: &str) -> VfsResult<()> {
        self.writable()?;
        let id = self.lookup(dir, name)?;
        let n = self.node(id)?;
        if !matches!(n.kind, Kind::Dir { .. }) {
            return Err(Errno::Notdir);
        }
        if n.synthetic {
            return Err(Errno::Busy);
        }
        if !self.entries(id)?.is_empty() {
            return Err(Errno::Notempty);
        }
        self.entries(dir)?.remove(name);
        self.touch_dir(dir);
        self.drop_link(id);
        Ok(())
    }

    fn rename(&mut self, from_dir: u64, from: &str, to_dir: u64, to: &str) -> VfsResult<()> {
        self.writable()?;
        Self::check_name(to)?;
        let src = self.lookup(from_dir, from)?;
        let src_is_dir = matches!(self.node(src)?.kind, Kind::Dir { .. });
        if self.node(src)?.synthetic {
            return Err(Errno::Busy);
        }
        if src_is_dir {
            // A directory cannot move into itself or below itself: walk up
            // from the destination through the parents the entries record.
            if self.is_ancestor(src, to_dir)? {
                return Err(Errno::Inval);
            }
        }
        match self.entries(to_dir)?.get(to).copied() {
            Some(dst) if dst == src => return Ok(()),
            Some(dst) => {
                let dst_node = self.node(dst)?;
                if dst_node.synthetic {
                    return Err(Errno::Busy);
                }
                let dst_is_dir = matches!(dst_node.kind, Kind::Dir { .. });
                match (src_is_dir, dst_is_dir) {
                    (true, false) => return Err(Errno::Notdir),
                    (false, true) => return Err(Errno::Isdir),
                    (true, true) if !self.entries(dst)?.is_empty() => return Err(Errno::Notempty),
                    _ => {}
                }
                self.entries(to_dir)?.remove(to);
                self.drop_link(dst);
            }
            None => {}
        }
        self.entries(from_dir)?.remove(from);
        self.entries(to_dir)?.insert(to.to_string(), src);
        self.touch_dir(from_dir);
        self.touch_dir(to_dir);
        let now = self.now();
        let n = self.node_mut(src)?;
        n.ctime = now;
        Ok(())
    }

    fn read(&mut self, node: u64, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        self.verify_lower(node)?;
        let store = self.store.clone();
        self.file_data(node)?.read_at(&store, offset, buf)
    }

    fn content_digest(&mut self, node: u64) -> Option<Digest> {
        match self.file_data(node).ok()? {
            Data::Lower { file } => Some(file.digest),
            _ => None,
        }
    }

    fn write(&mut self, node: u64, offset: u64, data: &[u8]) -> VfsResult<usize> {
        self.writable()?;
        self.make_upper(node)?;
        let len = self.file_data(node)?.len();
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::Fbig)?;
        self.charge(end.saturating_sub(len))?;
        let spill = self.spill_for(end)?;
        let grow = end.saturating_sub(len);
        if let Err(e) = self.file_data(node)?.write_at(spill.as_ref(), offset, data) {
            self.refund(grow);
            return Err(e);
        }
        let now = self.now();
        let n = self.node_mut(node)?;
        n.mtime = now;
        n.ctime = now;
        n.data_dirty = true;
        Ok(data.len())
    }

    fn set_size(&mut self, node: u64, size: u64) -> VfsResult<()> {
        self.writable()?;
        self.file_data(node)?;
        self.make_upper(node)?;
        let len = self.file_data(node)?.len();
        if size > len {
            self.charge(size - len)?;
        }
        let spill = self.spill_for(size)?;
        if let Err(e) = self.file_data(node)?.set_len(spill.as_ref(), size) {
            self.refund(size.saturating_sub(len));
            return Err(e);
        }
        if size < len {
            self.refund(len - size);
        }
        let now = self.now();
        let n = self.node_mut(node)?;
        n.mtime = now;
        n.ctime = now;
        n.data_dirty = true;
        Ok(())
    }

    fn set_times(&mut self, node: u64, atime: SetTime, mtime: SetTime) -> VfsResult<()> {
        self.writable()?;
        let now = self.now();
        let n = self.node_mut(node)?;
        let pick = |t: SetTime, old: i64| match t {
            SetTime::Keep => old,
            SetTime::Now => now,
            SetTime::At(v) => v,
        };
        n.atime = pick(atime, n.atime);
        let new_mtime = pick(mtime, n.mtime);
        if new_mtime != n.mtime {
            n.mtime = new_mtime;
            n.meta_dirty = true;
        }
        n.ctime = now;
        Ok(())
    }

    fn open(&mut self, node: u64) -> VfsResult<()> {
        self.node_mut(node)?.open += 1;
        Ok(())
    }

    fn close(&mut self, node: u64) {
        let (free, lower) = match self.nodes.get_mut(&node) {
            Some(n) => {
                n.open = n.open.saturating_sub(1);
                let lower = match &n.kind {
                    Kind::File {
                        data: Data::Lower { file },
                    } if n.open == 0 => Some(*file),
                    _ => None,
                };
                (n.open == 0 && n.nlink == 0, lower)
            }
            None => (false, None),
        };
        if let Some(file) = lower {
            // The guest closed its last handle: so does kiln.
            super::content::release(&self.store, &file);
        }
        if free {
            self.free(node);
        }
    }

    fn share_budget(&mut self, budget: Arc<WriteBudget>) {
        self.budget = Some(budget);
    }
}

impl OverlayFs {
    /// Whether `ancestor` is `node` or one of its ancestors. Directories
    /// have one name, so a walk of the loaded tree finds the parent chain.
    fn is_ancestor(&mut self, ancestor: u64, node: u64) -> VfsResult<bool> {
        if ancestor == node {
            return Ok(true);
        }
        // Search downwards from `ancestor` through loaded directories only:
        // `node` is reachable from the step, so its ancestors are loaded.
        let mut stack = vec![ancestor];
        while let Some(dir) = stack.pop() {
            let children: Vec<u64> = match &self.node(dir)?.kind {
                Kind::Dir { entries: Some(e) } => e.values().copied().collect(),
                _ => continue,
            };
            for c in children {
                if c == node {
                    return Ok(true);
                }
                if matches!(self.node(c)?.kind, Kind::Dir { entries: Some(_) }) {
                    stack.push(c);
                }
            }
        }
        Ok(false)
    }

    /// Changes ownership (for mount setup and `COPY --chown`-like needs).
    pub fn set_owner(&mut self, node: u64, uid: u32, gid: u32, mode: u32) -> VfsResult<()> {
        let n = self.node_mut(node)?;
        n.uid = uid;
        n.gid = gid;
        n.mode = mode;
        n.meta_dirty = true;
        Ok(())
    }
}
