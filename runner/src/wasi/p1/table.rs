//! The preview1 descriptor table: what each fd is, its rights, flags and
//! position, and the VFS open reference each filesystem descriptor holds.
//!
//! The table is built on the first call that needs it (taking a reference
//! on each preopen needs the VFS, which [`P1State::new`] does not have).
//! New descriptors take the lowest free number, as POSIX `open` does.

use std::collections::BTreeMap;

use super::MAX_OPEN_FDS;
use super::types::{self, Fdflags, Rights};
use crate::vfs::{NodeRef, Scope, Vfs};
use crate::wasi::Preopen;

const fn rights(list: &[Rights]) -> Rights {
    let mut bits = 0;
    let mut i = 0;
    while i < list.len() {
        bits |= list[i].bits();
        i += 1;
    }
    Rights::from_bits_retain(bits)
}

/// The rights that mean something on a directory descriptor.
pub(super) const DIR_RIGHTS: Rights = rights(&[
    Rights::PATH_CREATE_DIRECTORY,
    Rights::PATH_CREATE_FILE,
    Rights::PATH_LINK_SOURCE,
    Rights::PATH_LINK_TARGET,
    Rights::PATH_OPEN,
    Rights::FD_READDIR,
    Rights::PATH_READLINK,
    Rights::PATH_RENAME_SOURCE,
    Rights::PATH_RENAME_TARGET,
    Rights::PATH_FILESTAT_GET,
    Rights::PATH_FILESTAT_SET_SIZE,
    Rights::PATH_FILESTAT_SET_TIMES,
    Rights::PATH_SYMLINK,
    Rights::PATH_REMOVE_DIRECTORY,
    Rights::PATH_UNLINK_FILE,
    Rights::FD_FILESTAT_GET,
    Rights::FD_FILESTAT_SET_TIMES,
    Rights::FD_SYNC,
    Rights::FD_DATASYNC,
]);

/// The rights that mean something on a regular file descriptor.
pub(super) const FILE_RIGHTS: Rights = rights(&[
    Rights::FD_DATASYNC,
    Rights::FD_READ,
    Rights::FD_SEEK,
    Rights::FD_FDSTAT_SET_FLAGS,
    Rights::FD_SYNC,
    Rights::FD_TELL,
    Rights::FD_WRITE,
    Rights::FD_ADVISE,
    Rights::FD_ALLOCATE,
    Rights::FD_FILESTAT_GET,
    Rights::FD_FILESTAT_SET_SIZE,
    Rights::FD_FILESTAT_SET_TIMES,
    Rights::POLL_FD_READWRITE,
]);

/// Standard input: readable, stat-able, pollable, flags settable.
const STDIN_RIGHTS: Rights = rights(&[
    Rights::FD_READ,
    Rights::FD_FDSTAT_SET_FLAGS,
    Rights::FD_FILESTAT_GET,
    Rights::POLL_FD_READWRITE,
]);

/// Standard output and error: writable, stat-able, pollable, flags
/// settable.
const STDOUT_RIGHTS: Rights = rights(&[
    Rights::FD_WRITE,
    Rights::FD_FDSTAT_SET_FLAGS,
    Rights::FD_FILESTAT_GET,
    Rights::POLL_FD_READWRITE,
]);

/// An entry of a directory listing as `fd_readdir` returns it.
#[derive(Clone, Debug)]
pub(super) struct Listed {
    pub(super) name: String,
    pub(super) ino: u64,
    pub(super) kind: types::Filetype,
}

/// What a descriptor refers to.
pub(super) enum Kind {
    Stdin,
    Stdout,
    Stderr,
    File {
        node: NodeRef,
        /// The offset of `fd_read`/`fd_write`/`fd_seek`.
        pos: u64,
    },
    Dir {
        node: NodeRef,
        scope: Scope,
        /// The guest path, for a preopen.
        preopen: Option<String>,
        /// The listing `fd_readdir` took at cookie 0, served to the calls
        /// that continue it.
        listing: Option<Vec<Listed>>,
    },
}

/// One open descriptor.
pub(super) struct Descriptor {
    pub(super) kind: Kind,
    pub(super) base: Rights,
    pub(super) inheriting: Rights,
    pub(super) flags: Fdflags,
}

