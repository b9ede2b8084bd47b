//! Tar headers as kiln writes them, shared by layers and filesystem exports:
//! GNU format (long names through GNU extensions), no user or group names,
//! no access or change times, permission bits only in the mode field.

use std::io::{self, Write};

use tar::{EntryType, Header};

use crate::snapshot::{ImagePath, Meta};

/// A header for one entry.
pub(crate) fn header(kind: EntryType, meta: &Meta, mtime: u64, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(u64::from(meta.uid));
    h.set_gid(u64::from(meta.gid));
    h.set_mtime(mtime);
    h.set_size(size);
    h
}

/// Appends a directory entry (`path/`); the root is never written.
pub(crate) fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &ImagePath,
    meta: &Meta,
    mtime: u64,
) -> io::Result<()> {
    if path.is_root() {
        return Ok(());
    }
    let mut h = header(EntryType::Directory, meta, mtime, 0);
    tar.append_data(&mut h, format!("{}/", path.as_str()), io::empty())
}

/// Appends an empty marker file (whiteouts).
pub(crate) fn append_marker<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &ImagePath,
    mtime: u64,
) -> io::Result<()> {
    let mut h = header(EntryType::Regular, &Meta::root(0, 0), mtime, 0);
    tar.append_data(&mut h, path.as_str(), io::empty())
}
