//! `rm`: removes files, empty directories (`-d`) and trees (`-r`), never
//! following symlinks; `-f` ignores missing files. Like GNU rm it refuses
//! `.`, `..` and a recursive `/`. In a kiln step, removing a file of an
//! earlier layer becomes a whiteout in this step's layer.

use std::fs;
use std::io;
use std::path::Path;

use crate::cli::{Io, Result, describe, failed, quote, usage};
use crate::fsx::{self, MAX_DEPTH};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "rm",
    usage: "[OPTION]... FILE...",
    about: "Remove each FILE (directories with -r or -d).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "r",
        "rR",
        "recursive",
        "remove directories and their contents",
    ),
    Flag::new(
        "f",
        "f",
        "force",
        "ignore missing files; no error without operands",
    ),
    Flag::new("d", "d", "dir", "remove empty directories"),
    Flag::new("v", "v", "verbose", "print each removal"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let force = parsed.has("f");
    if parsed.operands.is_empty() && !force {
        return Err(usage("missing operand"));
    }
    let verbose = parsed.has("v");
    for name in &parsed.operands {
        let path = Path::new(name);
        if matches!(fsx::last_name(name), "." | "..") {
            io.error(format!(
                "refusing to remove '.' or '..' directory: skipping {}",
                quote(name)
            ));
            continue;
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if force && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                io.error(format!("cannot remove {}: {}", quote(name), describe(&e)));
                continue;
            }
        };
        if !meta.is_dir() {
            let result = remove_one(path, false, verbose, io);
            io.report(result);
        } else if parsed.has("r") {
            if fsx::absolute(path).is_ok_and(|p| p.parent().is_none()) {
                io.error("it is dangerous to operate recursively on '/'");
                continue;
            }
            remove_tree(path, verbose, io, 0)?;
        } else if parsed.has("d") {
            let result = remove_one(path, true, verbose, io);
            io.report(result);
        } else {
            io.error(format!("cannot remove {}: Is a directory", quote(name)));
        }
    }
    Ok(())
}

/// Removes a file or symlink (`dir` false) or an empty directory.
fn remove_one(path: &Path, dir: bool, verbose: bool, io: &mut Io<'_>) -> Result {
    let result = if dir {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    result.map_err(|e| failed(format!("cannot remove {}: {}", quote(path), describe(&e))))?;
    if verbose {
        let what = if dir { "removed directory" } else { "removed" };
        io.line(format!("{what} {}", quote(path)))?;
    }
    Ok(())
}

/// Removes `path` and everything below it without following symlinks.
/// Problems are reported on `io` and the rest is still removed; returns
/// whether everything went. Only a failed write to stdout stops it.
pub(crate) fn remove_tree(
    path: &Path,
    verbose: bool,
    io: &mut Io<'_>,
    depth: usize,
) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            io.error(format!("cannot remove {}: {}", quote(path), describe(&e)));
            return Ok(false);
        }
    };
    if !meta.is_dir() {
        let removed = remove_one(path, false, verbose, io);
        return io.carry_on(removed);
    }
    if depth >= MAX_DEPTH {
        io.error(fsx::too_deep(path));
        return Ok(false);
    }
    let names = match fsx::sorted_names(path) {
        Ok(n) => n,
        Err(e) => {
            io.error(format!("cannot remove {}: {}", quote(path), describe(&e)));
            return Ok(false);
        }
    };
    let mut all = true;
    for name in names {
        all &= remove_tree(&path.join(name), verbose, io, depth + 1)?;
    }
    if !all {
        return Ok(false);
    }
    let removed = remove_one(path, true, verbose, io);
    io.carry_on(removed)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    fn tree(root: &std::path::Path) {
        fs::create_dir_all(root.join("d/sub/deeper")).unwrap();
        fs::write(root.join("d/a"), "a").unwrap();
        fs::write(root.join("d/sub/b"), "b").unwrap();
        fs::write(root.join("f"), "f").unwrap();
    }

    #[test]
    fn removes_files_and_with_r_whole_trees() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let (code, out, err) = run_for_test(
            "rm",
            &["-rv", &arg(dir.path(), "d"), &arg(dir.path(), "f")],
            b"",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(!dir.path().join("d").exists() && !dir.path().join("f").exists());
        assert_eq!(out.lines().count(), 6, "{out}");
        assert!(out.contains("removed directory '"), "{out}");
    }

    #[test]
    fn directories_need_r_or_d_and_d_only_removes_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let d = arg(dir.path(), "d");
        let (code, _, err) = run_for_test("rm", &[&d], b"");
        assert_eq!(code, 1);
        assert_eq!(err, format!("rm: cannot remove '{d}': Is a directory\n"));
        let (code, _, err) = run_for_test("rm", &["-d", &d], b"");
        assert_eq!(code, 1);
        assert!(err.contains("not empty"), "{err}");
        let deeper = arg(dir.path(), "d/sub/deeper");
        assert_eq!(run_for_test("rm", &["-d", &deeper], b"").0, 0);
        assert!(dir.path().join("d/sub").exists() && !dir.path().join("d/sub/deeper").exists());
    }

    #[test]
    fn force_ignores_missing_files_but_not_other_problems() {
        let dir = tempfile::tempdir().unwrap();
        let missing = arg(dir.path(), "missing");
        let (code, _, err) = run_for_test("rm", &[&missing], b"");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("rm: cannot remove '{missing}': No such file or directory\n")
        );
        assert_eq!(run_for_test("rm", &["-f", &missing], b"").0, 0);
        assert_eq!(run_for_test("rm", &["-f"], b"").0, 0);
        assert_eq!(run_for_test("rm", &[], b"").0, 2);
        fs::create_dir(dir.path().join("d")).unwrap();
        assert_eq!(run_for_test("rm", &["-f", &arg(dir.path(), "d")], b"").0, 1);
    }

    #[test]
    fn refuses_dot_dotdot_and_root() {
        let dir = tempfile::tempdir().unwrap();
        let dot = format!("{}/.", dir.path().display());
        let (code, _, err) = run_for_test("rm", &["-rf", &dot, "/"], b"");
        assert_eq!(code, 1);
        assert!(
            err.contains("refusing to remove '.' or '..' directory"),
            "{err}"
        );
        assert!(
            err.contains("dangerous to operate recursively on '/'"),
            "{err}"
        );
        assert!(dir.path().exists());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_removed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        std::os::unix::fs::symlink(dir.path().join("d"), dir.path().join("link")).unwrap();
        assert_eq!(
            run_for_test("rm", &["-r", &arg(dir.path(), "link")], b"").0,
            0
        );
        assert!(dir.path().join("d/a").exists());
        assert!(fs::symlink_metadata(dir.path().join("link")).is_err());
    }
}
