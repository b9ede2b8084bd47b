//! The `wasi_snapshot_preview1` calls: [`StepState`] implements the trait
//! wiggle generated. Each call decodes its guest arguments, checks the
//! descriptor's kind and rights, and answers from the step's state.
//!
//! Order of checks, as in POSIX and wasmtime: a closed fd is `EBADF`, then a
//! descriptor of the wrong kind (`EBADF` for I/O on a directory, `ESPIPE`
//! for seeking a stream, `ENOTDIR` for a path relative to a file), then a
//! missing right (`ENOTCAPABLE`), then whatever the VFS says.

use std::io::{Read, Write};

use wiggle::{GuestMemory, GuestPtr};

use super::bindings::wasi_snapshot_preview1::WasiSnapshotPreview1;
use super::table::{DIR_RIGHTS, Descriptor, FILE_RIGHTS, Kind, Listed};
use super::types::{self, Errno, Fdflags, Rights};
use super::{MAX_IO_BYTES, MAX_IOVECS, RANDOM_CHUNK, StepState};
use crate::snapshot::MAX_PATH_BYTES;
use crate::vfs::{self, FileType, NodeRef, OpenFlags, Scope, SetTime, Vfs};

type Result<T, E = types::Error> = std::result::Result<T, E>;

/// Copies a guest path into the host, refusing one longer than any path
/// the VFS accepts before copying it.
fn read_path(mem: &GuestMemory<'_>, path: GuestPtr<str>) -> Result<String> {
    if path.len() as usize > MAX_PATH_BYTES {
        return Err(Errno::Nametoolong.into());
    }
    Ok(mem.as_cow_str(path)?.into_owned())
}

/// The buffers of an iovec list, at most [`MAX_IOVECS`] of them and
/// [`MAX_IO_BYTES`] in all (the rest is a short read or write).
fn buffers(mem: &GuestMemory<'_>, list: GuestPtr<[types::Iovec]>) -> Result<Vec<GuestPtr<[u8]>>> {
    capped(
        list.len(),
        list.iter().map(|iov| {
            let iov = mem.read(iov?)?;
            Ok((iov.buf, iov.buf_len))
        }),
    )
}

/// [`buffers`] for the const iovecs of a write.
fn cbuffers(mem: &GuestMemory<'_>, list: GuestPtr<[types::Ciovec]>) -> Result<Vec<GuestPtr<[u8]>>> {
    capped(
        list.len(),
        list.iter().map(|iov| {
            let iov = mem.read(iov?)?;
            Ok((iov.buf, iov.buf_len))
        }),
    )
}

fn capped(
    count: u32,
    iovs: impl Iterator<Item = Result<(GuestPtr<u8>, u32)>>,
) -> Result<Vec<GuestPtr<[u8]>>> {
    if count > MAX_IOVECS {
        return Err(Errno::Inval.into());
    }
    let mut out = Vec::new();
    let mut room = MAX_IO_BYTES as u32;
    for iov in iovs {
        let (buf, len) = iov?;
        let len = len.min(room);
        if len > 0 {
            out.push(buf.as_array(len));
            room -= len;
        }
    }
    Ok(out)
}

