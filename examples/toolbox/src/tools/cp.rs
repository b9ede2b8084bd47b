//! `cp`: copies files, and trees with `-r`, streaming contents. Without
//! `-r` symlinks are followed; with `-r` (or `-P`, `-a`) they are copied as
//! symlinks, `-L` follows them. `-p` keeps modification and access times
//! (and modes on hosts that have them; WASI has none: kiln gives new files
//! 0644). The tree walk is shared with `mv`, which copies across mounts.

use std::fs::{self, File, FileTimes, Metadata};
use std::io;
use std::path::Path;

use crate::cli::{Io, OrFail, Result, StreamError, describe, failed, quote, stream};
use crate::fsx::{self, MAX_DEPTH};
use crate::opts::{self, Flag};
use crate::sys;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "cp",
    usage: "[OPTION]... SOURCE DEST | [OPTION]... SOURCE... DIRECTORY",
    about: "Copy SOURCE to DEST, or each SOURCE into DIRECTORY.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "r",
        "rR",
        "recursive",
        "copy directories and their contents",
    ),
    Flag::new("a", "a", "archive", "same as -r -p -P"),
    Flag::new(
        "p",
        "p",
        "preserve",
        "keep times (and modes where the platform has them)",
    ),
    Flag::new(
        "P",
        "P",
        "no-dereference",
        "copy symlinks as symlinks (the default with -r)",
    ),
    Flag::new(
        "L",
        "L",
        "dereference",
        "follow symlinks (the default without -r)",
    ),
    Flag::new("n", "n", "no-clobber", "do not overwrite existing files"),
    Flag::new(
        "f",
        "f",
        "force",
        "remove a destination that cannot be opened, then retry",
    ),
    Flag::new(
        "T",
        "T",
        "no-target-directory",
        "treat DEST as a name, never as a directory to copy into",
    ),
    Flag::new("v", "v", "verbose", "print each copy"),
];

/// How to copy; `mv` copies with everything preserved and no symlink followed.
pub(crate) struct CopyOptions {
    /// Copy directories (else they are reported and skipped).
    pub(crate) recursive: bool,
    /// Follow symlinks instead of copying them.
    pub(crate) dereference: bool,
    /// Keep times (and modes where there are any).
    pub(crate) preserve: bool,
    /// Leave existing destination files alone.
    pub(crate) no_clobber: bool,
    /// Remove a destination that cannot be opened, then retry.
    pub(crate) force: bool,
    /// Print `'src' -> 'dst'` for each copy.
    pub(crate) verbose: bool,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let archive = parsed.has("a");
    let recursive = archive || parsed.has("r");
    let options = CopyOptions {
        recursive,
        dereference: match parsed.last_of(&["L", "P"]) {
            Some("L") => true,
            Some(_) => false,
            None => !recursive,
        },
        preserve: archive || parsed.has("p"),
        no_clobber: parsed.has("n"),
        force: parsed.has("f"),
        verbose: parsed.has("v"),
    };
    for (src, dst) in fsx::targets(&parsed.operands, parsed.has("T"))? {
        let result = check_not_into_itself(Path::new(&src), &dst, &options);
        if io.carry_on(result)? {
            copy_tree(Path::new(&src), &dst, &options, io, 0)?;
        }
    }
    Ok(())
}

/// Refuses `cp -r dir dir/sub`, which would copy forever.
fn check_not_into_itself(src: &Path, dst: &Path, options: &CopyOptions) -> Result {
    let is_dir = if options.dereference {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    }
    .is_ok_and(|m| m.is_dir());
    let cwd = || "cannot find the working directory".to_string();
    if is_dir
        && options.recursive
        && fsx::is_within(
            &fsx::absolute(dst).or_fail(cwd)?,
            &fsx::absolute(src).or_fail(cwd)?,
        )
    {
        return Err(failed(format!(
            "cannot copy a directory, {}, into itself, {}",
            quote(src),
            quote(dst)
        )));
    }
    Ok(())
}