impl Descriptor {
    /// The VFS node of a file or directory descriptor.
    pub(super) fn node(&self) -> Option<NodeRef> {
        match self.kind {
            Kind::File { node, .. } | Kind::Dir { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Fails with `ENOTCAPABLE` unless the descriptor has `needed`.
    pub(super) fn require(&self, needed: Rights) -> Result<(), types::Errno> {
        if self.base.contains(needed) {
            Ok(())
        } else {
            Err(types::Errno::Notcapable)
        }
    }

    /// The preview1 file type.
    pub(super) fn filetype(&self, terminal: bool) -> types::Filetype {
        match self.kind {
            // As wasmtime: a terminal is a character device, anything else
            // (a pipe, a file) is of unknown type.
            Kind::Stdin | Kind::Stdout | Kind::Stderr if terminal => {
                types::Filetype::CharacterDevice
            }
            Kind::Stdin | Kind::Stdout | Kind::Stderr => types::Filetype::Unknown,
            Kind::File { .. } => types::Filetype::RegularFile,
            Kind::Dir { .. } => types::Filetype::Directory,
        }
    }
}

/// The preview1 layer's state: the descriptor table.
pub struct P1State {
    preopens: Vec<Preopen>,
    fds: Option<BTreeMap<u32, Descriptor>>,
}

impl P1State {
    /// A table with stdin, stdout, stderr and then `preopens` as fds 3...
    pub fn new(preopens: &[Preopen]) -> P1State {
        P1State {
            preopens: preopens.to_vec(),
            fds: None,
        }
    }

    /// Closes every descriptor, releasing their VFS references. The table
    /// is empty afterwards (a later call sees every fd closed).
    pub fn close_all(&mut self, vfs: &mut Vfs) {
        let fds = self.fds.get_or_insert_with(BTreeMap::new);
        for (_, desc) in std::mem::take(fds) {
            if let Some(node) = desc.node() {
                vfs.close(node);
            }
        }
    }

    /// The table, built on first use.
    pub(super) fn fds(&mut self, vfs: &mut Vfs) -> &mut BTreeMap<u32, Descriptor> {
        self.fds.get_or_insert_with(|| {
            let stdio = |kind, rights| Descriptor {
                kind,
                base: rights,
                inheriting: rights,
                flags: Fdflags::empty(),
            };
            let mut fds = BTreeMap::from([
                (0, stdio(Kind::Stdin, STDIN_RIGHTS)),
                (1, stdio(Kind::Stdout, STDOUT_RIGHTS)),
                (2, stdio(Kind::Stderr, STDOUT_RIGHTS)),
            ]);
            let mut fd = 3;
            for p in &self.preopens {
                // A preopen whose directory is gone is simply not there.
                if vfs.retain(p.node).is_err() {
                    continue;
                }
                fds.insert(
                    fd,
                    Descriptor {
                        kind: Kind::Dir {
                            node: p.node,
                            scope: p.scope,
                            preopen: Some(p.guest_path.clone()),
                            listing: None,
                        },
                        base: DIR_RIGHTS,
                        inheriting: DIR_RIGHTS | FILE_RIGHTS,
                        flags: Fdflags::empty(),
                    },
                );
                fd += 1;
            }
            fds
        })
    }

    /// The descriptor `fd`, or `EBADF`.
    pub(super) fn get(&mut self, vfs: &mut Vfs, fd: u32) -> Result<&mut Descriptor, types::Errno> {
        self.fds(vfs).get_mut(&fd).ok_or(types::Errno::Badf)
    }

    /// Adds a descriptor under the lowest free number. The descriptor's VFS
    /// reference now belongs to the table.
    pub(super) fn insert(&mut self, vfs: &mut Vfs, desc: Descriptor) -> Result<u32, types::Errno> {
        let fds = self.fds(vfs);
        if fds.len() >= MAX_OPEN_FDS {
            if let Some(node) = desc.node() {
                vfs.close(node);
            }
            return Err(types::Errno::Mfile);
        }
        let mut fd = 0;
        for &used in fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        fds.insert(fd, desc);
        Ok(fd)
    }

    /// Removes and closes `fd`.
    pub(super) fn close(&mut self, vfs: &mut Vfs, fd: u32) -> Result<(), types::Errno> {
        let desc = self.fds(vfs).remove(&fd).ok_or(types::Errno::Badf)?;
        if let Some(node) = desc.node() {
            vfs.close(node);
        }
        Ok(())
    }

    /// Moves `from` to `to`, closing what `to` was. Both must be open.
    pub(super) fn renumber(
        &mut self,
        vfs: &mut Vfs,
        from: u32,
        to: u32,
    ) -> Result<(), types::Errno> {
        let fds = self.fds(vfs);
        if !fds.contains_key(&from) || !fds.contains_key(&to) {
            return Err(types::Errno::Badf);
        }
        if from == to {
            return Ok(());
        }
        let desc = fds.remove(&from).ok_or(types::Errno::Badf)?;
        if let Some(old) = fds.insert(to, desc)
            && let Some(node) = old.node()
        {
            vfs.close(node);
        }
        Ok(())
    }
}
