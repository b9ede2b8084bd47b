//! What the tools that read text share (`cat`, `head`, `tail`, `wc`,
//! `sort`, `uniq`, `cut`, `grep`, `sha256sum`): opening a FILE operand,
//! reading each operand in turn (`-` or none: stdin) through a buffer, line
//! by line as bytes (no UTF-8 needed), and the counts given to `head -n N`
//! and friends.
//!
//! A FILE that cannot be opened or read is reported as `NAME: reason` and
//! skipped, and the tool exits 1 at the end, as `cat a missing b` does; a
//! failed write to stdout stops the tool.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use crate::cli::{
    COPY_BUFFER, Error, Io, Result, StreamError, describe, failed, quote, stream, usage,
    write_error,
};

/// Opens FILE for reading; a directory is an error, as reading one is.
pub(crate) fn open(name: &str) -> io::Result<File> {
    let file = File::open(name)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::other("Is a directory"));
    }
    Ok(file)
}

/// A failed read of `name`: `NAME: reason`.
pub(crate) fn read_failed(name: &str, e: &io::Error) -> Error {
    failed(format!("{name}: {}", describe(e)))
}

/// Runs `each` on every input in `files` in order (none: stdin), with the
/// input's name and a buffered reader of it. An input that cannot be opened,
/// or whose `each` fails, is reported and the next one read; a failed write
/// (or [`Error::Exit`]) stops them all.
pub(crate) fn each_input(
    io: &mut Io<'_>,
    files: &[String],
    mut each: impl FnMut(&str, &mut dyn BufRead, &mut Io<'_>) -> Result,
) -> Result {
    let stdin_only = ["-".to_string()];
    let files = if files.is_empty() { &stdin_only } else { files };
    for name in files {
        let result = if name == "-" {
            let mut reader = BufReader::with_capacity(COPY_BUFFER, io.take_stdin());
            let result = each(name, &mut reader, io);
            io.put_stdin(reader.into_inner());
            result
        } else {
            match open(name) {
                Ok(file) => each(name, &mut BufReader::with_capacity(COPY_BUFFER, file), io),
                Err(e) => Err(read_failed(name, &e)),
            }
        };
        io.carry_on(result)?;
    }
    Ok(())
}

/// Copies the rest of `input` (called `name`) to stdout.
pub(crate) fn copy(mut input: &mut dyn Read, io: &mut Io<'_>, name: &str) -> Result {
    match stream(&mut input, io.stdout) {
        Ok(_) => Ok(()),
        Err(StreamError::Read(e)) => Err(read_failed(name, &e)),
        Err(StreamError::Write(e)) => Err(write_error(e)),
    }
}

/// Reads the next line, with its `\n` if it has one, into `line` (cleared
/// first); false at the end of the input.
pub(crate) fn next_line(input: &mut dyn BufRead, line: &mut Vec<u8>, name: &str) -> Result<bool> {
    line.clear();
    loop {
        match input.read_until(b'\n', line) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(name, &e)),
        }
    }
}

/// Reads the whole input.
pub(crate) fn read_all(input: &mut dyn BufRead, name: &str) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    input
        .read_to_end(&mut all)
        .map_err(|e| read_failed(name, &e))?;
    Ok(all)
}

/// `line` without its `\n`.
pub(crate) fn chomp(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// The lines of `all`, each with its `\n` if it has one.
pub(crate) fn lines(all: &[u8]) -> impl Iterator<Item = &[u8]> {
    all.split_inclusive(|&b| b == b'\n')
}

/// A count of `what` (`lines`, `bytes`) given on the command line: a
/// decimal number.
pub(crate) fn count(value: &str, what: &str) -> Result<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage(format!("invalid number of {what}: {}", quote(value))));
    }
    // All digits: only too many of them can fail; that many is "all".
    Ok(value.parse().unwrap_or(u64::MAX))
}

/// `head -5` and `tail -5`, the historical spelling of `-n 5`, when it is
/// the first argument.
pub(crate) fn legacy_count(args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    if let Some(first) = args.first()
        && let Some(digits) = first.strip_prefix('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        let n = digits.to_string();
        args.splice(0..1, ["-n".to_string(), n]);
    }
    args
}

/// The `==> NAME <==` line `head` and `tail` print before each input when
/// they read more than one; `first` says whether one came before.
pub(crate) fn header(io: &mut Io<'_>, name: &str, first: bool) -> Result {
    let shown = if name == "-" { "standard input" } else { name };
    let gap = if first { "" } else { "\n" };
    io.line(format!("{gap}==> {shown} <=="))
}

/// What `head` and `tail` were asked for: `-c` (bytes) or `-n` (lines),
/// whichever came last, with its count as written (sign included).
pub(crate) struct Counting<'p> {
    /// `-c`: bytes, not lines.
    pub bytes: bool,
    /// The count as written, if given.
    pub value: Option<&'p str>,
    /// "bytes" or "lines", for messages.
    pub what: &'static str,
}

/// Reads `-n`/`-c` from `parsed`.
pub(crate) fn counting(parsed: &crate::opts::Parsed) -> Counting<'_> {
    let bytes = parsed.last_of(&["n", "c"]) == Some("c");
    let (key, what) = if bytes {
        ("c", "bytes")
    } else {
        ("n", "lines")
    };
    Counting {
        bytes,
        value: parsed.value(key),
        what,
    }
}

/// [`each_input`] with `==> NAME <==` before each input when there is
/// more than one (`-q` never, `-v` always), as head and tail print them.
pub(crate) fn each_with_headers(
    io: &mut Io<'_>,
    parsed: &crate::opts::Parsed,
    mut each: impl FnMut(&str, &mut dyn BufRead, &mut Io<'_>) -> Result,
) -> Result {
    let headers = match parsed.last_of(&["q", "v"]) {
        Some("q") => false,
        Some(_) => true,
        None => parsed.operands.len() > 1,
    };
    let mut first = true;
    each_input(io, &parsed.operands, |name, input, io| {
        if headers {
            header(io, name, first)?;
        }
        first = false;
        each(name, input, io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_decimal_and_huge_ones_mean_all() {
        assert_eq!(count("12", "lines").unwrap(), 12);
        assert_eq!(count("99999999999999999999999", "lines").unwrap(), u64::MAX);
        let e = count("1x", "lines").unwrap_err();
        assert_eq!(e.to_string(), "invalid number of lines: '1x'");
        assert_eq!(e.exit_code(), 2);
        assert!(count("", "bytes").is_err() && count("-1", "bytes").is_err());
    }

    #[test]
    fn legacy_counts_only_lead() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(legacy_count(&args(&["-3", "f"])), ["-n", "3", "f"]);
        assert_eq!(legacy_count(&args(&["f", "-3"])), ["f", "-3"]);
        assert_eq!(legacy_count(&args(&["-n", "-3"])), ["-n", "-3"]);
        assert_eq!(legacy_count(&args(&["-"])), ["-"]);
    }

    #[test]
    fn lines_keep_their_newlines_and_the_last_may_lack_one() {
        let all: Vec<&[u8]> = lines(b"a\n\nb").collect();
        assert_eq!(all, [&b"a\n"[..], b"\n", b"b"]);
        assert_eq!(chomp(b"a\n"), b"a");
        assert_eq!(chomp(b"a"), b"a");
    }
}
