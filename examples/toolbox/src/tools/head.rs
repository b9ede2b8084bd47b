//! `head`: the first lines (or bytes) of each input, like GNU head:
//! `-n N` (default 10), `-n -N` all but the last N, `-c N` and `-c -N`
//! for bytes, the historical `-N`, and `==> NAME <==` headers when there
//! is more than one input (`-q` never, `-v` always). It stops reading an
//! input once it has what it needs.

use std::collections::VecDeque;
use std::io::{BufRead, Read};

use crate::cli::{Io, Result};
use crate::opts::{self, Flag};
use crate::text::{self, count, next_line};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "head",
    usage: "[OPTION]... [FILE]...",
    about: "Print the first 10 lines of each FILE (- or none: stdin).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "n",
        "n",
        "lines",
        "the first N lines (-N: all but the last N); -N alone means -n N",
    )
    .takes("[-]N"),
    Flag::new(
        "c",
        "c",
        "bytes",
        "the first N bytes (-N: all but the last N)",
    )
    .takes("[-]N"),
    Flag::new("q", "q", "quiet", "never print ==> FILE <== headers"),
    Flag::new("v", "v", "verbose", "always print headers"),
];

/// How much to print.
#[derive(Clone, Copy)]
enum Amount {
    First(u64),
    AllBut(u64),
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, &text::legacy_count(args))?;
    let text::Counting { bytes, value, what } = text::counting(&parsed);
    let amount = match value {
        None => Amount::First(10),
        Some(v) => match v.strip_prefix('-') {
            Some(n) => Amount::AllBut(count(n, what)?),
            None => Amount::First(count(v, what)?),
        },
    };
    text::each_with_headers(io, &parsed, |name, input, io| {
        if bytes {
            head_bytes(input, io, name, amount)
        } else {
            head_lines(input, io, name, amount)
        }
    })
}

fn head_lines(input: &mut dyn BufRead, io: &mut Io<'_>, name: &str, amount: Amount) -> Result {
    let mut line = Vec::new();
    match amount {
        Amount::First(n) => {
            for _ in 0..n {
                if !next_line(input, &mut line, name)? {
                    break;
                }
                io.out(&line)?;
            }
        }
        Amount::AllBut(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut held: VecDeque<Vec<u8>> = VecDeque::new();
            while next_line(input, &mut line, name)? {
                held.push_back(std::mem::take(&mut line));
                if held.len() > n
                    && let Some(out) = held.pop_front()
                {
                    io.out(&out)?;
                }
            }
        }
    }
    Ok(())
}

fn head_bytes(input: &mut dyn BufRead, io: &mut Io<'_>, name: &str, amount: Amount) -> Result {
    match amount {
        Amount::First(n) => text::copy(&mut input.take(n), io, name),
        Amount::AllBut(n) => {
            let all = text::read_all(input, name)?;
            let keep = all.len() - usize::try_from(n).unwrap_or(usize::MAX).min(all.len());
            io.out(&all[..keep])
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    const TWELVE: &[u8] = b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12";

    fn head(args: &[&str], stdin: &[u8]) -> String {
        crate::tools::run_ok("head", args, stdin)
    }

    #[test]
    fn ten_lines_by_default_and_n_lines_on_request() {
        assert_eq!(head(&[], TWELVE), "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
        assert_eq!(head(&["-n", "2"], TWELVE), "1\n2\n");
        assert_eq!(head(&["-n2"], TWELVE), "1\n2\n");
        assert_eq!(head(&["--lines=3", "-"], TWELVE), "1\n2\n3\n");
        assert_eq!(head(&["-3"], TWELVE), "1\n2\n3\n");
        assert_eq!(head(&["-n", "0"], TWELVE), "");
        assert_eq!(head(&["-n", "99"], b"a\nb"), "a\nb");
    }

    #[test]
    fn negative_counts_drop_the_end() {
        assert_eq!(head(&["-n", "-10"], TWELVE), "1\n2\n");
        assert_eq!(head(&["-n", "-20"], TWELVE), "");
        assert_eq!(
            head(&["-c", "-3"], TWELVE),
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11"
        );
    }

    #[test]
    fn bytes() {
        assert_eq!(head(&["-c", "3"], TWELVE), "1\n2");
        assert_eq!(head(&["-c3", "-n", "1"], TWELVE), "1\n");
        assert_eq!(head(&["-n", "1", "-c3"], TWELVE), "1\n2");
    }

    #[test]
    fn headers_for_several_files_like_gnu() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "a1\na2\n").unwrap();
        fs::write(dir.path().join("b"), "b1\n").unwrap();
        let (a, b) = (arg(dir.path(), "a"), arg(dir.path(), "b"));
        assert_eq!(
            head(&["-n1", &a, "-", &b], b"s1\ns2\n"),
            format!("==> {a} <==\na1\n\n==> standard input <==\ns1\n\n==> {b} <==\nb1\n")
        );
        assert_eq!(head(&["-q", "-n1", &a, &b], b""), "a1\nb1\n");
        assert_eq!(head(&["-v", &b], b""), format!("==> {b} <==\nb1\n"));
    }

    #[test]
    fn missing_files_and_bad_counts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "a\n").unwrap();
        let (a, missing) = (arg(dir.path(), "a"), arg(dir.path(), "missing"));
        let (code, out, err) = run_for_test("head", &[&missing, &a], b"");
        assert_eq!(code, 1);
        assert_eq!(out, format!("==> {a} <==\na\n"));
        assert_eq!(err, format!("head: {missing}: No such file or directory\n"));
        let (code, _, err) = run_for_test("head", &["-n", "x"], b"");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("head: invalid number of lines: 'x'\n"),
            "{err}"
        );
        let (code, _, err) = run_for_test("head", &["-z"], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("head: unknown option -z;"), "{err}");
    }
}
