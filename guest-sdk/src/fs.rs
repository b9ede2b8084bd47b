//! Filesystem helpers a build step needs beyond `std::fs`: writing an output
//! atomically ([`write_atomic`]) and listing a tree in a stable order
//! ([`walk`]).
//!
//! Both work the same on the host (for tests) and inside kiln, where the
//! filesystem is the image being built and every change becomes the step's
//! layer. Errors name the path involved.
//!
//! Not here: reading secrets (`secret.rs`), anything that follows symlinks
//! out of a tree. Read next: `docs/writing-steps.md`, "Writing outputs".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// How many temporary names [`write_atomic`] tries before giving up: each
/// is random, so a collision twice in a row already means something else
/// is going on.
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Writes `bytes` to `path` so that readers (and the layer, if the step
/// fails half way) see the old file or the new one, never a part: into a
/// temporary file in the same directory, then renamed over `path`.
/// Missing parent directories are created.
///
/// The new file gets the default permissions for a new file; the mode of
/// a file it replaces is not kept. A symlink at `path` is replaced, not
/// followed.
///
/// ```
/// use kiln_guest::fs::write_atomic;
///
/// let dir = tempfile::tempdir()?;
/// let out = dir.path().join("dist/version.txt");
/// write_atomic(&out, b"1.2.3\n")?;
/// write_atomic(&out, b"1.2.4\n")?;
/// assert_eq!(std::fs::read(&out)?, b"1.2.4\n");
/// # Ok::<(), kiln_guest::Error>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .ok_or_else(|| Error::new(format!("cannot write {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;

    let (temp, mut file) = create_temp(dir, &name.to_string_lossy())
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()));
    drop(file);
    let renamed = written.and_then(|()| {
        fs::rename(&temp, path)
            .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
    });
    if renamed.is_err() {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&temp);
    }
    renamed.with_context(|| format!("writing {}", path.display()))
}

/// A new, empty file `.<name>.<random>.tmp` in `dir`.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = dir.join(format!(".{name}.{:016x}.tmp", random_u64()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

/// A random number from the standard library's randomly seeded hasher
/// (WASI's `random_get` inside kiln), enough to make a name unique.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// What a [`walk`] entry is. Symlinks are reported, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (whatever it points at).
    Symlink,
}

/// One thing under the root of a [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the root, e.g. `src/main.rs`.
    pub path: PathBuf,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// The length of a file in bytes; 0 for directories and symlinks.
    pub size: u64,
}

