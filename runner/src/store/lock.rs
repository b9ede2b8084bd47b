//! Advisory file locks between kiln processes sharing a store.
//!
//! Uses the standard library's `File::lock`/`lock_shared` (flock on Unix,
//! LockFileEx on Windows), so the same code runs on every host. The lock is
//! released when the [`StoreLock`] is dropped or the process dies.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::{Result, io_err};

/// A held lock on a store lock file.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub(super) fn acquire(path: &Path, exclusive: bool) -> Result<StoreLock> {
        let file = open(path).map_err(io_err("opening lock file", path))?;
        if exclusive {
            file.lock().map_err(io_err("locking", path))?;
        } else {
            file.lock_shared().map_err(io_err("locking", path))?;
        }
        Ok(StoreLock { _file: file })
    }

    /// Takes the lock exclusively if nobody holds it, without waiting.
    pub(super) fn try_exclusive(path: &Path) -> Option<StoreLock> {
        let file = open(path).ok()?;
        file.try_lock().ok()?;
        Some(StoreLock { _file: file })
    }
}

/// Opens (creating if needed) a lock file; its contents are never used.
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}
