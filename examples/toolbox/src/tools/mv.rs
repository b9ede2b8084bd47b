//! `mv`: renames files and directories. kiln's mounts (cache, tmpfs, bind)
//! are separate filesystems, where a rename fails with "crosses devices";
//! then `mv` copies (times kept, symlinks as symlinks) and removes the
//! source, as GNU mv does between filesystems. The source is only removed
//! when everything was copied.

use std::fs;
use std::path::Path;

use crate::cli::{Io, OrFail, Result, describe, failed, quote};
use crate::fsx;
use crate::opts::{self, Flag};
use crate::sys;
use crate::tools::Tool;
use crate::tools::cp::{CopyOptions, copy_tree, crosses_devices};
use crate::tools::rm::remove_tree;

pub(crate) const TOOL: Tool = Tool {
    name: "mv",
    usage: "[OPTION]... SOURCE DEST | [OPTION]... SOURCE... DIRECTORY",
    about: "Rename SOURCE to DEST, or move each SOURCE into DIRECTORY.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "f",
        "f",
        "force",
        "overwrite without asking (the default: mv never asks)",
    ),
    Flag::new("n", "n", "no-clobber", "do not overwrite existing files"),
    Flag::new(
        "T",
        "T",
        "no-target-directory",
        "treat DEST as a name, never as a directory to move into",
    ),
    Flag::new("v", "v", "verbose", "print each move"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    for (src, dst) in fsx::targets(&parsed.operands, parsed.has("T"))? {
        let result = move_one(Path::new(&src), &dst, parsed.has("n"), parsed.has("v"), io);
        io.carry_on(result)?;
    }
    Ok(())
}

fn move_one(src: &Path, dst: &Path, no_clobber: bool, verbose: bool, io: &mut Io<'_>) -> Result {
    let meta = fs::symlink_metadata(src).or_fail(|| format!("cannot stat {}", quote(src)))?;
    if matches!(fsx::last_name(&src.to_string_lossy()), "." | "..") {
        return Err(failed(format!(
            "cannot move {}: it is '.' or '..'",
            quote(src)
        )));
    }
    let cwd = || "cannot find the working directory".to_string();
    let (abs_src, abs_dst) = (
        fsx::absolute(src).or_fail(cwd)?,
        fsx::absolute(dst).or_fail(cwd)?,
    );
    if let Ok(existing) = fs::symlink_metadata(dst) {
        if no_clobber {
            return Ok(());
        }
        if abs_src == abs_dst || sys::same_file(&meta, &existing) == Some(true) {
            return Err(failed(format!(
                "{} and {} are the same file",
                quote(src),
                quote(dst)
            )));
        }
        if existing.is_dir() && !meta.is_dir() {
            return Err(failed(format!(
                "cannot overwrite directory {} with non-directory",
                quote(dst)
            )));
        }
        if !existing.is_dir() && meta.is_dir() {
            return Err(failed(format!(
                "cannot overwrite non-directory {} with directory {}",
                quote(dst),
                quote(src)
            )));
        }
    }
    if meta.is_dir() && fsx::is_within(&abs_dst, &abs_src) {
        return Err(failed(format!(
            "cannot move {} to a subdirectory of itself, {}",
            quote(src),
            quote(dst)
        )));
    }
    match fs::rename(src, dst) {
        Ok(()) => {}
        Err(e) if crosses_devices(&e) => copy_then_remove(src, dst, io)?,
        Err(e) => {
            return Err(failed(format!(
                "cannot move {} to {}: {}",
                quote(src),
                quote(dst),
                describe(&e)
            )));
        }
    }
    if verbose {
        io.line(format!("renamed {} -> {}", quote(src), quote(dst)))?;
    }
    Ok(())
}

/// The move between filesystems: copy everything, then remove the source.
fn copy_then_remove(src: &Path, dst: &Path, io: &mut Io<'_>) -> Result {
    let options = CopyOptions {
        recursive: true,
        dereference: false,
        preserve: true,
        no_clobber: false,
        force: true,
        verbose: false,
    };
    if !copy_tree(src, dst, &options, io, 0)? {
        return Err(failed(format!(
            "cannot move {} to {}: not everything could be copied; the source is left as it was",
            quote(src),
            quote(dst)
        )));
    }
    if !remove_tree(src, false, io, 0)? {
        return Err(failed(format!(
            "copied {} to {} but could not remove all of the source",
            quote(src),
            quote(dst)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    #[test]
    fn renames_files_and_directories_and_moves_into_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        fs::write(dir.path().join("d/sub/x"), "x").unwrap();
        fs::write(dir.path().join("f"), "f").unwrap();
        fs::create_dir(dir.path().join("into")).unwrap();
        let (code, out, err) = run_for_test(
            "mv",
            &["-v", &arg(dir.path(), "f"), &arg(dir.path(), "g")],
            b"",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.starts_with("renamed '"), "{out}");
        assert_eq!(fs::read_to_string(dir.path().join("g")).unwrap(), "f");
        let into = arg(dir.path(), "into");
        assert_eq!(
            run_for_test(
                "mv",
                &[&arg(dir.path(), "d"), &arg(dir.path(), "g"), &into],
                b""
            )
            .0,
            0
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("into/d/sub/x")).unwrap(),
            "x"
        );
        assert_eq!(fs::read_to_string(dir.path().join("into/g")).unwrap(), "f");
        assert!(!dir.path().join("d").exists());
    }

    #[test]
    fn overwrites_files_unless_n() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "a").unwrap();
        fs::write(dir.path().join("b"), "b").unwrap();
        let (a, b) = (arg(dir.path(), "a"), arg(dir.path(), "b"));
        assert_eq!(run_for_test("mv", &["-n", &a, &b], b"").0, 0);
        assert_eq!(fs::read_to_string(&b).unwrap(), "b");
        assert_eq!(run_for_test("mv", &[&a, &b], b"").0, 0);
        assert_eq!(fs::read_to_string(&b).unwrap(), "a");
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn refuses_moves_into_itself_same_file_and_missing_sources() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        let d = arg(dir.path(), "d");
        let (code, _, err) = run_for_test("mv", &[&d, &arg(dir.path(), "d/sub")], b"");
        assert_eq!(code, 1);
        assert!(err.contains("to a subdirectory of itself"), "{err}");
        let (code, _, err) = run_for_test("mv", &["-T", &d, &d], b"");
        assert_eq!(code, 1);
        assert!(err.contains("are the same file"), "{err}");
        let (code, _, err) = run_for_test("mv", &[&arg(dir.path(), "nope"), &d], b"");
        assert_eq!(code, 1);
        assert!(
            err.contains("cannot stat '") && err.contains("No such file"),
            "{err}"
        );
        assert_eq!(run_for_test("mv", &[&d], b"").0, 2);
        assert!(dir.path().join("d/sub").is_dir());
    }
}
