//! Path and directory helpers the tools share: lexical absolute paths (for
//! "into itself" and "same file" checks, never for opening anything), a
//! path's last name as the user wrote it (`a/.` ends in `.`, which
//! `Path::file_name` hides), sorted directory listings, and the depth limit
//! every recursive walk obeys.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::cli::{Error, Result, failed, quote, usage};

/// Deepest directory tree a recursive tool (`cp -r`, `rm -r`, `ls -R`,
/// `tar -c`) walks. Each level is a stack frame in a program whose wasm
/// stack is 1 MiB, and real trees are far shallower (Linux's PATH_MAX of
/// 4096 bytes allows about 2000 one-letter levels, and nothing real comes
/// close); deeper means a generated or hostile tree, refused with a message
/// instead of a stack overflow.
pub(crate) const MAX_DEPTH: usize = 256;

/// The error for a tree deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(path: &Path) -> Error {
    failed(format!(
        "{}: directory tree deeper than {MAX_DEPTH} levels; refusing to go on",
        quote(path)
    ))
}

/// `path` made absolute against the working directory and normalized
/// lexically (`.` dropped, `..` pops). Symlinks are not resolved.
pub(crate) fn absolute(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(normalize(path))
    } else {
        Ok(normalize(&std::env::current_dir()?.join(path)))
    }
}

/// Drops `.` components and applies `..` lexically (`..` at the root stays
/// at the root).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !path.is_absolute() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether `inner` is `outer` or below it (both absolute and normalized).
pub(crate) fn is_within(inner: &Path, outer: &Path) -> bool {
    inner.starts_with(outer)
}

/// The last name of `raw` as written: `a/b/` gives `b`, `a/.` gives `.`,
/// `/` gives `/`.
pub(crate) fn last_name(raw: &str) -> &str {
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return if raw.is_empty() { "" } else { "/" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// The path from directory `from` to `to` (both absolute and normalized):
/// `/usr/bin` to `/bin/x` is `../../bin/x`.
pub(crate) fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// The names in `dir`, sorted by their bytes (the `C` locale's order), so
/// every listing and archive is the same on every machine.
pub(crate) fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(names)
}

/// Where each source of `cp`, `mv` or `ln` goes, the way GNU tools decide:
/// with `-T` (`no_target_dir`) exactly `SOURCE DEST`; else when the last
/// operand is a directory each source goes inside it under its last name
/// (a source ending in `/.` goes into the directory itself); else exactly
/// two operands, the second the new name.
pub(crate) fn targets(operands: &[String], no_target_dir: bool) -> Result<Vec<(String, PathBuf)>> {
    let (dest, sources) = match operands {
        [] => return Err(usage("missing file operand")),
        [only] => {
            return Err(usage(format!(
                "missing destination file operand after {}",
                quote(only)
            )));
        }
        [sources @ .., dest] => (dest, sources),
    };
    if no_target_dir {
        if let [_, extra, ..] = sources {
            return Err(usage(format!("extra operand {}", quote(extra))));
        }
        return Ok(vec![(sources[0].clone(), PathBuf::from(dest))]);
    }
    if fs::metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Ok(sources
            .iter()
            .map(|s| {
                let into = match last_name(s) {
                    "." | ".." | "/" => PathBuf::from(dest),
                    name => Path::new(dest).join(name),
                };
                (s.clone(), into)
            })
            .collect());
    }
    if sources.len() > 1 {
        return Err(failed(format!("target {} is not a directory", quote(dest))));
    }
    Ok(vec![(sources[0].clone(), PathBuf::from(dest))])
}

/// Whether something (even a dangling symlink) exists at `path`.
pub(crate) fn exists_no_follow(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_name_keeps_dot_and_trailing_slashes_out() {
        assert_eq!(last_name("a/b/"), "b");
        assert_eq!(last_name("a/."), ".");
        assert_eq!(last_name(".."), "..");
        assert_eq!(last_name("/"), "/");
        assert_eq!(last_name("//"), "/");
        assert_eq!(last_name("x"), "x");
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), Path::new("/x"));
        assert_eq!(normalize(Path::new("../x/..")), Path::new(".."));
    }

    #[test]
    fn relative_path_climbs_to_the_common_parent() {
        let r = relative_path(Path::new("/usr/bin"), Path::new("/bin/toolbox.wasm"));
        assert_eq!(r, Path::new("../../bin/toolbox.wasm"));
        let r = relative_path(Path::new("/bin"), Path::new("/bin/toolbox.wasm"));
        assert_eq!(r, Path::new("toolbox.wasm"));
    }

    #[test]
    fn targets_go_into_an_existing_directory_or_are_the_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let ops = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = targets(&ops(&["x/a", "b/", "c/.", &d]), false).unwrap();
        let dests: Vec<PathBuf> = t.into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            dests,
            [
                dir.path().join("a"),
                dir.path().join("b"),
                dir.path().to_path_buf()
            ]
        );
        let t = targets(&ops(&["a", "new"]), false).unwrap();
        assert_eq!(t, [("a".to_string(), PathBuf::from("new"))]);
        let t = targets(&ops(&["a", &d]), true).unwrap();
        assert_eq!(t[0].1, dir.path());
        assert_eq!(targets(&ops(&["a"]), false).unwrap_err().exit_code(), 2);
        assert_eq!(
            targets(&ops(&["a", "b", &d]), true)
                .unwrap_err()
                .exit_code(),
            2
        );
        let e = targets(&ops(&["a", "b", "nodir"]), false).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (1, "target 'nodir' is not a directory")
        );
    }

    #[test]
    fn sorted_names_are_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b", "B", "a", ".h"] {
            fs::write(dir.path().join(n), "").unwrap();
        }
        assert_eq!(sorted_names(dir.path()).unwrap(), [".h", "B", "a", "b"]);
    }
}
