//! `tail`: the last lines (or bytes) of each input, like GNU tail:
//! `-n N` (default 10), `-n +N` from line N on, `-c N` and `-c +N` for
//! bytes, the historical `-N`, and `==> NAME <==` headers when there is
//! more than one input (`-q` never, `-v` always). The last N lines are
//! kept as the input streams by; `-c N` reads the input whole. No `-f`:
//! nothing in a build step grows while tail waits.

use std::collections::VecDeque;
use std::io::{BufRead, Read};

use crate::cli::{Io, Result};
use crate::opts::{self, Flag};
use crate::text::{self, count, next_line};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "tail",
    usage: "[OPTION]... [FILE]...",
    about: "Print the last 10 lines of each FILE (- or none: stdin).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "n",
        "n",
        "lines",
        "the last N lines (+N: from line N on); -N alone means -n N",
    )
    .takes("[+]N"),
    Flag::new("c", "c", "bytes", "the last N bytes (+N: from byte N on)").takes("[+]N"),
    Flag::new("q", "q", "quiet", "never print ==> FILE <== headers"),
    Flag::new("v", "v", "verbose", "always print headers"),
    Flag::new("f", "fF", "follow", "follow")
        .refused("a build step has nothing that grows while tail waits; read the file once"),
];

/// How much to print.
#[derive(Clone, Copy)]
enum Amount {
    Last(u64),
    /// From the Nth line or byte on (1 is the first).
    From(u64),
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, &text::legacy_count(args))?;
    let text::Counting { bytes, value, what } = text::counting(&parsed);
    let amount = match value {
        None => Amount::Last(10),
        Some(v) => match v.strip_prefix('+') {
            Some(n) => Amount::From(count(n, what)?),
            None => Amount::Last(count(v.strip_prefix('-').unwrap_or(v), what)?),
        },
    };
    text::each_with_headers(io, &parsed, |name, input, io| match (amount, bytes) {
        (Amount::Last(n), false) => last_lines(input, io, name, n),
        (Amount::Last(n), true) => {
            let all = text::read_all(input, name)?;
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(all.len());
            io.out(&all[all.len() - n..])
        }
        (Amount::From(n), false) => {
            let mut line = Vec::new();
            for _ in 1..n {
                if !next_line(input, &mut line, name)? {
                    return Ok(());
                }
            }
            text::copy(input, io, name)
        }
        (Amount::From(n), true) => {
            let skip = n.saturating_sub(1);
            let skipped = std::io::copy(&mut input.take(skip), &mut std::io::sink())
                .map_err(|e| text::read_failed(name, &e))?;
            if skipped < skip {
                return Ok(());
            }
            text::copy(input, io, name)
        }
    })
}

fn last_lines(input: &mut dyn BufRead, io: &mut Io<'_>, name: &str, n: u64) -> Result {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n == 0 {
        return Ok(());
    }
    let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
    let mut line = Vec::new();
    while next_line(input, &mut line, name)? {
        if kept.len() == n {
            // Reuse the oldest line's buffer.
            let mut old = kept.pop_front().unwrap_or_default();
            std::mem::swap(&mut old, &mut line);
            kept.push_back(old);
        } else {
            kept.push_back(std::mem::take(&mut line));
        }
    }
    for l in &kept {
        io.out(l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    const TWELVE: &[u8] = b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12";

    fn tail(args: &[&str], stdin: &[u8]) -> String {
        crate::tools::run_ok("tail", args, stdin)
    }

    #[test]
    fn last_ten_lines_by_default_and_n_on_request() {
        assert_eq!(tail(&[], TWELVE), "3\n4\n5\n6\n7\n8\n9\n10\n11\n12");
        assert_eq!(tail(&["-n", "2"], TWELVE), "11\n12");
        assert_eq!(tail(&["-n", "-2"], b"a\nb\nc\n"), "b\nc\n");
        assert_eq!(tail(&["-1"], b"a\nb\nc\n"), "c\n");
        assert_eq!(tail(&["-n", "0"], TWELVE), "");
        assert_eq!(tail(&["-n", "5"], b"a\nb\n"), "a\nb\n");
        assert_eq!(tail(&["-n", "1"], b"a\n\n"), "\n");
    }

    #[test]
    fn plus_n_starts_at_line_or_byte_n() {
        assert_eq!(tail(&["-n", "+11"], TWELVE), "11\n12");
        assert_eq!(tail(&["-n", "+2"], b"head\na\nb\n"), "a\nb\n");
        assert_eq!(tail(&["-n", "+0"], b"a\nb\n"), "a\nb\n");
        assert_eq!(tail(&["-n", "+9"], b"a\nb\n"), "");
        assert_eq!(tail(&["-c", "+3"], b"abcdef"), "cdef");
        assert_eq!(tail(&["-c", "+30"], b"abcdef"), "");
    }

    #[test]
    fn bytes() {
        assert_eq!(tail(&["-c", "3"], TWELVE), "\n12");
        assert_eq!(tail(&["-c", "30"], b"abc"), "abc");
    }

    #[test]
    fn headers_for_several_files_like_gnu() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "a1\na2\n").unwrap();
        let a = arg(dir.path(), "a");
        assert_eq!(
            tail(&["-n1", &a, "-"], b"s1\ns2\n"),
            format!("==> {a} <==\na2\n\n==> standard input <==\ns2\n")
        );
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = arg(dir.path(), "missing");
        let (code, out, err) = run_for_test("tail", &[&missing], b"");
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, format!("tail: {missing}: No such file or directory\n"));
        let (code, _, err) = run_for_test("tail", &["-f", "x"], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("tail: option -f is not supported"), "{err}");
        let (code, _, err) = run_for_test("tail", &["-c", "1k"], b"");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("tail: invalid number of bytes: '1k'"),
            "{err}"
        );
    }
}
