//! `touch`: creates empty files and sets access and modification times, to
//! now (the step's clock; kiln clamps layer times to the build's epoch),
//! to another file's (`-r`) or to `-d @SECONDS`. Only the `@SECONDS` date
//! form is understood: there is no time zone or locale to read others by.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{Io, OrFail, Result, failed, quote, usage};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "touch",
    usage: "[OPTION]... FILE...",
    about: "Set the times of each FILE to now, creating it empty if missing.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("c", "c", "no-create", "do not create missing files"),
    Flag::new("a", "a", "", "change only the access time"),
    Flag::new("m", "m", "", "change only the modification time"),
    Flag::new("r", "r", "reference", "use FILE's times instead of now").takes("FILE"),
    Flag::new(
        "d",
        "d",
        "date",
        "use this time: @SECONDS since 1970-01-01 UTC",
    )
    .takes("@SECONDS"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    if parsed.operands.is_empty() {
        return Err(usage("missing file operand"));
    }
    let (atime, mtime) = match (parsed.value("r"), parsed.value("d")) {
        (Some(_), Some(_)) => return Err(usage("-r and -d cannot be used together")),
        (Some(reference), None) => {
            let meta = fs::metadata(reference)
                .or_fail(|| format!("failed to get attributes of {}", quote(reference)))?;
            let m = meta
                .modified()
                .or_fail(|| format!("{}: no modification time", quote(reference)))?;
            (meta.accessed().unwrap_or(m), m)
        }
        (None, Some(date)) => {
            let t = parse_date(date)?;
            (t, t)
        }
        (None, None) => {
            let now = SystemTime::now();
            (now, now)
        }
    };
    let only_a = parsed.has("a") && !parsed.has("m");
    let only_m = parsed.has("m") && !parsed.has("a");
    let mut times = FileTimes::new();
    if !only_m {
        times = times.set_accessed(atime);
    }
    if !only_a {
        times = times.set_modified(mtime);
    }
    for name in &parsed.operands {
        let result = touch(name, times, parsed.has("c"));
        io.report(result);
    }
    Ok(())
}

fn touch(name: &str, times: FileTimes, no_create: bool) -> Result {
    let file = match File::open(name) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if no_create {
                return Ok(());
            }
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(name)
                .or_fail(|| format!("cannot touch {}", quote(name)))?
        }
        // Unreadable but writable: open it for writing instead.
        Err(_) => OpenOptions::new()
            .write(true)
            .open(name)
            .or_fail(|| format!("cannot touch {}", quote(name)))?,
    };
    file.set_times(times)
        .or_fail(|| format!("setting times of {}", quote(name)))
}

fn parse_date(text: &str) -> Result<SystemTime> {
    let Some(secs) = text.strip_prefix('@') else {
        return Err(usage(format!(
            "invalid date {}: only @SECONDS (since 1970-01-01 UTC) is supported",
            quote(text)
        )));
    };
    let secs: i64 = secs
        .parse()
        .map_err(|_| usage(format!("invalid date {}", quote(text))))?;
    let offset = Duration::from_secs(secs.unsigned_abs());
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    t.ok_or_else(|| failed(format!("date {} is out of range", quote(text))))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::tools::{arg, run_for_test};

    #[test]
    fn creates_missing_files_and_keeps_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old"), "keep").unwrap();
        let (code, _, err) = run_for_test(
            "touch",
            &[&arg(dir.path(), "new"), &arg(dir.path(), "old")],
            b"",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(fs::read(dir.path().join("new")).unwrap(), b"");
        assert_eq!(fs::read(dir.path().join("old")).unwrap(), b"keep");
    }

    #[test]
    fn sets_a_given_or_referenced_time() {
        let dir = tempfile::tempdir().unwrap();
        let f = arg(dir.path(), "f");
        assert_eq!(run_for_test("touch", &["-d", "@1000000000", &f], b"").0, 0);
        let m = fs::metadata(&f).unwrap().modified().unwrap();
        assert_eq!(m, UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        let g = arg(dir.path(), "g");
        assert_eq!(
            run_for_test("touch", &["-r", &f, &g, &dir.path().to_string_lossy()], b"").0,
            0
        );
        assert_eq!(fs::metadata(&g).unwrap().modified().unwrap(), m);
        assert_eq!(fs::metadata(dir.path()).unwrap().modified().unwrap(), m);
        // -a leaves the modification time alone.
        assert_eq!(run_for_test("touch", &["-a", "-d", "@5", &g], b"").0, 0);
        assert_eq!(fs::metadata(&g).unwrap().modified().unwrap(), m);
    }

    #[test]
    fn no_create_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = arg(dir.path(), "f");
        assert_eq!(run_for_test("touch", &["-c", &f], b"").0, 0);
        assert!(!dir.path().join("f").exists());
        let (code, _, err) = run_for_test("touch", &[&arg(dir.path(), "no/such")], b"");
        assert_eq!(code, 1);
        assert!(err.starts_with("touch: cannot touch '"), "{err}");
        assert!(
            err.ends_with("no/such': No such file or directory\n"),
            "{err}"
        );
        let (code, _, err) = run_for_test("touch", &["-d", "yesterday", &f], b"");
        assert_eq!(code, 2);
        assert!(err.contains("only @SECONDS"), "{err}");
        assert_eq!(run_for_test("touch", &[], b"").0, 2);
    }
}
