//! `sha256sum`: prints SHA-256 digests in coreutils' format
//! (`HEX  NAME`, `HEX *NAME` with `-b`, a leading `\` when the name needs
//! escaping), and with `-c` checks the files a checksum list names, in that
//! format or BSD's (`SHA256 (NAME) = HEX`), with coreutils' messages and
//! exit status. Files are streamed; checksum lines are read with a cap.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest, Sha256};

use crate::cli::{COPY_BUFFER, Io, OrFail, Result, describe, failed, quote, usage};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "sha256sum",
    usage: "[OPTION]... [FILE]...",
    about: "Print or check SHA-256 digests of each FILE (- or none: stdin).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "c",
        "c",
        "check",
        "read digests from each FILE and check them",
    ),
    Flag::new(
        "b",
        "b",
        "binary",
        "mark names with * (binary mode; the same bytes are read)",
    ),
    Flag::new("t", "t", "text", "mark names with a space (the default)"),
    Flag::new("quiet", "", "quiet", "with -c: do not print OK lines"),
    Flag::new(
        "status",
        "",
        "status",
        "with -c: print nothing; the exit code says it",
    ),
    Flag::new(
        "strict",
        "",
        "strict",
        "with -c: fail on improperly formatted lines",
    ),
    Flag::new(
        "w",
        "w",
        "warn",
        "with -c: warn about improperly formatted lines",
    ),
];

/// Longest checksum line read: 64 hex digits, two marks and a name of up
/// to a few PATH_MAX (4096 bytes), escaped. A longer line cannot be one
/// coreutils wrote, and reading it whole would let a list hold the program's
/// memory hostage; it counts as improperly formatted.
const MAX_LINE: usize = 16 << 10;

/// Length of a SHA-256 digest in hex.
const HEX_LEN: usize = 64;

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let mut files = parsed.operands.clone();
    if files.is_empty() {
        files.push("-".into());
    }
    if !parsed.has("c") {
        for only_check in ["quiet", "status", "strict", "w"] {
            if parsed.has(only_check) {
                return Err(usage(
                    "--quiet, --status, --strict and -w only apply with -c",
                ));
            }
        }
        let mark = if parsed.last_of(&["b", "t"]) == Some("b") {
            '*'
        } else {
            ' '
        };
        for name in &files {
            match digest_of(name, io) {
                Ok(hex) => {
                    let (prefix, shown) = escape(name);
                    io.line(format!("{prefix}{hex} {mark}{shown}"))?;
                }
                Err(e) => io.error(format!("{name}: {}", describe(&e))),
            }
        }
        return Ok(());
    }
    let check = Check {
        quiet: parsed.has("quiet"),
        status: parsed.has("status"),
        strict: parsed.has("strict"),
        warn: parsed.has("w"),
    };
    for list in &files {
        let result = check.list(list, io);
        io.report(result);
    }
    Ok(())
}

/// The hex SHA-256 of a file, or of stdin for `-`.
fn digest_of(name: &str, io: &mut Io<'_>) -> io::Result<String> {
    if name == "-" {
        return digest(io.stdin);
    }
    digest(&mut crate::text::open(name)?)
}

fn digest(input: &mut dyn Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// coreutils' escaping of a name in a checksum line: names with a
/// backslash or a line break get a leading `\` on the line and `\\`, `\n`,
/// `\r` in the name.
fn escape(name: &str) -> (&'static str, String) {
    if !name.contains(['\\', '\n', '\r']) {
        return ("", name.to_string());
    }
    let escaped = name
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    ("\\", escaped)
}

fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            _ => return None,
        }
    }
    Some(out)
}

/// One line of a checksum list: the expected hex digest and the name.
fn parse_line(line: &str) -> Option<(String, String)> {
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        // BSD style: SHA256 (NAME) = HEX
        let (name, hex) = rest.rsplit_once(") = ")?;
        return valid_hex(hex).then(|| (hex.to_ascii_lowercase(), name.to_string()));
    }
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let hex = line.get(..HEX_LEN)?;
    let rest = &line[HEX_LEN..];
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    if !valid_hex(hex) || name.is_empty() {
        return None;
    }
    let name = if escaped {
        unescape(name)?
    } else {
        name.to_string()
    };
    Some((hex.to_ascii_lowercase(), name))
}

