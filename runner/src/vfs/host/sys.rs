//! The host side of [`super::HostFs`]: host errors mapped to the VFS's
//! [`Errno`] (by number on Unix, by [`io::ErrorKind`] elsewhere) and
//! positioned reads and writes that never move a shared file cursor.

use std::io;

use crate::vfs::fs::Errno;

/// Errno numbers of the Unix families kiln builds on, for mapping
/// `raw_os_error` exactly (`io::ErrorKind` folds several of them together).
/// The first group is the same everywhere; the second differs between Linux
/// and the BSD family (macOS included).
#[cfg(unix)]
mod errno_numbers {
    pub(super) const EPERM: i32 = 1;
    pub(super) const ENOENT: i32 = 2;
    pub(super) const EBADF: i32 = 9;
    pub(super) const EACCES: i32 = 13;
    pub(super) const EBUSY: i32 = 16;
    pub(super) const EEXIST: i32 = 17;
    pub(super) const EXDEV: i32 = 18;
    pub(super) const ENOTDIR: i32 = 20;
    pub(super) const EISDIR: i32 = 21;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ETXTBSY: i32 = 26;
    pub(super) const EFBIG: i32 = 27;
    pub(super) const ENOSPC: i32 = 28;
    pub(super) const EROFS: i32 = 30;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ENAMETOOLONG: i32 = 36;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ENOTEMPTY: i32 = 39;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ELOOP: i32 = 40;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ENOTSUP: i32 = 95;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const EDQUOT: i32 = 122;

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const ENAMETOOLONG: i32 = 63;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const ENOTEMPTY: i32 = 66;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const ELOOP: i32 = 62;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const ENOTSUP: i32 = 45;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const EDQUOT: i32 = 69;
}

/// Maps a host error to the VFS's errno.
#[cfg(unix)]
pub(super) fn errno(e: io::Error) -> Errno {
    use errno_numbers::*;
    match e.raw_os_error() {
        Some(EPERM) => Errno::Perm,
        Some(ENOENT) => Errno::Noent,
        Some(EBADF) => Errno::Badf,
        Some(EACCES | ETXTBSY) => Errno::Acces,
        Some(EBUSY) => Errno::Busy,
        Some(EEXIST) => Errno::Exist,
        Some(EXDEV) => Errno::Xdev,
        Some(ENOTDIR) => Errno::Notdir,
        Some(EISDIR) => Errno::Isdir,
        Some(EINVAL) => Errno::Inval,
        Some(EFBIG) => Errno::Fbig,
        Some(ENOSPC | EDQUOT) => Errno::Nospc,
        Some(EROFS) => Errno::Rofs,
        Some(ENAMETOOLONG) => Errno::Nametoolong,
        Some(ENOTEMPTY) => Errno::Notempty,
        Some(ELOOP) => Errno::Loop,
        Some(ENOTSUP) => Errno::Notsup,
        Some(_) => Errno::Io,
        // Errors cap-std makes up (a path that would escape the directory).
        None => errno_kind(&e),
    }
}

/// Maps a host error to the VFS's errno.
#[cfg(not(unix))]
pub(super) fn errno(e: io::Error) -> Errno {
    errno_kind(&e)
}

fn errno_kind(e: &io::Error) -> Errno {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => Errno::Noent,
        K::PermissionDenied => Errno::Acces,
        K::AlreadyExists => Errno::Exist,
        K::NotADirectory => Errno::Notdir,
        K::IsADirectory => Errno::Isdir,
        K::DirectoryNotEmpty => Errno::Notempty,
        K::ReadOnlyFilesystem => Errno::Rofs,
        K::StorageFull | K::QuotaExceeded => Errno::Nospc,
        K::FileTooLarge => Errno::Fbig,
        K::ResourceBusy | K::ExecutableFileBusy => Errno::Busy,
        K::CrossesDevices => Errno::Xdev,
        K::InvalidFilename => Errno::Nametoolong,
        K::InvalidInput => Errno::Inval,
        K::Unsupported => Errno::Notsup,
        _ => Errno::Io,
    }
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, offset)
}

/// Reads until `buf` is full or the end of the file.
pub(in crate::vfs) fn read_full_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

pub(in crate::vfs) fn write_all_at(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match write_at(file, &data[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