/// Every file, directory and symlink under `root` (not `root` itself),
/// sorted by relative path (component by component, so a directory's
/// contents follow it), symlinks not followed. Anything else (a FIFO, a
/// socket, a device; kiln images have none) is left out.
///
/// The order depends only on the names, not on the filesystem, so output
/// derived from a walk is the same on every run and host.
///
/// ```
/// use kiln_guest::fs::{walk, EntryKind};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("src"))?;
/// std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n")?;
/// std::fs::write(dir.path().join("Cargo.toml"), "")?;
///
/// let entries = walk(dir.path())?;
/// let listed: Vec<_> = entries.iter().map(|e| (e.path.to_str().unwrap(), e.kind, e.size)).collect();
/// assert_eq!(listed, [
///     ("Cargo.toml", EntryKind::File, 0),
///     ("src", EntryKind::Dir, 0),
///     ("src/main.rs", EntryKind::File, 13),
/// ]);
/// # Ok::<(), kiln_guest::Error>(())
/// ```
pub fn walk(root: impl AsRef<Path>) -> Result<Vec<Entry>> {
    let root = root.as_ref();
    let mut entries = Vec::new();
    // Directories still to read, relative to root. A stack, not recursion:
    // a deep tree cannot overflow the (small) wasm stack.
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        // `root.join("")` would add a trailing `/` to messages.
        let dir = if rel.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let listing =
            fs::read_dir(&dir).with_context(|| format!("reading directory {}", dir.display()))?;
        for item in listing {
            let item = item.with_context(|| format!("reading directory {}", dir.display()))?;
            let path = rel.join(item.file_name());
            let meta = item
                .metadata()
                .with_context(|| format!("reading {}", root.join(&path).display()))?;
            let kind = meta.file_type();
            let (kind, size) = if kind.is_symlink() {
                (EntryKind::Symlink, 0)
            } else if kind.is_dir() {
                pending.push(path.clone());
                (EntryKind::Dir, 0)
            } else if kind.is_file() {
                (EntryKind::File, meta.len())
            } else {
                continue;
            };
            entries.push(Entry { path, kind, size });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_creates_parents_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/out.json");
        write_atomic(&out, b"{}").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"{}");
        write_atomic(&out, b"{\"v\":2}").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"{\"v\":2}");
        assert_eq!(
            names(&dir.path().join("a/b")),
            ["out.json"],
            "no temporary file left"
        );
    }

    #[test]
    fn temp_files_are_hidden_beside_the_target() {
        // Same directory, so the rename cannot cross filesystems.
        let dir = tempfile::tempdir().unwrap();
        let (temp, _file) = create_temp(dir.path(), "x").unwrap();
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".x.") && name.ends_with(".tmp"), "{name}");
        assert_eq!(temp.parent().unwrap(), dir.path());
    }

    #[test]
    fn write_atomic_failure_leaves_no_temp_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("keep"), "x").unwrap();
        let err = write_atomic(&out, b"data").unwrap_err();
        assert_eq!(err.message(), format!("writing {}", out.display()));
        assert!(
            err.causes().next().unwrap().starts_with("renaming "),
            "{err}"
        );
        assert_eq!(names(dir.path()), ["out"], "temporary file removed");
    }

    #[test]
    fn write_atomic_refuses_a_path_without_a_file_name() {
        let err = write_atomic("/", b"x").unwrap_err();
        assert!(err.message().contains("not a file name"), "{err}");
    }

    #[test]
    fn write_atomic_under_a_file_fails_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "x").unwrap();
        let err = write_atomic(dir.path().join("file/out"), b"x").unwrap_err();
        assert!(err.message().starts_with("creating directory "), "{err}");
    }

    #[test]
    fn walk_lists_everything_sorted_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("b/c/deep.txt"), "12345").unwrap();
        fs::write(root.join("b.txt"), "1").unwrap();
        fs::write(root.join("a"), "").unwrap();
        fs::create_dir(root.join("empty")).unwrap();
        let got: Vec<(String, EntryKind, u64)> = walk(root)
            .unwrap()
            .into_iter()
            .map(|e| (e.path.to_string_lossy().into_owned(), e.kind, e.size))
            .collect();
        let want = [
            ("a", EntryKind::File, 0),
            ("b", EntryKind::Dir, 0),
            ("b/c", EntryKind::Dir, 0),
            ("b/c/deep.txt", EntryKind::File, 5),
            ("b.txt", EntryKind::File, 1),
            ("empty", EntryKind::Dir, 0),
        ];
        let want: Vec<(String, EntryKind, u64)> = want
            .iter()
            .map(|(p, k, s)| (p.to_string(), *k, *s))
            .collect();
        assert_eq!(got, want);
    }

    #[cfg(unix)]
    #[test]
    fn walk_reports_symlinks_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        let got: Vec<(String, EntryKind)> = walk(&root)
            .unwrap()
            .into_iter()
            .map(|e| (e.path.to_string_lossy().into_owned(), e.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("abs".to_string(), EntryKind::Symlink),
                ("dangling".to_string(), EntryKind::Symlink),
                ("link".to_string(), EntryKind::Symlink),
                ("real".to_string(), EntryKind::Dir),
                ("real/f".to_string(), EntryKind::File),
            ]
        );
    }

    #[test]
    fn walk_of_an_empty_dir_is_empty_and_of_a_missing_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(walk(dir.path()).unwrap().is_empty());
        let missing = dir.path().join("missing");
        let err = walk(&missing).unwrap_err();
        assert_eq!(
            err.message(),
            format!("reading directory {}", missing.display())
        );
    }
}
