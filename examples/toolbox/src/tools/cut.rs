//! `cut`: parts of each line, like GNU cut: `-f LIST` fields separated by
//! `-d SEP` (default TAB; a line without SEP is printed whole unless `-s`),
//! joined by SEP or `--output-delimiter`; `-b LIST` and `-c LIST` bytes
//! (as in GNU cut, `-c` counts bytes). A LIST is `N`, `N-M`, `N-`, `-M`,
//! separated by commas, from 1; parts come out in input order, once.
//! Not supported: `--complement`, `-z`, `--output-delimiter` with `-b`/`-c`.

use crate::cli::{Io, Result, quote, usage};
use crate::opts::{self, Flag};
use crate::text::{self, chomp, next_line};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "cut",
    usage: "-f LIST [-d SEP] [-s] | -b LIST | -c LIST [FILE]...",
    about: "Print the selected fields or bytes of each line of each FILE (- or none: stdin).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "f",
        "f",
        "fields",
        "the fields to print: N, N-M, N-, -M, ...",
    )
    .takes("LIST"),
    Flag::new(
        "d",
        "d",
        "delimiter",
        "fields are separated by SEP (default TAB)",
    )
    .takes("SEP"),
    Flag::new(
        "s",
        "s",
        "only-delimited",
        "with -f: skip lines without SEP",
    ),
    Flag::new(
        "out",
        "",
        "output-delimiter",
        "with -f: join fields with STRING",
    )
    .takes("STRING"),
    Flag::new("b", "b", "bytes", "the bytes to print").takes("LIST"),
    Flag::new("c", "c", "characters", "the same as -b: bytes").takes("LIST"),
];

/// Selected positions: inclusive ranges from 1; `usize::MAX` is open.
struct List(Vec<(usize, usize)>);

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let given: Vec<&str> = ["f", "b", "c"]
        .into_iter()
        .filter(|k| parsed.has(k))
        .collect();
    let mode = match given[..] {
        [mode] => mode,
        [] => {
            return Err(usage(
                "you must specify a list of bytes, characters, or fields",
            ));
        }
        _ => return Err(usage("only one list may be specified")),
    };
    let list = List::parse(parsed.value(mode).unwrap_or_default(), mode)?;
    if mode != "f" && (parsed.has("d") || parsed.has("s") || parsed.has("out")) {
        return Err(usage(
            "-d, -s and --output-delimiter only apply to fields (-f)",
        ));
    }
    let sep = match parsed.value("d") {
        None => b'\t',
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some(d) => {
            return Err(usage(format!(
                "the delimiter must be a single byte, got {}",
                quote(d)
            )));
        }
    };
    let sep_bytes = [sep];
    let out_sep = parsed.value("out").map_or(&sep_bytes[..], str::as_bytes);
    let only_delimited = parsed.has("s");
    let mut out = Vec::new();
    text::each_input(io, &parsed.operands, |name, input, io| {
        let mut line = Vec::new();
        while next_line(input, &mut line, name)? {
            let l = chomp(&line);
            out.clear();
            if mode != "f" {
                out.extend(
                    l.iter()
                        .enumerate()
                        .filter(|(i, _)| list.has(i + 1))
                        .map(|(_, b)| *b),
                );
            } else if !l.contains(&sep) {
                if only_delimited {
                    continue;
                }
                out.extend_from_slice(l);
            } else {
                let fields = l.split(|&b| b == sep).enumerate();
                for (n, (_, field)) in fields.filter(|(i, _)| list.has(i + 1)).enumerate() {
                    if n > 0 {
                        out.extend_from_slice(out_sep);
                    }
                    out.extend_from_slice(field);
                }
            }
            out.push(b'\n');
            io.out(&out)?;
        }
        Ok(())
    })
}

