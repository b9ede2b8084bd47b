//! `ln`: makes hard links, or symlinks with `-s` (the target stored as
//! written; in a kiln image an absolute target means the image's `/`).
//! `-f` replaces an existing file, `-n` treats a symlink to a directory as
//! a file to replace rather than a directory to link into.

use std::fs;
use std::path::Path;

use crate::cli::{Io, Result, describe, failed, quote};
use crate::fsx;
use crate::opts::{self, Flag};
use crate::sys;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "ln",
    usage: "[OPTION]... TARGET [LINK] | [OPTION]... TARGET... DIRECTORY",
    about: "Make LINK (or DIRECTORY/TARGET's name, or ./TARGET's name) a link to TARGET.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "s",
        "s",
        "symbolic",
        "make symbolic links instead of hard links",
    ),
    Flag::new("f", "f", "force", "remove existing destination files"),
    Flag::new(
        "n",
        "n",
        "no-dereference",
        "replace a symlink to a directory instead of linking into it",
    ),
    Flag::new(
        "T",
        "T",
        "no-target-directory",
        "treat LINK as a name, never as a directory",
    ),
    Flag::new("v", "v", "verbose", "print each link made"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let mut operands = parsed.operands.clone();
    if operands.len() == 1 {
        operands.push(".".into());
    }
    let no_target_dir = parsed.has("T")
        || (parsed.has("n")
            && operands.len() == 2
            && fs::symlink_metadata(&operands[1]).is_ok_and(|m| m.file_type().is_symlink()));
    for (target, link) in fsx::targets(&operands, no_target_dir)? {
        let result = link_one(&target, &link, &parsed, io);
        io.carry_on(result)?;
    }
    Ok(())
}

fn link_one(target: &str, link: &Path, parsed: &opts::Parsed, io: &mut Io<'_>) -> Result {
    let symbolic = parsed.has("s");
    let kind = if symbolic {
        "symbolic link"
    } else {
        "hard link"
    };
    if !symbolic {
        let meta = fs::metadata(target).map_err(|e| {
            failed(format!(
                "failed to access {}: {}",
                quote(target),
                describe(&e)
            ))
        })?;
        if meta.is_dir() {
            return Err(failed(format!(
                "{}: hard link not allowed for directory",
                quote(target)
            )));
        }
    }
    if let Ok(existing) = fs::symlink_metadata(link) {
        if !parsed.has("f") {
            return Err(failed(format!(
                "failed to create {kind} {}: File exists",
                quote(link)
            )));
        }
        if existing.is_dir() {
            return Err(failed(format!(
                "cannot overwrite directory {}",
                quote(link)
            )));
        }
        fs::remove_file(link)
            .map_err(|e| failed(format!("cannot remove {}: {}", quote(link), describe(&e))))?;
    }
    let made = if symbolic {
        sys::symlink(Path::new(target), link)
    } else {
        fs::hard_link(target, link)
    };
    made.map_err(|e| {
        failed(format!(
            "failed to create {kind} {}: {}",
            quote(link),
            describe(&e)
        ))
    })?;
    if parsed.has("v") {
        let arrow = if symbolic { "->" } else { "=>" };
        io.line(format!("{} {arrow} {}", quote(link), quote(target)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use crate::tools::{arg, run_for_test};

    #[test]
    fn hard_links_share_contents_and_refuse_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "one").unwrap();
        let (f, h) = (arg(dir.path(), "f"), arg(dir.path(), "h"));
        assert_eq!(run_for_test("ln", &[&f, &h], b"").0, 0);
        fs::write(dir.path().join("f"), "two").unwrap();
        assert_eq!(fs::read_to_string(&h).unwrap(), "two");
        let (code, _, err) =
            run_for_test("ln", &[&arg(dir.path(), ""), &arg(dir.path(), "x")], b"");
        assert_eq!(code, 1);
        assert!(err.contains("hard link not allowed for directory"), "{err}");
        let (code, _, err) = run_for_test(
            "ln",
            &[&arg(dir.path(), "nope"), &arg(dir.path(), "x")],
            b"",
        );
        assert_eq!(code, 1);
        assert!(
            err.contains("failed to access '") && err.contains("No such file"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_keep_the_target_as_written_and_f_replaces() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let l = arg(dir.path(), "l");
        let (code, out, _) = run_for_test("ln", &["-sv", "../x", &l], b"");
        assert_eq!(code, 0);
        assert_eq!(out, format!("'{l}' -> '../x'\n"));
        assert_eq!(fs::read_link(&l).unwrap(), Path::new("../x"));
        let (code, _, err) = run_for_test("ln", &["-s", "y", &l], b"");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("ln: failed to create symbolic link '{l}': File exists\n")
        );
        assert_eq!(run_for_test("ln", &["-sf", "y", &l], b"").0, 0);
        assert_eq!(fs::read_link(&l).unwrap(), Path::new("y"));
        // Into a directory, under the target's name.
        assert_eq!(
            run_for_test("ln", &["-s", "/etc/motd", &arg(dir.path(), "d")], b"").0,
            0
        );
        assert_eq!(
            fs::read_link(dir.path().join("d/motd")).unwrap(),
            Path::new("/etc/motd")
        );
    }

    #[cfg(unix)]
    #[test]
    fn n_replaces_a_symlink_to_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let cur = arg(dir.path(), "current");
        assert_eq!(run_for_test("ln", &["-s", "d", &cur], b"").0, 0);
        // Without -n, the link goes inside d.
        assert_eq!(run_for_test("ln", &["-sf", "e", &cur], b"").0, 0);
        assert_eq!(
            fs::read_link(dir.path().join("d/e")).unwrap(),
            Path::new("e")
        );
        assert_eq!(run_for_test("ln", &["-sfn", "e", &cur], b"").0, 0);
        assert_eq!(fs::read_link(&cur).unwrap(), Path::new("e"));
    }
}
