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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Change, ChangeSet, ImagePath, Meta, Node};

    fn snapshot(paths: &[&str]) -> Snapshot {
        let mut changes = ChangeSet::new();
        for path in paths {
            changes.insert(
                ImagePath::parse(path).unwrap(),
                Change::Put(Node::Dir(Meta::root(0o755, 0))),
            );
        }
        let mut s = Snapshot::empty();
        s.apply(&changes);
        s
    }

    #[test]
    fn names_differing_only_in_case_within_one_directory_collide() {
        let s = snapshot(&["x/A", "x/a", "y/a"]);
        assert_eq!(first_collision(&s), Some(("/x/A".into(), "/x/a".into())));
        // The same name in different directories, or different names, do not.
        assert_eq!(first_collision(&snapshot(&["x/a", "y/a", "x/b"])), None);
        // Parents that differ only in case collide before their children.
        let s = snapshot(&["D/f", "d/g"]);
        assert_eq!(first_collision(&s), Some(("/D".into(), "/d".into())));
    }

    #[test]
    fn the_probe_finds_linux_case_sensitive_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir =
            cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        // Linux's own filesystems are case-sensitive (this test runs there).
        #[cfg(target_os = "linux")]
        assert!(!is_case_insensitive(&dir).unwrap());
        #[cfg(not(target_os = "linux"))]
        let _ = is_case_insensitive(&dir).unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
