//! The store's temp area: one private directory per kiln process, and the
//! sweep that removes what dead processes left behind.
//!
//! ```text
//! STORE/kiln/tmp/<pid>-<nonce>.lock   held locked for the life of the process
//! STORE/kiln/tmp/<pid>-<nonce>/       that process's named temp files
//! ```
//!
//! A process that is killed (SIGKILL, a power loss, a second Ctrl-C) runs no
//! destructors, so its named temp files stay. Its lock does not: the OS
//! releases it with the process. [`sweep`] runs whenever a store is opened
//! and removes every session directory whose lock it can take, so nothing a
//! dead build wrote survives the next start. A live session's lock cannot be
//! taken, so concurrent builds never lose each other's files.
//!
//! Contents a step wrote never go to a named file here while they are being
//! written or scanned: see [`super::blob`], which writes into unlinked files
//! and names them only when they are complete and clean.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{Result, io_err};

/// Suffix of a session's lock file.
const LOCK_SUFFIX: &str = ".lock";
/// Suffix of a lock file being created (locked, then renamed to its name).
const NEW_SUFFIX: &str = ".lock-new";
/// Age after which a lock file still being created is surely abandoned.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// One process's temp directory, removed when the last handle is dropped.
#[derive(Debug)]
pub(super) struct Session {
    dir: PathBuf,
    lock_path: PathBuf,
    // Held for the life of the session; the OS releases it if we die.
    lock: Option<File>,
}

impl Session {
    /// Creates a new session under `tmp` (the store's `kiln/tmp`).
    pub(super) fn create(tmp: &Path) -> Result<Session> {
        let name = format!("{}-{}", std::process::id(), nonce());
        // The lock is taken under a name the sweep ignores while it is not
        // yet held, then renamed: a sweep can never see an unlocked lock of
        // a live session, so it never removes a live directory.
        let new_path = tmp.join(format!(".{name}{NEW_SUFFIX}"));
        let lock_path = tmp.join(format!("{name}{LOCK_SUFFIX}"));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&new_path)
            .map_err(io_err("creating", &new_path))?;
        file.lock().map_err(io_err("locking", &new_path))?;
        fs::rename(&new_path, &lock_path).map_err(io_err("renaming into", &lock_path))?;
        let dir = tmp.join(&name);
        fs::create_dir(&dir).map_err(io_err("creating", &dir))?;
        Ok(Session {
            dir,
            lock_path,
            lock: Some(file),
        })
    }

    /// The session's directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        // Unlocked (closed) before it is removed: Windows cannot remove an
        // open file.
        drop(self.lock.take());
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// What [`sweep`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Session directories of dead processes (and stray temp files).
    pub removed: u64,
}

/// Removes the temp files of dead processes from `tmp`. `idle` says whether
/// no kiln process is using the store at all (the caller holds the store
/// lock exclusively): then loose files of older kiln versions go too.
/// Errors are ignored: a sweep that cannot remove something tries again
/// next time, and never stops the command that opened the store.
pub(super) fn sweep(tmp: &Path, idle: bool) -> SweepReport {
    let mut report = SweepReport::default();
    let Ok(entries) = fs::read_dir(tmp) else {
        return report;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in &names {
        let path = tmp.join(name);
        if let Some(session) = name.strip_suffix(LOCK_SUFFIX) {
            if let Some(lock) = try_lock(&path) {
                let _ = fs::remove_dir_all(tmp.join(session));
                drop(lock);
                let _ = fs::remove_file(&path);
                report.removed += 1;
            }
        } else if name.ends_with(NEW_SUFFIX) {
            // A process died between creating its lock and renaming it. A
            // live one holds this name for microseconds, and between
            // creating and locking it the lock is free: only an old one is
            // certainly abandoned.
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= ABANDONED_AFTER));
            if old && let Some(lock) = try_lock(&path) {
                drop(lock);
                let _ = fs::remove_file(&path);
            }
        } else if is_session_dir(name) {
            // A live session always has its lock beside its directory; a
            // directory without one is left from a dead process. Checked
            // again now: the listing may have seen a new directory but not
            // the lock renamed into place just before it.
            let lock = tmp.join(format!("{name}{LOCK_SUFFIX}"));
            if !lock.exists() && remove_any(&path).is_ok() {
                report.removed += 1;
            }
        } else if idle && remove_any(&path).is_ok() {
            report.removed += 1;
        }
    }
    report
}

/// The lock file at `path`, locked, if no live process holds it.
fn try_lock(path: &Path) -> Option<File> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

fn is_session_dir(name: &str) -> bool {
    let mut parts = name.splitn(2, '-');
    let pid = parts.next().unwrap_or("");
    let nonce = parts.next().unwrap_or("");
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !nonce.is_empty()
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    }
}

fn nonce() -> String {
    let mut b = [0u8; 6];
    // A clash only costs a failed `create_new`, retried by the caller's
    // next open; the pid already separates processes.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_session_survives_a_sweep_and_a_dead_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let live = Session::create(dir.path()).unwrap();
        fs::write(live.dir().join("f"), b"in use").unwrap();
        // A dead process: its lock file exists but nobody holds it.
        fs::create_dir(dir.path().join("1-abcdef")).unwrap();
        fs::write(dir.path().join("1-abcdef/secret-bearing"), b"x").unwrap();
        fs::write(dir.path().join("1-abcdef.lock"), b"").unwrap();
        // A session directory whose lock is gone entirely.
        fs::create_dir(dir.path().join("2-0123")).unwrap();
        // A loose file of an older kiln: kept unless the store is idle.
        fs::write(dir.path().join(".tmp-old"), b"x").unwrap();

        let report = sweep(dir.path(), false);
        assert_eq!(report.removed, 2);
        assert!(live.dir().join("f").exists(), "a live session is kept");
        assert!(!dir.path().join("1-abcdef").exists());
        assert!(!dir.path().join("1-abcdef.lock").exists());
        assert!(!dir.path().join("2-0123").exists());
        assert!(dir.path().join(".tmp-old").exists());

        assert_eq!(sweep(dir.path(), true).removed, 1);
        assert!(!dir.path().join(".tmp-old").exists());
        assert!(live.dir().exists(), "idle never applies to a held lock");

        let path = live.dir().to_path_buf();
        drop(live);
        assert!(!path.exists(), "a session removes its directory");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