/// Copies `src` to `dst` (and, for a directory, everything below it).
/// Problems are reported on `io` and the rest is still copied; returns
/// whether everything was. Only a failed write to stdout stops it.
pub(crate) fn copy_tree(
    src: &Path,
    dst: &Path,
    options: &CopyOptions,
    io: &mut Io<'_>,
    depth: usize,
) -> Result<bool> {
    let meta = if options.dereference {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            io.error(format!("cannot stat {}: {}", quote(src), describe(&e)));
            return Ok(false);
        }
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        if !options.recursive {
            io.error(format!(
                "-r not specified; omitting directory {}",
                quote(src)
            ));
            return Ok(false);
        }
        if depth >= MAX_DEPTH {
            io.error(fsx::too_deep(src));
            return Ok(false);
        }
        copy_dir(src, dst, &meta, options, io, depth)
    } else if kind.is_symlink() {
        let result = copy_symlink(src, dst, options, io);
        io.carry_on(result)
    } else if kind.is_file() {
        let result = copy_file(src, dst, &meta, options, io);
        io.carry_on(result)
    } else {
        io.error(format!("cannot copy special file {}", quote(src)));
        Ok(false)
    }
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    meta: &Metadata,
    options: &CopyOptions,
    io: &mut Io<'_>,
    depth: usize,
) -> Result<bool> {
    match fs::metadata(dst) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            io.error(format!(
                "cannot overwrite non-directory {} with directory {}",
                quote(dst),
                quote(src)
            ));
            return Ok(false);
        }
        Err(_) => {
            if let Err(e) = fs::create_dir(dst) {
                io.error(format!(
                    "cannot create directory {}: {}",
                    quote(dst),
                    describe(&e)
                ));
                return Ok(false);
            }
            if options.verbose {
                io.line(format!("{} -> {}", quote(src), quote(dst)))?;
            }
        }
    }
    let names = match fsx::sorted_names(src) {
        Ok(n) => n,
        Err(e) => {
            io.error(format!(
                "cannot read directory {}: {}",
                quote(src),
                describe(&e)
            ));
            return Ok(false);
        }
    };
    let mut all = true;
    for name in names {
        all &= copy_tree(&src.join(&name), &dst.join(&name), options, io, depth + 1)?;
    }
    if options.preserve {
        // After the contents, whose creation changed the directory's times.
        let result = preserve(dst, meta, None);
        all &= io.carry_on(result)?;
    }
    Ok(all)
}

fn copy_file(
    src: &Path,
    dst: &Path,
    meta: &Metadata,
    options: &CopyOptions,
    io: &mut Io<'_>,
) -> Result {
    if let Ok(existing) = fs::metadata(dst) {
        if keep_existing(&existing, src, dst, options)? {
            return Ok(());
        }
        let same = sys::same_file(meta, &existing).unwrap_or(false)
            || fsx::absolute(src).ok() == fsx::absolute(dst).ok();
        if same {
            return Err(failed(format!(
                "{} and {} are the same file",
                quote(src),
                quote(dst)
            )));
        }
    } else if options.no_clobber && fsx::exists_no_follow(dst) {
        return Ok(()); // a dangling symlink is still something not to clobber
    }
    let mut input =
        File::open(src).or_fail(|| format!("cannot open {} for reading", quote(src)))?;
    let mut output = match File::create(dst) {
        Ok(f) => Ok(f),
        Err(_) if options.force && fs::remove_file(dst).is_ok() => File::create(dst),
        Err(e) => Err(e),
    }
    .or_fail(|| format!("cannot create regular file {}", quote(dst)))?;
    match stream(&mut input, &mut output) {
        Ok(_) => {}
        Err(StreamError::Read(e)) => {
            return Err(failed(format!(
                "error reading {}: {}",
                quote(src),
                describe(&e)
            )));
        }
        Err(StreamError::Write(e)) => {
            return Err(failed(format!(
                "error writing {}: {}",
                quote(dst),
                describe(&e)
            )));
        }
    }
    if let Some(mode) = sys::mode(meta) {
        // As GNU cp does for a new file: the source's permission bits.
        let bits = if options.preserve { mode } else { mode & 0o777 };
        sys::set_mode(dst, bits).or_fail(|| format!("setting the mode of {}", quote(dst)))?;
    }
    if options.preserve {
        preserve(dst, meta, Some(&output))?;
    }
    if options.verbose {
        io.line(format!("{} -> {}", quote(src), quote(dst)))?;
    }
    Ok(())
}

