//! `wasi:filesystem/types` and `wasi:filesystem/preopens` over the step's
//! [`Vfs`]: every method answered from the VFS, nothing from the host.
//!
//! A [`Descriptor`] is a VFS node, the [`Scope`] paths resolve in (the
//! preopen `/` clamps `..` and absolute symlinks to the image root; a
//! directory opened with `open-at` is a capability for its subtree), the
//! flags it was opened with, and one open reference on the node, released
//! when the guest drops it, so an unlinked file stays readable.
//!
//! Access rules, POSIX where WASI leaves room:
//! - `read` needs a descriptor opened with `read` (or with neither `read`
//!   nor `write`, as wasmtime-wasi does); `write`, `set-size` and the write
//!   streams need `write`. Otherwise `bad-descriptor`.
//! - `mutate-directory` is a capability handed down from the preopen, as in
//!   wasmtime-wasi: a preopen has it unless its backend is read-only, and a
//!   directory opened from a base that has it has it too, unless it lies on
//!   a read-only mount. (wasi-libc opens directories `O_RDONLY`, without the
//!   flag, and then unlinks through them, e.g. for `remove_dir_all`; tying
//!   the capability to the flag asked for would break it.) `open-at` asking
//!   for `write`, `mutate-directory`, `create` or `truncate` from a base
//!   without the capability fails with `read-only`, as the WIT says, and so
//!   does every change made through such a base. `get-flags` reports the
//!   flags asked for (a preopen: `read`, and `mutate-directory` if it has
//!   the capability), which is what wasi-libc's `access` consults.
//! - `readlink-at` returns absolute targets as they are: in an image they
//!   name the image's own `/`, which the guest sees as the preopen `/`.
//!
//! File streams (`read-via-stream`...) are in `streams.rs`; this module
//! only creates them.

use std::collections::VecDeque;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::bindings::wasi::filesystem::{preopens, types};
use super::errors::{FsError, FsResult, error_code};
use super::streams::FileStreams;
use crate::digest::Digest;
use crate::vfs::{Errno, FileType, NodeRef, OpenFlags, Scope, SetTime, Stat, Vfs};
use crate::wasi::Preopen;
use types::{DescriptorFlags, DescriptorType, ErrorCode};

/// Most bytes one `read` returns. The guest chooses the length and the host
/// allocates it before copying into guest memory; a mebibyte keeps big
/// sequential reads fast without letting one call allocate gigabytes.
pub const MAX_READ_BYTES: u64 = 1 << 20;

/// An open file or directory. See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Descriptor {
    node: NodeRef,
    scope: Scope,
    kind: FileType,
    /// As opened; what `get-flags` reports.
    flags: DescriptorFlags,
    /// Whether changes may be made through this descriptor (inherited from
    /// the preopen; see the module docs).
    mutate: bool,
}

impl Descriptor {
    fn readable(&self) -> bool {
        self.flags.contains(DescriptorFlags::READ)
    }

    fn writable(&self) -> bool {
        self.flags.contains(DescriptorFlags::WRITE)
    }

    /// The node, if this is a directory.
    fn dir(&self) -> FsResult<(NodeRef, Scope)> {
        if self.kind == FileType::Dir {
            Ok((self.node, self.scope))
        } else {
            Err(ErrorCode::NotDirectory.into())
        }
    }

    /// The node, if this is a directory changes may be made through.
    fn dir_to_change(&self) -> FsResult<(NodeRef, Scope)> {
        let dir = self.dir()?;
        if !self.mutate {
            return Err(ErrorCode::ReadOnly.into());
        }
        Ok(dir)
    }

    /// The node, if this is a file opened for writing. Directories are
    /// `bad-descriptor` too: they cannot be opened for writing.
    fn file_to_write(&self) -> FsResult<NodeRef> {
        if self.kind == FileType::Dir || !self.writable() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        Ok(self.node)
    }

    /// The node, if this is a file opened for reading.
    fn file_to_read(&self) -> FsResult<NodeRef> {
        if self.kind == FileType::Dir {
            return Err(ErrorCode::IsDirectory.into());
        }
        if !self.readable() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        Ok(self.node)
    }
}

/// A `directory-entry-stream`: the listing taken when it was opened.
pub struct DirectoryEntryStream {
    entries: VecDeque<(String, FileType)>,
}

