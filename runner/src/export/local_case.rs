//! `-o type=local` into a case-insensitive directory (NTFS on Windows, APFS
//! by default on macOS, a casefolded directory on Linux): two names of an
//! image that differ only in case (Linux headers have `xt_MARK.h` and
//! `xt_mark.h`) would become one file there, the second silently replacing
//! the first. The destination is probed, not guessed from the host, and
//! such an image is refused before anything is written.

use std::collections::HashMap;
use std::io;

use crate::context::case_fold;
use crate::snapshot::Snapshot;

/// Whether names in `dir` are case-insensitive: a probe file created in
/// lower case is found by its upper-case name.
pub(super) fn is_case_insensitive(dir: &cap_std::fs::Dir) -> io::Result<bool> {
    let probe = format!(".kiln-case-probe-{}", std::process::id());
    dir.create(&probe)?;
    let found = dir.symlink_metadata(probe.to_ascii_uppercase()).is_ok();
    dir.remove_file(&probe)?;
    Ok(found)
}

/// The first two paths of `snapshot` that a case-insensitive filesystem
/// would take for one, if any.
pub(super) fn first_collision(snapshot: &Snapshot) -> Option<(String, String)> {
    let mut seen: HashMap<(String, String), &str> = HashMap::new();
    for (path, _) in snapshot.iter() {
        if path.is_root() {
            continue;
        }
        let key = (path.parent().as_str().to_string(), case_fold(path.name()));
        if let Some(first) = seen.insert(key, path.as_str()) {
            return Some((format!("/{first}"), path.absolute()));
        }
    }
    None
}
