//! The shell's own file work in a step's `Vfs`: redirections (`<`, `>`,
//! `>>`), `test`/`[`, `cd` and globbing. Paths come absolute and
//! normalized (`/a/b`) and resolve from the image root, links followed
//! inside the step's filesystem only.

use std::io;

use super::host::PathTest;
use crate::vfs::{Errno, FileType, OpenFlags, Scope, Vfs};

/// The contents of a file, refused above `max` bytes (it is held in
/// memory).
pub(super) fn read(vfs: &mut Vfs, path: &str, max: u64) -> io::Result<Vec<u8>> {
    let node = open(vfs, path, OpenFlags::default())?;
    let result = vfs.stat(node).and_then(|stat| match stat.kind {
        FileType::Dir => Err(Errno::Isdir),
        _ if stat.size > max => Err(Errno::Fbig),
        _ => crate::step::read_node(vfs, node, stat.size),
    });
    vfs.close(node);
    result.map_err(error)
}

/// Creates or truncates a file (`>`), or creates it if missing (`>>`).
pub(super) fn open_write(vfs: &mut Vfs, path: &str, append: bool) -> io::Result<()> {
    let flags = OpenFlags {
        create: true,
        truncate: !append,
        write: true,
        ..Default::default()
    };
    let node = open(vfs, path, flags)?;
    vfs.close(node);
    Ok(())
}

/// Appends `data` to a file.
pub(super) fn append(vfs: &mut Vfs, path: &str, data: &[u8]) -> io::Result<()> {
    let flags = OpenFlags {
        write: true,
        ..Default::default()
    };
    let node = open(vfs, path, flags)?;
    let written = (|| {
        let mut at = vfs.stat(node)?.size;
        let mut rest = data;
        while !rest.is_empty() {
            let n = vfs.write(node, at, rest)?;
            at += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    })();
    vfs.close(node);
    written.map_err(error)
}

/// `test -e/-f/-d/-x/-s/-L`.
pub(super) fn test(vfs: &mut Vfs, path: &str, what: PathTest) -> bool {
    let root = vfs.root();
    let follow = what != PathTest::Symlink;
    let Ok(stat) = vfs.stat_at(root, Scope::Clamp, relative(path), follow) else {
        return false;
    };
    match what {
        PathTest::Exists => true,
        PathTest::File => stat.kind == FileType::File,
        PathTest::Dir => stat.kind == FileType::Dir,
        PathTest::Executable => stat.mode & 0o111 != 0,
        PathTest::NonEmpty => stat.size > 0,
        PathTest::Symlink => stat.kind == FileType::Symlink,
    }
}

/// The names in a directory.
pub(super) fn list(vfs: &mut Vfs, path: &str) -> io::Result<Vec<String>> {
    let root = vfs.root();
    let dir = vfs
        .resolve(root, Scope::Clamp, relative(path), true)
        .map_err(error)?;
    let entries = vfs.read_dir(dir).map_err(error)?;
    Ok(entries
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|n| n != "." && n != "..")
        .collect())
}

/// Opens `path` with `flags`, links followed; the caller closes it.
fn open(vfs: &mut Vfs, path: &str, flags: OpenFlags) -> io::Result<crate::vfs::NodeRef> {
    let root = vfs.root();
    let flags = OpenFlags {
        follow: true,
        ..flags
    };
    vfs.open_at(root, Scope::Clamp, relative(path), flags)
        .map_err(error)
}

/// A path (`/a/b`) as the `Vfs` takes it from the root.
fn relative(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        rel => rel,
    }
}
/// An `Errno` as the message a shell prints.
fn error(e: Errno) -> io::Error {
    let (kind, text) = match e {
        Errno::Noent => (io::ErrorKind::NotFound, "No such file or directory"),
        Errno::Isdir => (io::ErrorKind::Other, "Is a directory"),
        Errno::Notdir => (io::ErrorKind::Other, "Not a directory"),
        Errno::Acces | Errno::Perm => (io::ErrorKind::PermissionDenied, "Permission denied"),
        Errno::Rofs => (io::ErrorKind::Other, "Read-only file system"),
        Errno::Nospc => (
            io::ErrorKind::Other,
            "No space left (the step's write limit)",
        ),
        Errno::Fbig => (io::ErrorKind::Other, "File too large to read into memory"),
        Errno::Loop => (io::ErrorKind::Other, "Too many levels of symbolic links"),
        Errno::Notcapable => (io::ErrorKind::PermissionDenied, "Outside the directory"),
        other => return io::Error::other(format!("{other:?}")),
    };
    io::Error::new(kind, text)
}
