//! `ls`: lists directories and files, one name a line (as GNU ls does when
//! its output is not a terminal, which in a kiln step it never is), sorted
//! by the bytes of the names so every machine prints the same. `-l` shows
//! type and permissions (`?????????` under WASI, which has no modes), size,
//! modification time in UTC and symlink targets; owners are not shown, as
//! WASI has none.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use crate::cli::{Io, Result, describe, quote};
use crate::fsx::{self, MAX_DEPTH};
use crate::opts::{self, Flag};
use crate::show;
use crate::sys;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "ls",
    usage: "[OPTION]... [FILE]...",
    about: "List each FILE, and the contents of each directory (default: .).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "a",
        "a",
        "all",
        "include names starting with ., and . and ..",
    ),
    Flag::new(
        "A",
        "A",
        "almost-all",
        "include names starting with ., but not . and ..",
    ),
    Flag::new(
        "l",
        "l",
        "",
        "long format: type, permissions, size, time (UTC), name",
    ),
    Flag::new("1", "1", "", "one name a line (always so)"),
    Flag::new("R", "R", "recursive", "list subdirectories recursively"),
    Flag::new(
        "d",
        "d",
        "directory",
        "list directories themselves, not their contents",
    ),
];

struct Listing {
    all: bool,
    almost_all: bool,
    long: bool,
    recursive: bool,
    /// Whether anything was printed (a directory header then needs a blank line).
    printed: bool,
}

/// One name to show, with what `-l` needs.
struct Entry {
    name: String,
    meta: Option<Metadata>,
    path: PathBuf,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let mut listing = Listing {
        all: parsed.has("a"),
        almost_all: parsed.has("A"),
        long: parsed.has("l"),
        recursive: parsed.has("R"),
        printed: false,
    };
    let mut operands = parsed.operands.clone();
    if operands.is_empty() {
        operands.push(".".into());
    }
    operands.sort();
    let as_files = parsed.has("d");
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for name in &operands {
        // Symlinks named on the command line are followed, except with -l
        // or -d, which show the link itself (as GNU ls does).
        let meta = if listing.long || as_files {
            fs::symlink_metadata(name)
        } else {
            fs::metadata(name)
        };
        match meta {
            Ok(m) if m.is_dir() && !as_files => dirs.push(name.clone()),
            Ok(m) => files.push(Entry {
                name: name.clone(),
                meta: Some(m),
                path: PathBuf::from(name),
            }),
            Err(e) => io.error(format!("cannot access {}: {}", quote(name), describe(&e))),
        }
    }
    listing.print(&files, io)?;
    let headers = operands.len() > 1 || listing.recursive;
    for dir in &dirs {
        listing.directory(Path::new(dir), dir, headers, io, 0)?;
    }
    Ok(())
}

