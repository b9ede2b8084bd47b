//! Host handles on the store's content files that steps read: opened when
//! a guest first reads an image file, released when the guest closes it,
//! and never more than [`MAX_CONTENT_HANDLES`] at once in the process.
//!
//! A step may open, or hold open, far more image files than the process may
//! have descriptors (`tar` over a million files; a guest keeping thousands
//! of files open). The overlay therefore keeps no host handle per file: its
//! reads go through this process-wide least-recently-used cache, keyed by
//! the content file's path, which reopens a file on demand after evicting
//! it. Reads are positioned (`pread`), so one handle serves every step and
//! thread that reads the same contents.
//!
//! Contents in the store never change under a digest, so a reopened file
//! has the same bytes; they were verified once per step before the first
//! read (`OverlayFs::verify_lower`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most content files kept open at once by the whole process. Every step
/// running in parallel shares them, so the count stays the same whatever
/// `--jobs` is: far under the 256 descriptors macOS gives a process by
/// default (and the 1024 of most Linux shells), leaving the rest to the
/// store, the engine, host mounts and the files a step writes, yet enough
/// that a guest interleaving reads of a few dozen files never reopens one.
pub const MAX_CONTENT_HANDLES: usize = 64;

#[derive(Default)]
struct Cache {
    open: HashMap<PathBuf, (Arc<File>, u64)>,
    tick: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    // A panic elsewhere cannot leave the map half-updated in a way that
    // matters: at worst a handle is missing and gets reopened.
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Cache::default))
}

/// The handle on `path`, opened (and another evicted) if needed.
fn handle(path: &Path) -> io::Result<Arc<File>> {
    let cached = with_cache(|c| {
        c.tick += 1;
        let tick = c.tick;
        c.open.get_mut(path).map(|(file, used)| {
            *used = tick;
            Arc::clone(file)
        })
    });
    if let Some(file) = cached {
        return Ok(file);
    }
    // Opened without the lock held: a slow disk must not stall other steps.
    let file = Arc::new(File::open(path)?);
    with_cache(|c| {
        while c.open.len() >= MAX_CONTENT_HANDLES {
            let oldest = c
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone());
            match oldest {
                Some(p) => c.open.remove(&p),
                None => break,
            };
        }
        c.tick += 1;
        let tick = c.tick;
        c.open.insert(path.to_path_buf(), (Arc::clone(&file), tick));
    });
    Ok(file)
}

/// Reads from the content file at `path` at `offset` until `buf` is full or
/// the file ends.
pub(super) fn read_at(path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let file = handle(path)?;
    super::host::read_full_at(&file, buf, offset)
}

/// Closes the handle on `path` if one is cached (the guest closed the file;
/// a later read reopens it).
pub(super) fn release(path: &Path) {
    with_cache(|c| c.open.remove(path));
}

/// How many content files are open now (for tests).
#[cfg(test)]
pub(super) fn open_count() -> usize {
    with_cache(|c| c.open.len())
}