/// What the filesystem host works on: the step's VFS, its preopens, the
/// resource table, and the file streams' VFS ends.
pub(super) struct FsView<'a> {
    pub(super) table: &'a mut ResourceTable,
    pub(super) vfs: &'a mut Vfs,
    pub(super) preopens: &'a [Preopen],
    pub(super) streams: &'a mut FileStreams,
}

/// [`HasData`] for the filesystem interfaces.
pub(super) struct Filesystem;

impl HasData for Filesystem {
    type Data<'a> = FsView<'a>;
}

impl FsView<'_> {
    fn get(&self, fd: &Resource<Descriptor>) -> FsResult<Descriptor> {
        Ok(*self.table.get(fd)?)
    }

    /// Puts a descriptor for `node` (whose open reference the caller holds)
    /// in the table; on failure the reference is released.
    fn push(&mut self, d: Descriptor) -> wasmtime::Result<Resource<Descriptor>> {
        match self.table.push(d) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.vfs.close(d.node);
                Err(e.into())
            }
        }
    }
}

/// `metadata-hash`: stable for a node while it is unchanged (device, inode,
/// size and modification time through sha256), different once it changes.
fn metadata_hash(stat: &Stat) -> types::MetadataHashValue {
    let mut bytes = Vec::with_capacity(32);
    for v in [stat.dev, stat.ino, stat.size, stat.mtime as u64] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let d = Digest::of(&bytes);
    let half = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_bytes()[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    types::MetadataHashValue {
        lower: half(0),
        upper: half(1),
    }
}

fn follow(flags: types::PathFlags) -> bool {
    flags.contains(types::PathFlags::SYMLINK_FOLLOW)
}

fn descriptor_type(kind: FileType) -> DescriptorType {
    match kind {
        FileType::Dir => DescriptorType::Directory,
        FileType::File => DescriptorType::RegularFile,
        FileType::Symlink => DescriptorType::SymbolicLink,
    }
}

/// A time in nanoseconds since the epoch, or `None` before the epoch
/// (`datetime` cannot say it).
fn datetime(ns: i64) -> Option<Datetime> {
    let ns = u64::try_from(ns).ok()?;
    Some(Datetime {
        seconds: ns / 1_000_000_000,
        nanoseconds: (ns % 1_000_000_000) as u32,
    })
}

fn descriptor_stat(s: Stat) -> types::DescriptorStat {
    types::DescriptorStat {
        type_: descriptor_type(s.kind),
        link_count: s.nlink,
        size: s.size,
        data_access_timestamp: datetime(s.atime),
        data_modification_timestamp: datetime(s.mtime),
        status_change_timestamp: datetime(s.ctime),
    }
}

fn set_time(t: types::NewTimestamp) -> FsResult<SetTime> {
    Ok(match t {
        types::NewTimestamp::NoChange => SetTime::Keep,
        types::NewTimestamp::Now => SetTime::Now,
        types::NewTimestamp::Timestamp(d) => {
            let ns = i64::try_from(d.seconds)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000_000))
                .and_then(|s| s.checked_add(i64::from(d.nanoseconds)))
                .ok_or(ErrorCode::Overflow)?;
            SetTime::At(ns)
        }
    })
}

impl preopens::Host for FsView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut out = Vec::with_capacity(self.preopens.len());
        for p in self.preopens {
            let kind = self
                .vfs
                .stat(p.node)
                .map_err(|e| wasmtime::format_err!("preopen {}: {e}", p.guest_path))?
                .kind;
            self.vfs
                .retain(p.node)
                .map_err(|e| wasmtime::format_err!("preopen {}: {e}", p.guest_path))?;
            let mutate = !self.vfs.readonly(p.node.fs);
            let mut flags = DescriptorFlags::READ;
            if mutate {
                flags |= DescriptorFlags::MUTATE_DIRECTORY;
            }
            let d = Descriptor {
                node: p.node,
                scope: p.scope,
                kind,
                flags,
                mutate,
            };
            out.push((self.push(d)?, p.guest_path.clone()));
        }
        Ok(out)
    }
}