/// Whether an existing `dst` stays as it is (`-n`); a directory is never
/// replaced by the non-directory `src`.
fn keep_existing(
    existing: &Metadata,
    src: &Path,
    dst: &Path,
    options: &CopyOptions,
) -> Result<bool> {
    if options.no_clobber {
        return Ok(true);
    }
    if existing.is_dir() {
        return Err(failed(format!(
            "cannot overwrite directory {} with non-directory {}",
            quote(dst),
            quote(src)
        )));
    }
    Ok(false)
}

fn copy_symlink(src: &Path, dst: &Path, options: &CopyOptions, io: &mut Io<'_>) -> Result {
    let target =
        fs::read_link(src).or_fail(|| format!("cannot read symbolic link {}", quote(src)))?;
    if let Ok(existing) = fs::symlink_metadata(dst) {
        if keep_existing(&existing, src, dst, options)? {
            return Ok(());
        }
        fs::remove_file(dst).or_fail(|| format!("cannot remove {}", quote(dst)))?;
    }
    sys::symlink(&target, dst).or_fail(|| format!("cannot create symbolic link {}", quote(dst)))?;
    if options.verbose {
        io.line(format!("{} -> {}", quote(src), quote(dst)))?;
    }
    Ok(())
}

/// Gives `dst` the times (and mode, where there are modes) of `meta`.
fn preserve(dst: &Path, meta: &Metadata, open: Option<&File>) -> Result {
    let mut times = FileTimes::new();
    if let Ok(t) = meta.modified() {
        times = times.set_modified(t);
    }
    if let Ok(t) = meta.accessed() {
        times = times.set_accessed(t);
    }
    let what = || format!("preserving times of {}", quote(dst));
    match open {
        Some(file) => file.set_times(times).or_fail(what)?,
        None => File::open(dst)
            .and_then(|f| f.set_times(times))
            .or_fail(what)?,
    }
    if meta.is_dir()
        && let Some(mode) = sys::mode(meta)
    {
        sys::set_mode(dst, mode).or_fail(|| format!("setting the mode of {}", quote(dst)))?;
    }
    Ok(())
}