fn valid_hex(hex: &str) -> bool {
    hex.len() == HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads one line into `buf` without its newline, keeping at most `max`
/// bytes; `None` at the end of input, else whether the line was longer
/// (its rest is skipped).
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let room = max.saturating_sub(buf.len());
        too_long |= part.len() > room;
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = newline.map_or(chunk.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            return Ok(Some(too_long));
        }
    }
}

struct Check {
    quiet: bool,
    status: bool,
    strict: bool,
    warn: bool,
}

#[derive(Default)]
struct Counts {
    good_lines: u64,
    improper: u64,
    unreadable: u64,
    mismatched: u64,
}

impl Check {
    /// Checks every line of the list `name` (`-` is stdin).
    fn list(&self, name: &str, io: &mut Io<'_>) -> Result {
        let mut counts = Counts::default();
        if name == "-" {
            // Stdin is both the list and, for a `-` line, a file: a list
            // read from stdin cannot name stdin (as with coreutils).
            let stdin = io.take_stdin();
            let mut reader = BufReader::new(&mut *stdin);
            let result = self.lines(name, &mut reader, &mut counts, io);
            drop(reader);
            io.put_stdin(stdin);
            result?;
        } else {
            let file = File::open(name).or_fail(|| name.to_string())?;
            self.lines(name, &mut BufReader::new(file), &mut counts, io)?;
        }
        if counts.good_lines == 0 {
            return Err(failed(format!(
                "{}: no properly formatted checksum lines found",
                quote(name)
            )));
        }
        if !self.status {
            let plural = |n: u64, one: &str, many: &str| {
                if n == 1 {
                    format!("1 {one}")
                } else {
                    format!("{n} {many}")
                }
            };
            if counts.improper > 0 {
                io.note(format!(
                    "WARNING: {}",
                    plural(
                        counts.improper,
                        "line is improperly formatted",
                        "lines are improperly formatted"
                    )
                ));
            }
            if counts.unreadable > 0 {
                io.note(format!(
                    "WARNING: {}",
                    plural(
                        counts.unreadable,
                        "listed file could not be read",
                        "listed files could not be read"
                    )
                ));
            }
            if counts.mismatched > 0 {
                io.note(format!(
                    "WARNING: {}",
                    plural(
                        counts.mismatched,
                        "computed checksum did NOT match",
                        "computed checksums did NOT match"
                    )
                ));
            }
        }
        if counts.mismatched > 0 || counts.unreadable > 0 || (self.strict && counts.improper > 0) {
            io.set_failed();
        }
        Ok(())
    }