/// Reads file `node` from `offset` into the guest buffers; a failure after
/// some bytes were read ends the read short instead.
fn read_file(
    vfs: &mut Vfs,
    node: NodeRef,
    offset: u64,
    mem: &mut GuestMemory<'_>,
    bufs: &[GuestPtr<[u8]>],
) -> Result<usize> {
    let mut total = 0usize;
    for &buf in bufs {
        let want = buf.len() as usize;
        let at = offset.saturating_add(total as u64);
        let read = match mem.as_slice_mut(buf)? {
            Some(slice) => vfs.read(node, at, slice),
            None => {
                // Shared memory: read on the host, then copy in.
                let mut tmp = vec![0u8; want];
                let read = vfs.read(node, at, &mut tmp);
                if let Ok(n) = read {
                    let n32 = u32::try_from(n)?;
                    let dst = buf.get_range(0..n32).ok_or(Errno::Fault)?;
                    mem.copy_from_slice(&tmp[..n], dst)?;
                }
                read
            }
        };
        match read {
            Ok(n) => {
                total += n;
                if n < want {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// Writes the guest buffers to file `node` at `offset`; a failure after
/// some bytes were written ends the write short instead.
fn write_file(
    vfs: &mut Vfs,
    node: NodeRef,
    offset: u64,
    mem: &GuestMemory<'_>,
    bufs: &[GuestPtr<[u8]>],
) -> Result<usize> {
    let mut total = 0usize;
    for &buf in bufs {
        let data = mem.as_cow(buf)?;
        match vfs.write(node, offset.saturating_add(total as u64), &data) {
            Ok(n) => total += n,
            Err(e) if total == 0 => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// Writes the guest buffers to a standard stream.
fn write_stream(
    out: &mut dyn Write,
    mem: &GuestMemory<'_>,
    bufs: &[GuestPtr<[u8]>],
) -> Result<usize> {
    // A reader that went away (the next program of a pipeline ended) is
    // EPIPE, as for a closed pipe; anything else an I/O error.
    let error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Errno::Pipe,
        _ => Errno::Io,
    };
    let mut total = 0;
    for &buf in bufs {
        let data = mem.as_cow(buf)?;
        out.write_all(&data).map_err(error)?;
        total += data.len();
    }
    out.flush().map_err(error)?;
    Ok(total)
}

fn filetype(kind: FileType) -> types::Filetype {
    match kind {
        FileType::Dir => types::Filetype::Directory,
        FileType::File => types::Filetype::RegularFile,
        FileType::Symlink => types::Filetype::SymbolicLink,
    }
}

/// Nanoseconds since the epoch as a preview1 timestamp (times before the
/// epoch, which preview1 cannot express, become 0).
fn timestamp(ns: i64) -> types::Timestamp {
    u64::try_from(ns).unwrap_or(0)
}

fn filestat(st: &vfs::Stat) -> types::Filestat {
    types::Filestat {
        dev: st.dev,
        ino: st.ino,
        filetype: filetype(st.kind),
        nlink: st.nlink,
        size: st.size,
        atim: timestamp(st.atime),
        mtim: timestamp(st.mtime),
        ctim: timestamp(st.ctime),
    }
}

/// One timestamp of `*_set_times`: setting a value and "now" at once is
/// `EINVAL`.
fn set_time(value: types::Timestamp, set: bool, now: bool) -> Result<SetTime> {
    Ok(match (set, now) {
        (true, true) => return Err(Errno::Inval.into()),
        (true, false) => SetTime::At(i64::try_from(value)?),
        (false, true) => SetTime::Now,
        (false, false) => SetTime::Keep,
    })
}

fn set_times(
    atim: types::Timestamp,
    mtim: types::Timestamp,
    flags: types::Fstflags,
) -> Result<(SetTime, SetTime)> {
    use types::Fstflags as F;
    Ok((
        set_time(atim, flags.contains(F::ATIM), flags.contains(F::ATIM_NOW))?,
        set_time(mtim, flags.contains(F::MTIM), flags.contains(F::MTIM_NOW))?,
    ))
}

/// The open file behind a descriptor, for I/O: `EBADF` for anything else
/// (`ESPIPE` for a standard stream when `stream` says so), `ENOTCAPABLE`
/// without `right`.
fn file_of(desc: &Descriptor, right: Rights, stream: Errno) -> Result<NodeRef> {
    match desc.kind {
        Kind::File { node, .. } => {
            desc.require(right)?;
            Ok(node)
        }
        Kind::Stdin | Kind::Stdout | Kind::Stderr => Err(stream.into()),
        Kind::Dir { .. } => Err(Errno::Badf.into()),
    }
}

/// The directory a path is relative to: `ENOTDIR` for a file descriptor,
/// `EBADF` for a stream, `ENOTCAPABLE` without `right`.
fn dir_of(desc: &Descriptor, right: Rights) -> Result<(NodeRef, Scope)> {
    match desc.kind {
        Kind::Dir { node, scope, .. } => {
            desc.require(right)?;
            Ok((node, scope))
        }
        Kind::File { .. } => Err(Errno::Notdir.into()),
        _ => Err(Errno::Badf.into()),
    }
}

/// Serializes `fd_readdir` entries from `cookie` on, cut at `cap` bytes
/// (a cut entry tells the guest to retry with a larger buffer).
fn dirents(listing: &[Listed], cookie: u64, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (i, entry) in listing.iter().enumerate().skip(skip) {
        if out.len() >= cap {
            break;
        }
        let mut head = [0u8; 24];
        head[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        head[8..16].copy_from_slice(&entry.ino.to_le_bytes());
        head[16..20].copy_from_slice(&(entry.name.len() as u32).to_le_bytes());
        head[20] = entry.kind as u8;
        out.extend_from_slice(&head);
        out.extend_from_slice(entry.name.as_bytes());
    }
    out.truncate(cap);
    out
}

impl StepState {
    /// The descriptor `fd` and the VFS, borrowed together.
    fn fd(&mut self, fd: types::Fd) -> Result<(&mut Descriptor, &mut Vfs)> {
        let StepState { p1, vfs, .. } = self;
        let desc = p1.get(vfs, u32::from(fd))?;
        Ok((desc, vfs))
    }

    /// The directory and scope a path call works in.
    fn at(&mut self, fd: types::Fd, right: Rights) -> Result<(NodeRef, Scope)> {
        let (desc, _) = self.fd(fd)?;
        dir_of(desc, right)
    }

    fn fd_read_impl(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        at: Option<u64>,
    ) -> Result<types::Size> {
        let bufs = buffers(mem, iovs)?;
        let StepState { p1, vfs, stdio, .. } = self;
        let desc = p1.get(vfs, u32::from(fd))?;
        if matches!(desc.kind, Kind::Stdin) {
            if at.is_some() {
                return Err(Errno::Spipe.into());
            }
            desc.require(Rights::FD_READ)?;
            // One read into the first buffer, as a pipe read returns what
            // is there.
            let Some(&buf) = bufs.first() else {
                return Ok(0);
            };
            let mut tmp = vec![0u8; buf.len() as usize];
            let n = loop {
                match stdio.stdin.read(&mut tmp) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(Errno::Io.into()),
                }
            };
            let dst = buf.get_range(0..u32::try_from(n)?).ok_or(Errno::Fault)?;
            mem.copy_from_slice(&tmp[..n], dst)?;
            return Ok(u32::try_from(n)?);
        }
        let node = file_of(desc, Rights::FD_READ, Errno::Badf)?;
        let Kind::File { pos, .. } = &mut desc.kind else {
            return Err(Errno::Badf.into());
        };
        let offset = at.unwrap_or(*pos);
        let n = read_file(vfs, node, offset, mem, &bufs)?;
        if at.is_none() {
            *pos = offset.saturating_add(n as u64);
        }
        Ok(u32::try_from(n)?)
    }

    fn fd_write_impl(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::CiovecArray,
        at: Option<u64>,
    ) -> Result<types::Size> {
        let bufs = cbuffers(mem, iovs)?;
        let StepState { p1, vfs, stdio, .. } = self;
        let desc = p1.get(vfs, u32::from(fd))?;
        let stream: Option<&mut dyn Write> = match desc.kind {
            Kind::Stdout => Some(&mut *stdio.stdout),
            Kind::Stderr => Some(&mut *stdio.stderr),
            _ => None,
        };
        if let Some(out) = stream {
            if at.is_some() {
                return Err(Errno::Spipe.into());
            }
            desc.require(Rights::FD_WRITE)?;
            return Ok(u32::try_from(write_stream(out, mem, &bufs)?)?);
        }
        let node = file_of(desc, Rights::FD_WRITE, Errno::Badf)?;
        let flags = desc.flags;
        let Kind::File { pos, .. } = &mut desc.kind else {
            return Err(Errno::Badf.into());
        };
        // Append mode writes at the end, even `fd_pwrite` (as Linux does).
        let append = flags.contains(Fdflags::APPEND);
        let offset = if append {
            vfs.stat(node)?.size
        } else {
            at.unwrap_or(*pos)
        };
        let n = write_file(vfs, node, offset, mem, &bufs)?;
        if at.is_none() {
            *pos = offset.saturating_add(n as u64);
        }
        if flags.intersects(Fdflags::SYNC | Fdflags::DSYNC) {
            vfs.sync(node)?;
        }
        Ok(u32::try_from(n)?)
    }

    /// Lists directory `node` for `fd_readdir`: `.` and `..` first (both
    /// with the directory's own inode, as wasmtime: a descriptor does not
    /// know its parent), then the entries sorted by name.
    fn listing(vfs: &mut Vfs, node: NodeRef) -> Result<Vec<Listed>> {
        let ino = vfs.stat(node)?.ino;
        let dot = |name: &str| Listed {
            name: name.to_string(),
            ino,
            kind: types::Filetype::Directory,
        };
        let mut out = vec![dot("."), dot("..")];
        for (name, child, kind) in vfs.read_dir(node)? {
            // `Stat::ino` is the backend's node id.
            out.push(Listed {
                name,
                ino: child.id,
                kind: filetype(kind),
            });
        }
        Ok(out)
    }
}

impl WasiSnapshotPreview1 for StepState {
    fn args_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        argv: GuestPtr<GuestPtr<u8>>,
        argv_buf: GuestPtr<u8>,
    ) -> Result<()> {
        let (mut ptr, mut buf) = (argv, argv_buf);
        for arg in &self.args {
            mem.write(ptr, buf)?;
            ptr = ptr.add(1)?;
            let len = u32::try_from(arg.len())?;
            mem.copy_from_slice(arg.as_bytes(), buf.as_array(len))?;
            buf = buf.add(len)?;
            mem.write(buf, 0)?;
            buf = buf.add(1)?;
        }
        Ok(())
    }

    fn args_sizes_get(&mut self, _mem: &mut GuestMemory<'_>) -> Result<(types::Size, types::Size)> {
        let bytes: usize = self.args.iter().map(|a| a.len() + 1).sum();
        Ok((u32::try_from(self.args.len())?, u32::try_from(bytes)?))
    }

    fn environ_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        environ: GuestPtr<GuestPtr<u8>>,
        environ_buf: GuestPtr<u8>,
    ) -> Result<()> {
        let (mut ptr, mut buf) = (environ, environ_buf);
        for (key, value) in &self.env {
            mem.write(ptr, buf)?;
            ptr = ptr.add(1)?;
            let entry = format!("{key}={value}");
            let len = u32::try_from(entry.len())?;
            mem.copy_from_slice(entry.as_bytes(), buf.as_array(len))?;
            buf = buf.add(len)?;
            mem.write(buf, 0)?;
            buf = buf.add(1)?;
        }
        Ok(())
    }

    fn environ_sizes_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size)> {
        let bytes: usize = self.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        Ok((u32::try_from(self.env.len())?, u32::try_from(bytes)?))
    }

    fn clock_res_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        _id: types::Clockid,
    ) -> Result<types::Timestamp> {
        // Both clocks count nanoseconds.
        Ok(1)
    }

    fn clock_time_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        id: types::Clockid,
        _precision: types::Timestamp,
    ) -> Result<types::Timestamp> {
        Ok(match id {
            types::Clockid::Realtime => timestamp(self.clocks.wall_now()),
            // A step is one single-threaded process that started with the
            // monotonic clock: its CPU time is at most that clock's.
            types::Clockid::Monotonic
            | types::Clockid::ProcessCputimeId
            | types::Clockid::ThreadCputimeId => self.clocks.monotonic_now(),
        })
    }

    fn fd_advise(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        _offset: types::Filesize,
        _len: types::Filesize,
        _advice: types::Advice,
    ) -> Result<()> {
        let (desc, _) = self.fd(fd)?;
        file_of(desc, Rights::FD_ADVISE, Errno::Badf)?;
        Ok(())
    }

    fn fd_allocate(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
    ) -> Result<()> {
        let (desc, vfs) = self.fd(fd)?;
        let node = file_of(desc, Rights::FD_ALLOCATE, Errno::Badf)?;
        let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
        if end > vfs.stat(node)?.size {
            vfs.set_size(node, end)?;
        }
        Ok(())
    }

    fn fd_close(&mut self, _mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let StepState { p1, vfs, .. } = self;
        Ok(p1.close(vfs, u32::from(fd))?)
    }

    fn fd_datasync(&mut self, _mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let (desc, vfs) = self.fd(fd)?;
        let node = desc.node().ok_or(Errno::Badf)?;
        desc.require(Rights::FD_DATASYNC)?;
        Ok(vfs.sync(node)?)
    }

    fn fd_fdstat_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Fdstat> {
        let terminal = self.stdio.terminal;
        let (desc, _) = self.fd(fd)?;
        Ok(types::Fdstat {
            fs_filetype: desc.filetype(terminal),
            fs_flags: desc.flags,
            fs_rights_base: desc.base,
            fs_rights_inheriting: desc.inheriting,
        })
    }

    fn fd_fdstat_set_flags(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: Fdflags,
    ) -> Result<()> {
        let (desc, _) = self.fd(fd)?;
        desc.require(Rights::FD_FDSTAT_SET_FLAGS)?;
        // Only APPEND and NONBLOCK can change after opening, as wasmtime.
        if flags.intersects(Fdflags::DSYNC | Fdflags::RSYNC | Fdflags::SYNC) {
            return Err(Errno::Inval.into());
        }
        desc.flags = flags;
        Ok(())
    }

    fn fd_fdstat_set_rights(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        base: Rights,
        inheriting: Rights,
    ) -> Result<()> {
        let (desc, _) = self.fd(fd)?;
        // Rights can only be dropped.
        if !desc.base.contains(base) || !desc.inheriting.contains(inheriting) {
            return Err(Errno::Notcapable.into());
        }
        desc.base = base;
        desc.inheriting = inheriting;
        Ok(())
    }

    fn fd_filestat_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Filestat> {
        let terminal = self.stdio.terminal;
        let (desc, vfs) = self.fd(fd)?;
        desc.require(Rights::FD_FILESTAT_GET)?;
        match desc.node() {
            Some(node) => Ok(filestat(&vfs.stat(node)?)),
            None => Ok(types::Filestat {
                dev: 0,
                ino: 0,
                filetype: desc.filetype(terminal),
                nlink: 0,
                size: 0,
                atim: 0,
                mtim: 0,
                ctim: 0,
            }),
        }
    }

    fn fd_filestat_set_size(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        size: types::Filesize,
    ) -> Result<()> {
        let (desc, vfs) = self.fd(fd)?;
        let node = file_of(desc, Rights::FD_FILESTAT_SET_SIZE, Errno::Badf)?;
        Ok(vfs.set_size(node, size)?)
    }

    fn fd_filestat_set_times(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        let (atime, mtime) = set_times(atim, mtim, fst_flags)?;
        let (desc, vfs) = self.fd(fd)?;
        let node = desc.node().ok_or(Errno::Badf)?;
        desc.require(Rights::FD_FILESTAT_SET_TIMES)?;
        Ok(vfs.set_times(node, atime, mtime)?)
    }

    fn fd_pread(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        self.fd_read_impl(mem, fd, iovs, Some(offset))
    }

    fn fd_prestat_get(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Prestat> {
        let (desc, _) = self.fd(fd)?;
        match &desc.kind {
            Kind::Dir {
                preopen: Some(path),
                ..
            } => Ok(types::Prestat::Dir(types::PrestatDir {
                pr_name_len: u32::try_from(path.len())?,
            })),
            _ => Err(Errno::Badf.into()),
        }
    }

    fn fd_prestat_dir_name(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<u8>,
        path_len: types::Size,
    ) -> Result<()> {
        let (desc, _) = self.fd(fd)?;
        let Kind::Dir {
            preopen: Some(name),
            ..
        } = &desc.kind
        else {
            return Err(Errno::Badf.into());
        };
        let len = u32::try_from(name.len())?;
        if len > path_len {
            return Err(Errno::Nametoolong.into());
        }
        let name = name.clone();
        mem.copy_from_slice(name.as_bytes(), path.as_array(len))?;
        Ok(())
    }

    fn fd_pwrite(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        self.fd_write_impl(mem, fd, iovs, Some(offset))
    }

    fn fd_read(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
    ) -> Result<types::Size> {
        self.fd_read_impl(mem, fd, iovs, None)
    }

    fn fd_readdir(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size> {
        let (desc, vfs) = self.fd(fd)?;
        match desc.kind {
            Kind::Dir { .. } => desc.require(Rights::FD_READDIR)?,
            Kind::File { .. } => return Err(Errno::Notdir.into()),
            _ => return Err(Errno::Badf.into()),
        }
        let Kind::Dir { node, listing, .. } = &mut desc.kind else {
            return Err(Errno::Badf.into());
        };
        // A listing starts at cookie 0; later cookies continue the listing
        // taken then (POSIX leaves entries changed meanwhile unspecified).
        if cookie == 0 || listing.is_none() {
            *listing = Some(Self::listing(vfs, *node)?);
        }
        let entries = listing.as_deref().unwrap_or_default();
        // The host buffer is at most the serialized listing, whatever size
        // the guest claims for its own.
        let out = dirents(entries, cookie, buf_len as usize);
        let len = u32::try_from(out.len())?;
        mem.copy_from_slice(&out, buf.as_array(len))?;
        Ok(len)
    }

    fn fd_renumber(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        to: types::Fd,
    ) -> Result<()> {
        let StepState { p1, vfs, .. } = self;
        Ok(p1.renumber(vfs, u32::from(fd), u32::from(to))?)
    }

    fn fd_seek(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filedelta,
        whence: types::Whence,
    ) -> Result<types::Filesize> {
        let (desc, vfs) = self.fd(fd)?;
        // Reading the position only needs FD_TELL.
        let right = if whence == types::Whence::Cur && offset == 0 {
            if desc.base.contains(Rights::FD_TELL) {
                Rights::FD_TELL
            } else {
                Rights::FD_SEEK
            }
        } else {
            Rights::FD_SEEK
        };
        let node = file_of(desc, right, Errno::Spipe)?;
        let Kind::File { pos, .. } = &mut desc.kind else {
            return Err(Errno::Badf.into());
        };
        let new = match whence {
            types::Whence::Set => u64::try_from(offset).map_err(|_| Errno::Inval)?,
            types::Whence::Cur => pos.checked_add_signed(offset).ok_or(Errno::Inval)?,
            types::Whence::End => vfs
                .stat(node)?
                .size
                .checked_add_signed(offset)
                .ok_or(Errno::Inval)?,
        };
        *pos = new;
        Ok(new)
    }

    fn fd_sync(&mut self, _mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let (desc, vfs) = self.fd(fd)?;
        let node = desc.node().ok_or(Errno::Badf)?;
        desc.require(Rights::FD_SYNC)?;
        Ok(vfs.sync(node)?)
    }

    fn fd_tell(&mut self, _mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filesize> {
        let (desc, _) = self.fd(fd)?;
        file_of(desc, Rights::FD_TELL, Errno::Spipe)?;
        match desc.kind {
            Kind::File { pos, .. } => Ok(pos),
            _ => Err(Errno::Badf.into()),
        }
    }

    fn fd_write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::CiovecArray,
    ) -> Result<types::Size> {
        self.fd_write_impl(mem, fd, iovs, None)
    }

    fn path_create_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_CREATE_DIRECTORY)?;
        Ok(self.vfs.mkdir_at(dir, scope, &path)?)
    }

    fn path_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat> {
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_FILESTAT_GET)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        Ok(filestat(&self.vfs.stat_at(dir, scope, &path, follow)?))
    }

    fn path_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        let (atime, mtime) = set_times(atim, mtim, fst_flags)?;
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_FILESTAT_SET_TIMES)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        Ok(self
            .vfs
            .set_times_at(dir, scope, &path, follow, atime, mtime)?)
    }

    fn path_link(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_fd: types::Fd,
        old_flags: types::Lookupflags,
        old_path: GuestPtr<str>,
        new_fd: types::Fd,
        new_path: GuestPtr<str>,
    ) -> Result<()> {
        let old_path = read_path(mem, old_path)?;
        let new_path = read_path(mem, new_path)?;
        let (from, from_scope) = self.at(old_fd, Rights::PATH_LINK_SOURCE)?;
        let (to, to_scope) = self.at(new_fd, Rights::PATH_LINK_TARGET)?;
        let follow = old_flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        Ok(self
            .vfs
            .link_at(from, from_scope, &old_path, follow, to, to_scope, &new_path)?)
    }

    fn path_open(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: Rights,
        fs_rights_inheriting: Rights,
        fdflags: Fdflags,
    ) -> Result<types::Fd> {
        use types::Oflags as O;
        let path = read_path(mem, path)?;
        let StepState { p1, vfs, .. } = self;
        let desc = p1.get(vfs, u32::from(fd))?;
        let mut needed = Rights::PATH_OPEN;
        if oflags.contains(O::CREAT) {
            needed |= Rights::PATH_CREATE_FILE;
        }
        if oflags.contains(O::TRUNC) {
            needed |= Rights::PATH_FILESTAT_SET_SIZE;
        }
        let (dir, scope) = dir_of(desc, needed)?;
        // What was asked for, within what the directory passes on.
        let base = fs_rights_base & desc.inheriting;
        let inheriting = fs_rights_inheriting & desc.inheriting;
        let flags = OpenFlags {
            create: oflags.contains(O::CREAT),
            exclusive: oflags.contains(O::EXCL),
            truncate: oflags.contains(O::TRUNC),
            directory: oflags.contains(O::DIRECTORY),
            follow: dirflags.contains(types::Lookupflags::SYMLINK_FOLLOW),
            write: base.contains(Rights::FD_WRITE),
        };
        let node = vfs.open_at(dir, scope, &path, flags)?;
        let kind = match vfs.stat(node) {
            Ok(st) => st.kind,
            Err(e) => {
                vfs.close(node);
                return Err(e.into());
            }
        };
        let desc = match kind {
            FileType::Dir => Descriptor {
                kind: Kind::Dir {
                    node,
                    scope: Scope::Deny,
                    preopen: None,
                    listing: None,
                },
                base: base & DIR_RIGHTS,
                inheriting,
                flags: fdflags,
            },
            FileType::File => Descriptor {
                kind: Kind::File { node, pos: 0 },
                base: base & FILE_RIGHTS,
                inheriting,
                flags: fdflags,
            },
            FileType::Symlink => {
                vfs.close(node);
                return Err(Errno::Loop.into());
            }
        };
        Ok(types::Fd::from(p1.insert(vfs, desc)?))
    }

    fn path_readlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<types::Size> {
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_READLINK)?;
        let target = self.vfs.read_link_at(dir, scope, &path)?;
        // Cut to the buffer, as readlink(2).
        let bytes = &target.as_bytes()[..target.len().min(buf_len as usize)];
        let len = u32::try_from(bytes.len())?;
        mem.copy_from_slice(bytes, buf.as_array(len))?;
        Ok(len)
    }

    fn path_remove_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_REMOVE_DIRECTORY)?;
        Ok(self.vfs.rmdir_at(dir, scope, &path)?)
    }

    fn path_rename(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        old_path: GuestPtr<str>,
        new_fd: types::Fd,
        new_path: GuestPtr<str>,
    ) -> Result<()> {
        let old_path = read_path(mem, old_path)?;
        let new_path = read_path(mem, new_path)?;
        let (from, from_scope) = self.at(fd, Rights::PATH_RENAME_SOURCE)?;
        let (to, to_scope) = self.at(new_fd, Rights::PATH_RENAME_TARGET)?;
        Ok(self
            .vfs
            .rename_at(from, from_scope, &old_path, to, to_scope, &new_path)?)
    }

    fn path_symlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_path: GuestPtr<str>,
        fd: types::Fd,
        new_path: GuestPtr<str>,
    ) -> Result<()> {
        let target = read_path(mem, old_path)?;
        let new_path = read_path(mem, new_path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_SYMLINK)?;
        Ok(self.vfs.symlink_at(&target, dir, scope, &new_path)?)
    }

    fn path_unlink_file(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let path = read_path(mem, path)?;
        let (dir, scope) = self.at(fd, Rights::PATH_UNLINK_FILE)?;
        Ok(self.vfs.unlink_at(dir, scope, &path)?)
    }

    fn poll_oneoff(
        &mut self,
        mem: &mut GuestMemory<'_>,
        subs: GuestPtr<types::Subscription>,
        events: GuestPtr<types::Event>,
        nsubscriptions: types::Size,
    ) -> Result<types::Size> {
        super::poll::poll_oneoff(self, mem, subs, events, nsubscriptions)
    }

    fn proc_exit(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        status: types::Exitcode,
    ) -> wasmtime::Error {
        let StepState { p1, vfs, .. } = self;
        p1.close_all(vfs);
        // The exact status, whatever its value: exec reports it as is.
        wasmtime_wasi::I32Exit(status as i32).into()
    }

    fn proc_raise(&mut self, _mem: &mut GuestMemory<'_>, _sig: types::Signal) -> Result<()> {
        Err(Errno::Notsup.into())
    }

    fn sched_yield(&mut self, _mem: &mut GuestMemory<'_>) -> Result<()> {
        std::thread::yield_now();
        Ok(())
    }

    fn random_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<()> {
        let mut chunk = vec![0u8; (buf_len as usize).min(RANDOM_CHUNK)];
        let mut done = 0u32;
        while done < buf_len {
            let n = (buf_len - done).min(chunk.len() as u32);
            let bytes = &mut chunk[..n as usize];
            self.random.fill(bytes);
            mem.copy_from_slice(bytes, buf.add(done)?.as_array(n))?;
            done += n;
        }
        Ok(())
    }

    fn sock_accept(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        _flags: Fdflags,
    ) -> Result<types::Fd> {
        self.fd(fd)?;
        Err(Errno::Notsock.into())
    }

    fn sock_recv(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        _ri_data: types::IovecArray,
        _ri_flags: types::Riflags,
    ) -> Result<(types::Size, types::Roflags)> {
        self.fd(fd)?;
        Err(Errno::Notsock.into())
    }

    fn sock_send(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        _si_data: types::CiovecArray,
        _si_flags: types::Siflags,
    ) -> Result<types::Size> {
        self.fd(fd)?;
        Err(Errno::Notsock.into())
    }

    fn sock_shutdown(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        _how: types::Sdflags,
    ) -> Result<()> {
        // No descriptor is a socket: an open one is ENOTSOCK, as wasmtime.
        self.fd(fd)?;
        Err(Errno::Notsock.into())
    }
}