impl List {
    fn parse(spec: &str, mode: &str) -> Result<List> {
        let what = if mode == "f" {
            "field"
        } else {
            "byte position"
        };
        let number = |s: &str| -> Result<usize> {
            match s.parse::<usize>() {
                Ok(0) => Err(usage("fields and positions are numbered from 1")),
                Ok(n) => Ok(n),
                Err(_) => Err(usage(format!("invalid {what} {}", quote(s)))),
            }
        };
        let mut ranges = Vec::new();
        for item in spec.split(',') {
            let range = match item.split_once('-') {
                None => {
                    let n = number(item)?;
                    (n, n)
                }
                Some(("", "")) => {
                    return Err(usage(format!("invalid range with no endpoint: {item}")));
                }
                Some(("", end)) => (1, number(end)?),
                Some((start, "")) => (number(start)?, usize::MAX),
                Some((start, end)) => (number(start)?, number(end)?),
            };
            if range.0 > range.1 {
                return Err(usage(format!("invalid decreasing range {}", quote(item))));
            }
            ranges.push(range);
        }
        Ok(List(ranges))
    }

    fn has(&self, n: usize) -> bool {
        self.0.iter().any(|&(a, b)| a <= n && n <= b)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test, run_for_test_bytes};

    fn cut(args: &[&str], stdin: &str) -> String {
        crate::tools::run_ok("cut", args, stdin.as_bytes())
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nno fields here\nbin:x:1\n";

    #[test]
    fn fields_in_input_order_once() {
        assert_eq!(
            cut(&["-d:", "-f1,7"], PASSWD),
            "root:/bin/sh\nno fields here\nbin\n"
        );
        assert_eq!(
            cut(&["-d", ":", "-f", "3-,1"], PASSWD),
            "root:0:0:root:/root:/bin/sh\nno fields here\nbin:1\n"
        );
        assert_eq!(cut(&["-d:", "-f-2", "-s"], PASSWD), "root:x\nbin:x\n");
        assert_eq!(cut(&["-d:", "-f2-3,2"], "a:b:c:d"), "b:c\n");
        assert_eq!(cut(&["-f2"], "a\tb\tc\n"), "b\n");
        assert_eq!(
            cut(&["-d:", "-f1,3", "--output-delimiter= | "], "a:b:c\n"),
            "a | c\n"
        );
        assert_eq!(cut(&["-d:", "-f5"], "a:b\n"), "\n");
    }

    #[test]
    fn bytes_and_characters_count_bytes_like_gnu() {
        assert_eq!(cut(&["-c1-3"], "abcdef\nxy\n"), "abc\nxy\n");
        assert_eq!(cut(&["-b", "2,4-"], "abcdef\n"), "bdef\n");
        let (_, out, _) = run_for_test_bytes("cut", &["-c", "-2"], "h\u{e9}llo\n".as_bytes());
        assert_eq!(out, b"h\xc3\n");
    }

    #[test]
    fn files_in_order_and_missing_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "1:2\n").unwrap();
        let (a, missing) = (arg(dir.path(), "a"), arg(dir.path(), "missing"));
        let (code, out, err) = run_for_test("cut", &["-d:", "-f2", &a, &missing, "-"], b"3:4");
        assert_eq!((code, out.as_str()), (1, "2\n4\n"));
        assert_eq!(err, format!("cut: {missing}: No such file or directory\n"));
    }

    #[test]
    fn bad_lists_and_flag_combinations_are_usage_errors() {
        for (args, message) in [
            (&["-f0"][..], "fields and positions are numbered from 1"),
            (&["-f3-1"], "invalid decreasing range '3-1'"),
            (&["-f", "-"], "invalid range with no endpoint: -"),
            (&["-f", "x"], "invalid field 'x'"),
            (
                &["-d:"],
                "you must specify a list of bytes, characters, or fields",
            ),
            (&["-f1", "-c1"], "only one list may be specified"),
            (&["-c1", "-d:"], "-d, -s and --output-delimiter only apply"),
            (
                &["-f1", "-d", "::"],
                "the delimiter must be a single byte, got '::'",
            ),
        ] {
            let (code, _, err) = run_for_test("cut", args, b"");
            assert_eq!(code, 2, "{args:?}");
            assert!(err.starts_with(&format!("cut: {message}")), "{err}");
        }
    }
}