impl Listing {
    fn directory(
        &mut self,
        path: &Path,
        shown: &str,
        header: bool,
        io: &mut Io<'_>,
        depth: usize,
    ) -> Result {
        if depth >= MAX_DEPTH {
            io.error(fsx::too_deep(path));
            return Ok(());
        }
        let names = match fsx::sorted_names(path) {
            Ok(n) => n,
            Err(e) => {
                io.error(format!(
                    "cannot open directory {}: {}",
                    quote(shown),
                    describe(&e)
                ));
                return Ok(());
            }
        };
        if header {
            if self.printed {
                io.line("")?;
            }
            io.line(format!("{shown}:"))?;
            self.printed = true;
        }
        let mut entries: Vec<Entry> = Vec::new();
        if self.all {
            for dot in [".", ".."] {
                entries.push(self.entry(path, OsString::from(dot)));
            }
        }
        for name in names {
            let hidden = name.to_string_lossy().starts_with('.');
            if !hidden || self.all || self.almost_all {
                entries.push(self.entry(path, name));
            }
        }
        self.print(&entries, io)?;
        if self.recursive {
            for e in &entries {
                let is_dir = e.meta.as_ref().is_some_and(|m| m.is_dir());
                if is_dir && e.name != "." && e.name != ".." {
                    let child = if shown.ends_with('/') {
                        format!("{shown}{}", e.name)
                    } else {
                        format!("{shown}/{}", e.name)
                    };
                    self.directory(&e.path, &child, true, io, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn entry(&self, dir: &Path, name: OsString) -> Entry {
        let path = dir.join(&name);
        // Recursion needs the kind even without -l; never follow symlinks.
        let meta = if self.long || self.recursive {
            fs::symlink_metadata(&path).ok()
        } else {
            None
        };
        Entry {
            name: name.to_string_lossy().into_owned(),
            meta,
            path,
        }
    }

    fn print(&mut self, entries: &[Entry], io: &mut Io<'_>) -> Result {
        if !self.long {
            for e in entries {
                io.line(&e.name)?;
                self.printed = true;
            }
            return Ok(());
        }
        let width = entries
            .iter()
            .map(|e| e.meta.as_ref().map_or(1, |m| m.len().to_string().len()))
            .max()
            .unwrap_or(0);
        for e in entries {
            self.printed = true;
            let Some(meta) = &e.meta else {
                io.line(format!(
                    "?????????? {:>width$} ????-??-?? ??:?? {}",
                    "?", e.name
                ))?;
                continue;
            };
            let kind = meta.file_type();
            let mut line = format!(
                "{}{} {:>width$} {} {}",
                show::type_char(kind),
                show::permissions(sys::mode(meta)),
                meta.len(),
                show::date(show::mtime(meta)),
                e.name
            );
            if kind.is_symlink()
                && let Ok(target) = fs::read_link(&e.path)
            {
                line.push_str(&format!(" -> {}", target.display()));
            }
            io.line(line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::tools::{arg, run_for_test};

    fn tree(root: &std::path::Path) {
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::write(root.join("d/b"), "bb").unwrap();
        fs::write(root.join("d/a"), "a").unwrap();
        fs::write(root.join("d/.hidden"), "").unwrap();
        fs::write(root.join("d/sub/c"), "c").unwrap();
    }

    fn ls(args: &[&str]) -> String {
        let (code, out, err) = run_for_test("ls", args, b"");
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        out
    }

    #[test]
    fn lists_sorted_names_one_a_line_hiding_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let d = arg(dir.path(), "d");
        assert_eq!(ls(&[&d]), "a\nb\nsub\n");
        assert_eq!(ls(&["-1", "-A", &d]), ".hidden\na\nb\nsub\n");
        assert_eq!(ls(&["-a", &d]), ".\n..\n.hidden\na\nb\nsub\n");
    }

    #[test]
    fn files_come_first_then_each_directory_under_a_header() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let (d, sub, a) = (
            arg(dir.path(), "d"),
            arg(dir.path(), "d/sub"),
            arg(dir.path(), "d/a"),
        );
        assert_eq!(
            ls(&[&sub, &a, &d]),
            format!("{a}\n\n{d}:\na\nb\nsub\n\n{sub}:\nc\n")
        );
        assert_eq!(ls(&["-d", &d]), format!("{d}\n"));
    }

    #[test]
    fn recursive_descends_in_order() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let d = arg(dir.path(), "d");
        assert_eq!(ls(&["-R", &d]), format!("{d}:\na\nb\nsub\n\n{d}/sub:\nc\n"));
    }

    #[test]
    fn long_format_shows_kind_size_time_and_links() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let f = fs::File::options()
            .write(true)
            .open(dir.path().join("d/b"))
            .unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
        let out = ls(&["-l", &arg(dir.path(), "d/b")]);
        assert!(out.starts_with('-'), "{out}");
        assert!(
            out.ends_with(&format!(" 2 2023-11-14 22:13 {}\n", arg(dir.path(), "d/b"))),
            "{out}"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("a", dir.path().join("d/link")).unwrap();
            let out = ls(&["-l", &arg(dir.path(), "d")]);
            let line = out.lines().find(|l| l.contains("link")).unwrap();
            assert!(
                line.starts_with("lrwx") && line.ends_with(" link -> a"),
                "{line}"
            );
            let sub = out.lines().find(|l| l.ends_with(" sub")).unwrap();
            assert!(sub.starts_with('d'), "{sub}");
        }
    }

    #[test]
    fn missing_operands_are_reported_and_the_rest_listed() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let missing = arg(dir.path(), "missing");
        let (code, out, err) = run_for_test("ls", &[&missing, &arg(dir.path(), "d/sub")], b"");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("ls: cannot access '{missing}': No such file or directory\n")
        );
        assert!(out.ends_with(":\nc\n"), "{out}");
        assert_eq!(run_for_test("ls", &["-x"], b"").0, 2);
    }
}