impl types::Host for FsView<'_> {
    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        if let Some(errno) = err.downcast_ref::<Errno>() {
            return Ok(Some(error_code(*errno)));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return Ok(Some(match io.kind() {
                K::BrokenPipe => ErrorCode::Pipe,
                K::NotFound => ErrorCode::NoEntry,
                K::PermissionDenied => ErrorCode::Access,
                K::Interrupted => ErrorCode::Interrupted,
                K::WouldBlock => ErrorCode::WouldBlock,
                _ => ErrorCode::Io,
            }));
        }
        Ok(None)
    }

    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        match err {
            FsError::Code(code) => Ok(code),
            FsError::Trap(e) => Err(e),
        }
    }
}

impl types::HostDescriptor for FsView<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: u64,
    ) -> FsResult<Resource<DynInputStream>> {
        let node = self.get(&fd)?.file_to_read()?;
        self.streams.open_reader(self.table, self.vfs, node, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: u64,
    ) -> FsResult<Resource<DynOutputStream>> {
        let node = self.get(&fd)?.file_to_write()?;
        self.streams
            .open_writer(self.table, self.vfs, node, Some(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let node = self.get(&fd)?.file_to_write()?;
        self.streams.open_writer(self.table, self.vfs, node, None)
    }

    fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        _offset: u64,
        _length: u64,
        _advice: types::Advice,
    ) -> FsResult<()> {
        // Advice is a hint; the VFS has no cache to tune. Directories are
        // refused as by wasmtime-wasi (and the WASI test suite).
        if self.get(&fd)?.kind == FileType::Dir {
            return Err(ErrorCode::BadDescriptor.into());
        }
        Ok(())
    }

    fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let d = self.get(&fd)?;
        Ok(self.vfs.sync(d.node)?)
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        Ok(self.get(&fd)?.flags)
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        Ok(descriptor_type(self.get(&fd)?.kind))
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: u64) -> FsResult<()> {
        let node = self.get(&fd)?.file_to_write()?;
        Ok(self.vfs.set_size(node, size)?)
    }

    fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atime: types::NewTimestamp,
        mtime: types::NewTimestamp,
    ) -> FsResult<()> {
        let d = self.get(&fd)?;
        if d.kind == FileType::Dir && !d.mutate {
            return Err(ErrorCode::ReadOnly.into());
        }
        Ok(self
            .vfs
            .set_times(d.node, set_time(atime)?, set_time(mtime)?)?)
    }

    fn read(
        &mut self,
        fd: Resource<Descriptor>,
        length: u64,
        offset: u64,
    ) -> FsResult<(Vec<u8>, bool)> {
        let node = self.get(&fd)?.file_to_read()?;
        let mut buf = vec![0u8; length.min(MAX_READ_BYTES) as usize];
        let n = self.vfs.read(node, offset, &mut buf)?;
        buf.truncate(n);
        let size = self.vfs.stat(node)?.size;
        let end = n == 0 || offset.saturating_add(n as u64) >= size;
        Ok((buf, end))
    }

    fn write(&mut self, fd: Resource<Descriptor>, buffer: Vec<u8>, offset: u64) -> FsResult<u64> {
        let node = self.get(&fd)?.file_to_write()?;
        let n = self.vfs.write(node, offset, &buffer)?;
        Ok(n as u64)
    }

    fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        let (node, _) = self.get(&fd)?.dir()?;
        let entries = self
            .vfs
            .read_dir(node)?
            .into_iter()
            .map(|(name, _, kind)| (name, kind))
            .collect();
        Ok(self.table.push(DirectoryEntryStream { entries })?)
    }

    fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let d = self.get(&fd)?;
        Ok(self.vfs.sync(d.node)?)
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let (dir, scope) = self.get(&fd)?.dir_to_change()?;
        Ok(self.vfs.mkdir_at(dir, scope, &path)?)
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        let d = self.get(&fd)?;
        Ok(descriptor_stat(self.vfs.stat(d.node)?))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        let (dir, scope) = self.get(&fd)?.dir()?;
        let s = self.vfs.stat_at(dir, scope, &path, follow(path_flags))?;
        Ok(descriptor_stat(s))
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atime: types::NewTimestamp,
        mtime: types::NewTimestamp,
    ) -> FsResult<()> {
        let (dir, scope) = self.get(&fd)?.dir_to_change()?;
        let (atime, mtime) = (set_time(atime)?, set_time(mtime)?);
        Ok(self
            .vfs
            .set_times_at(dir, scope, &path, follow(path_flags), atime, mtime)?)
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (from, from_scope) = self.get(&fd)?.dir_to_change()?;
        let (to, to_scope) = self.get(&new_descriptor)?.dir_to_change()?;
        Ok(self.vfs.link_at(
            from,
            from_scope,
            &old_path,
            follow(old_path_flags),
            to,
            to_scope,
            &new_path,
        )?)
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        open_flags: types::OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        use types::OpenFlags as O;
        let base = self.get(&fd)?;
        let (dir, scope) = base.dir()?;
        if open_flags.contains(O::DIRECTORY)
            && open_flags.intersects(O::CREATE | O::EXCLUSIVE | O::TRUNCATE)
        {
            return Err(ErrorCode::Invalid.into());
        }
        let changes = flags.intersects(DescriptorFlags::WRITE | DescriptorFlags::MUTATE_DIRECTORY)
            || open_flags.intersects(O::CREATE | O::TRUNCATE);
        if changes && !base.mutate {
            return Err(ErrorCode::ReadOnly.into());
        }
        let node = self.vfs.open_at(
            dir,
            scope,
            &path,
            OpenFlags {
                create: open_flags.contains(O::CREATE),
                exclusive: open_flags.contains(O::EXCLUSIVE),
                truncate: open_flags.contains(O::TRUNCATE),
                directory: open_flags.contains(O::DIRECTORY),
                follow: follow(path_flags),
                write: flags.contains(DescriptorFlags::WRITE),
            },
        )?;
        let kind = match self.vfs.stat(node) {
            Ok(s) => s.kind,
            Err(e) => {
                self.vfs.close(node);
                return Err(e.into());
            }
        };
        let mut flags = flags;
        if !flags.intersects(DescriptorFlags::READ | DescriptorFlags::WRITE) {
            // Neither asked for: readable, as wasmtime-wasi does.
            flags |= DescriptorFlags::READ;
        }
        let mutate = base.mutate && !self.vfs.readonly(node.fs);
        if kind != FileType::Dir || !mutate {
            // "This may only be set on directories": wasi-libc asks for it
            // with every write open, so it is dropped, not refused. On a
            // read-only mount it would be a lie.
            flags &= !DescriptorFlags::MUTATE_DIRECTORY;
        }
        Ok(self.push(Descriptor {
            node,
            scope: Scope::Deny,
            kind,
            flags,
            mutate,
        })?)
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let (dir, scope) = self.get(&fd)?.dir()?;
        Ok(self.vfs.read_link_at(dir, scope, &path)?)
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let (dir, scope) = self.get(&fd)?.dir_to_change()?;
        Ok(self.vfs.rmdir_at(dir, scope, &path)?)
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (from, from_scope) = self.get(&fd)?.dir_to_change()?;
        let (to, to_scope) = self.get(&new_descriptor)?.dir_to_change()?;
        Ok(self
            .vfs
            .rename_at(from, from_scope, &old_path, to, to_scope, &new_path)?)
    }

    fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> FsResult<()> {
        let (dir, scope) = self.get(&fd)?.dir_to_change()?;
        Ok(self.vfs.symlink_at(&old_path, dir, scope, &new_path)?)
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let (dir, scope) = self.get(&fd)?.dir_to_change()?;
        Ok(self.vfs.unlink_at(dir, scope, &path)?)
    }

    fn is_same_object(
        &mut self,
        fd: Resource<Descriptor>,
        other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        let a = self.table.get(&fd)?.node;
        let b = self.table.get(&other)?.node;
        Ok(a == b)
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<types::MetadataHashValue> {
        let d = self.get(&fd)?;
        let stat = self.vfs.stat(d.node)?;
        Ok(metadata_hash(&stat))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let (dir, scope) = self.get(&fd)?.dir()?;
        let stat = self.vfs.stat_at(dir, scope, &path, follow(path_flags))?;
        Ok(metadata_hash(&stat))
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        let d = self.table.delete(fd)?;
        self.vfs.close(d.node);
        Ok(())
    }
}

impl types::HostDirectoryEntryStream for FsView<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let s = self.table.get_mut(&stream)?;
        Ok(s.entries
            .pop_front()
            .map(|(name, kind)| types::DirectoryEntry {
                type_: descriptor_type(kind),
                name,
            }))
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
