//! `mkdir`: creates directories; `-p` creates missing parents and accepts
//! directories that already exist. Modes (`-m`) are refused: WASI cannot
//! set them, and kiln gives every new directory 0755.

use std::fs;
use std::io;
use std::path::Path;

use crate::cli::{Io, Result, describe, failed, quote};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "mkdir",
    usage: "[OPTION]... DIRECTORY...",
    about: "Create each DIRECTORY.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "p",
        "p",
        "parents",
        "create missing parents; no error if it exists",
    ),
    Flag::new("v", "v", "verbose", "print each directory created"),
    Flag::new("m", "m", "mode", "")
        .takes("MODE")
        .refused("WASI cannot set file modes"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    if parsed.operands.is_empty() {
        return Err(crate::cli::usage("missing operand"));
    }
    let verbose = parsed.has("v");
    for dir in &parsed.operands {
        let result = if parsed.has("p") {
            make_parents(Path::new(dir), verbose, io)
        } else {
            make(Path::new(dir), verbose, io)
        };
        io.report(result);
    }
    Ok(())
}

fn make(dir: &Path, verbose: bool, io: &mut Io<'_>) -> Result {
    fs::create_dir(dir).map_err(|e| {
        failed(format!(
            "cannot create directory {}: {}",
            quote(dir),
            describe(&e)
        ))
    })?;
    if verbose {
        io.line(format!("mkdir: created directory {}", quote(dir)))?;
    }
    Ok(())
}

fn make_parents(dir: &Path, verbose: bool, io: &mut Io<'_>) -> Result {
    let mut chain: Vec<&Path> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect();
    chain.reverse();
    for (i, part) in chain.iter().enumerate() {
        match fs::create_dir(part) {
            Ok(()) => {
                if verbose {
                    io.line(format!("mkdir: created directory {}", quote(part)))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists || part.parent().is_none() => {
                if !fs::metadata(part).is_ok_and(|m| m.is_dir()) {
                    let why = if i + 1 == chain.len() {
                        "File exists"
                    } else {
                        "Not a directory"
                    };
                    return Err(failed(format!(
                        "cannot create directory {}: {why}",
                        quote(dir)
                    )));
                }
            }
            Err(e) => {
                return Err(failed(format!(
                    "cannot create directory {}: {}",
                    quote(dir),
                    describe(&e)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    #[test]
    fn creates_directories_and_fails_on_existing_or_missing_parents() {
        let dir = tempfile::tempdir().unwrap();
        let a = arg(dir.path(), "a");
        assert_eq!(run_for_test("mkdir", &[&a], b"").0, 0);
        assert!(dir.path().join("a").is_dir());
        let (code, _, err) = run_for_test("mkdir", &[&a], b"");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("mkdir: cannot create directory '{a}': File exists\n")
        );
        let deep = arg(dir.path(), "x/y");
        let (code, _, err) = run_for_test("mkdir", &[&deep], b"");
        assert_eq!(code, 1);
        assert!(err.contains("No such file or directory"), "{err}");
    }

    #[test]
    fn parents_are_created_and_existing_directories_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let deep = arg(dir.path(), "a/b/c");
        let (code, out, _) = run_for_test("mkdir", &["-pv", &deep], b"");
        assert_eq!(code, 0);
        assert!(dir.path().join("a/b/c").is_dir());
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(
            out.ends_with(&format!("mkdir: created directory '{deep}'\n")),
            "{out}"
        );
        let (code, out, _) = run_for_test("mkdir", &["-p", &deep, &deep], b"");
        assert_eq!((code, out.as_str()), (0, ""));
    }

    #[test]
    fn a_file_in_the_way_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "").unwrap();
        let (code, _, err) = run_for_test("mkdir", &["-p", &arg(dir.path(), "f/sub")], b"");
        assert_eq!(code, 1);
        assert!(err.ends_with("f/sub': Not a directory\n"), "{err}");
        let (code, _, err) = run_for_test("mkdir", &["-p", &arg(dir.path(), "f")], b"");
        assert_eq!(code, 1);
        assert!(err.ends_with("f': File exists\n"), "{err}");
    }

    #[test]
    fn modes_are_refused_and_operands_required() {
        let (code, _, err) = run_for_test("mkdir", &["-m", "700", "x"], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("mkdir: option -m is not supported: WASI cannot set file modes\n"));
        assert_eq!(run_for_test("mkdir", &[], b"").0, 2);
    }
}