/// Whether `e` says a rename crossed filesystems (kiln mounts are separate
/// filesystems).
pub(crate) fn crosses_devices(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::CrossesDevices
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::tools::{arg, run_for_test};

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("src/sub/empty")).unwrap();
        fs::write(root.join("src/a"), "a").unwrap();
        fs::write(root.join("src/sub/b"), "b").unwrap();
    }

    #[test]
    fn copies_a_file_to_a_name_or_into_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "data").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let (f, d) = (arg(dir.path(), "f"), arg(dir.path(), "d"));
        assert_eq!(run_for_test("cp", &[&f, &arg(dir.path(), "g")], b"").0, 0);
        assert_eq!(run_for_test("cp", &[&f, &d], b"").0, 0);
        assert_eq!(fs::read_to_string(dir.path().join("g")).unwrap(), "data");
        assert_eq!(fs::read_to_string(dir.path().join("d/f")).unwrap(), "data");
        // Overwrites, and -n does not.
        fs::write(dir.path().join("f"), "new").unwrap();
        assert_eq!(run_for_test("cp", &["-n", &f, &d], b"").0, 0);
        assert_eq!(fs::read_to_string(dir.path().join("d/f")).unwrap(), "data");
        assert_eq!(run_for_test("cp", &[&f, &d], b"").0, 0);
        assert_eq!(fs::read_to_string(dir.path().join("d/f")).unwrap(), "new");
    }

    #[test]
    fn directories_need_r_and_are_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let (src, dst) = (arg(dir.path(), "src"), arg(dir.path(), "dst"));
        let (code, _, err) = run_for_test("cp", &[&src, &dst], b"");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("cp: -r not specified; omitting directory '{src}'\n")
        );
        let (code, out, err) = run_for_test("cp", &["-rv", &src, &dst], b"");
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out.lines().count(), 5, "{out}");
        assert_eq!(
            fs::read_to_string(dir.path().join("dst/sub/b")).unwrap(),
            "b"
        );
        assert!(dir.path().join("dst/sub/empty").is_dir());
        // Again: dst exists, so src goes inside it.
        assert_eq!(run_for_test("cp", &["-R", &src, &dst], b"").0, 0);
        assert_eq!(
            fs::read_to_string(dir.path().join("dst/src/a")).unwrap(),
            "a"
        );
    }

    #[test]
    fn dot_copies_the_contents_into_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        fs::create_dir(dir.path().join("dst")).unwrap();
        fs::write(dir.path().join("dst/keep"), "k").unwrap();
        let src = format!("{}/.", arg(dir.path(), "src"));
        assert_eq!(
            run_for_test("cp", &["-r", &src, &arg(dir.path(), "dst")], b"").0,
            0
        );
        assert_eq!(fs::read_to_string(dir.path().join("dst/a")).unwrap(), "a");
        assert_eq!(
            fs::read_to_string(dir.path().join("dst/keep")).unwrap(),
            "k"
        );
        assert!(!dir.path().join("dst/src").exists());
    }

    #[test]
    fn refuses_copying_into_itself_the_same_file_and_dir_over_file() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let src = arg(dir.path(), "src");
        let (code, _, err) = run_for_test("cp", &["-r", &src, &arg(dir.path(), "src/sub")], b"");
        assert_eq!(code, 1);
        assert!(err.contains("into itself"), "{err}");
        let a = arg(dir.path(), "src/a");
        let (code, _, err) = run_for_test("cp", &[&a, &a], b"");
        assert_eq!(code, 1);
        assert!(err.contains("are the same file"), "{err}");
        let (code, _, err) =
            run_for_test("cp", &["-r", &arg(dir.path(), "src/sub"), &a, "-T"], b"");
        assert_eq!(code, 1);
        assert!(err.contains("cannot overwrite non-directory"), "{err}");
        let (code, _, err) = run_for_test("cp", &[&arg(dir.path(), "missing"), &a], b"");
        assert_eq!(code, 1);
        assert!(
            err.contains("cannot stat '") && err.contains("No such file"),
            "{err}"
        );
        assert_eq!(run_for_test("cp", &[&a], b"").0, 2);
        assert_eq!(run_for_test("cp", &["-x", &a, &a], b"").0, 2);
    }

    #[test]
    fn preserve_keeps_times() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let old = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let f = fs::File::options()
            .write(true)
            .open(dir.path().join("src/a"))
            .unwrap();
        f.set_modified(old).unwrap();
        let (src, dst) = (arg(dir.path(), "src"), arg(dir.path(), "dst"));
        assert_eq!(run_for_test("cp", &["-a", &src, &dst], b"").0, 0);
        assert_eq!(
            fs::metadata(dir.path().join("dst/a"))
                .unwrap()
                .modified()
                .unwrap(),
            old
        );
        assert_eq!(
            run_for_test(
                "cp",
                &[&arg(dir.path(), "src/a"), &arg(dir.path(), "plain")],
                b""
            )
            .0,
            0
        );
        assert_ne!(
            fs::metadata(dir.path().join("plain"))
                .unwrap()
                .modified()
                .unwrap(),
            old
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_copied_with_r_and_followed_without() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        std::os::unix::fs::symlink("a", dir.path().join("src/link")).unwrap();
        let (src, dst) = (arg(dir.path(), "src"), arg(dir.path(), "dst"));
        assert_eq!(run_for_test("cp", &["-r", &src, &dst], b"").0, 0);
        assert_eq!(
            fs::read_link(dir.path().join("dst/link")).unwrap(),
            Path::new("a")
        );
        let copy = arg(dir.path(), "copy");
        assert_eq!(
            run_for_test("cp", &[&arg(dir.path(), "src/link"), &copy], b"").0,
            0
        );
        assert!(
            !fs::symlink_metadata(&copy)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&copy).unwrap(), "a");
        let deref = arg(dir.path(), "deref");
        assert_eq!(run_for_test("cp", &["-rL", &src, &deref], b"").0, 0);
        assert!(
            !fs::symlink_metadata(dir.path().join("deref/link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[cfg(unix)]
    #[test]
    fn new_files_keep_the_executable_bit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        fs::write(&f, "#!").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            run_for_test("cp", &[&arg(dir.path(), "x"), &arg(dir.path(), "y")], b"").0,
            0
        );
        let mode = fs::metadata(dir.path().join("y"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