    fn lines(
        &self,
        list: &str,
        input: &mut dyn BufRead,
        counts: &mut Counts,
        io: &mut Io<'_>,
    ) -> Result {
        let mut buf = Vec::new();
        let mut number = 0u64;
        while let Some(too_long) =
            read_line(input, &mut buf, MAX_LINE).or_fail(|| list.to_string())?
        {
            number += 1;
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.is_empty() || buf[0] == b'#' {
                continue;
            }
            let parsed = std::str::from_utf8(&buf)
                .ok()
                .filter(|_| !too_long)
                .and_then(parse_line);
            let Some((expected, name)) = parsed else {
                counts.improper += 1;
                if self.warn {
                    io.note(format!(
                        "{list}: {number}: improperly formatted SHA256 checksum line"
                    ));
                }
                continue;
            };
            counts.good_lines += 1;
            let (_, shown) = escape(&name);
            match digest_of(&name, io) {
                Err(e) => {
                    counts.unreadable += 1;
                    if !self.status {
                        io.note(format!("{name}: {}", describe(&e)));
                        io.line(format!("{shown}: FAILED open or read"))?;
                    }
                }
                Ok(actual) if actual == expected => {
                    if !self.quiet && !self.status {
                        io.line(format!("{shown}: OK"))?;
                    }
                }
                Ok(_) => {
                    counts.mismatched += 1;
                    if !self.status {
                        io.line(format!("{shown}: FAILED"))?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::tools::{arg, run_for_test};

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn prints_digests_in_coreutils_format() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        let f = arg(dir.path(), "abc");
        let (code, out, _) = run_for_test("sha256sum", &[&f, "-"], b"");
        assert_eq!(code, 0);
        assert_eq!(out, format!("{ABC}  {f}\n{EMPTY}  -\n"));
        let (_, out, _) = run_for_test("sha256sum", &["-b"], b"abc");
        assert_eq!(out, format!("{ABC} *-\n"));
    }

    #[test]
    fn names_with_backslashes_or_newlines_are_escaped_both_ways() {
        assert_eq!(escape("a\\b\nc"), ("\\", "a\\\\b\\nc".to_string()));
        assert_eq!(escape("plain"), ("", "plain".to_string()));
        let line = format!("\\{ABC}  a\\\\b\\nc");
        assert_eq!(parse_line(&line), Some((ABC.into(), "a\\b\nc".into())));
        let bsd = format!("SHA256 (x y) = {}", ABC.to_uppercase());
        assert_eq!(parse_line(&bsd), Some((ABC.into(), "x y".into())));
        assert_eq!(parse_line(&format!("{ABC} x")), None);
        assert_eq!(parse_line("abc  x"), None);
    }

    #[test]
    fn check_reports_ok_failed_and_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        fs::write(dir.path().join("other"), "other").unwrap();
        let (abc, other, gone) = (
            arg(dir.path(), "abc"),
            arg(dir.path(), "other"),
            arg(dir.path(), "gone"),
        );
        let list =
            format!("{ABC}  {abc}\n{ABC} *{other}\n# comment\n\n{ABC}  {gone}\nnot a line\n");
        fs::write(dir.path().join("SUMS"), list).unwrap();
        let sums = arg(dir.path(), "SUMS");
        let (code, out, err) = run_for_test("sha256sum", &["-c", &sums], b"");
        assert_eq!(code, 1);
        assert_eq!(
            out,
            format!("{abc}: OK\n{other}: FAILED\n{gone}: FAILED open or read\n")
        );
        assert_eq!(
            err,
            format!(
                "sha256sum: {gone}: No such file or directory\n\
                 sha256sum: WARNING: 1 line is improperly formatted\n\
                 sha256sum: WARNING: 1 listed file could not be read\n\
                 sha256sum: WARNING: 1 computed checksum did NOT match\n"
            )
        );
        let (code, out, err) = run_for_test("sha256sum", &["--status", "-c", &sums], b"");
        assert_eq!((code, out.as_str(), err.as_str()), (1, "", ""));
    }

    #[test]
    fn check_reads_the_list_from_stdin_and_quiet_hides_ok() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        let list = format!("{ABC}  {}\n", arg(dir.path(), "abc"));
        let (code, out, _) = run_for_test("sha256sum", &["-c"], list.as_bytes());
        assert_eq!((code, out.ends_with(": OK\n")), (0, true), "{out}");
        let (code, out, _) = run_for_test("sha256sum", &["-c", "--quiet", "-"], list.as_bytes());
        assert_eq!((code, out.as_str()), (0, ""));
    }

    #[test]
    fn bad_lists_fail_and_strict_counts_improper_lines() {
        let (code, _, err) = run_for_test("sha256sum", &["-c"], b"garbage\n");
        assert_eq!(code, 1);
        assert!(
            err.contains("'-': no properly formatted checksum lines found"),
            "{err}"
        );
        let long = format!("{ABC}  {}\n", "x".repeat(MAX_LINE));
        let (code, _, _) = run_for_test("sha256sum", &["-c"], long.as_bytes());
        assert_eq!(code, 1, "an over-long line is not a checksum line");
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("abc"), "abc").unwrap();
        let list = format!("{ABC}  {}\nbad\n", arg(dir.path(), "abc"));
        assert_eq!(run_for_test("sha256sum", &["-c"], list.as_bytes()).0, 0);
        let (code, _, err) = run_for_test("sha256sum", &["-c", "--strict", "-w"], list.as_bytes());
        assert_eq!(code, 1);
        assert!(
            err.contains("-: 2: improperly formatted SHA256 checksum line"),
            "{err}"
        );
        assert_eq!(run_for_test("sha256sum", &["--quiet"], b"").0, 2);
        let (code, _, err) = run_for_test("sha256sum", &[&arg(dir.path(), "nope")], b"");
        assert_eq!(code, 1);
        assert!(err.contains("nope: No such file or directory"), "{err}");
    }

    #[test]
    fn read_line_caps_and_skips_the_rest() {
        let mut input = &b"abcdef\nxy\nlast"[..];
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut input, &mut buf, 3).unwrap(), Some(true));
        assert_eq!(buf, b"abc");
        assert_eq!(read_line(&mut input, &mut buf, 3).unwrap(), Some(false));
        assert_eq!(buf, b"xy");
        assert_eq!(read_line(&mut input, &mut buf, 9).unwrap(), Some(false));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut input, &mut buf, 9).unwrap(), None);
    }
}
