//! `sort`: sorts the lines of all inputs together, as GNU sort does in the
//! C locale: by bytes; `-n` by a leading number (`-12.5`; none is 0); `-r`
//! reversed; `-u` one line of each run of equal keys; `-k N[,M]` by fields
//! N to M (default: to the end of the line), more than one `-k` tried in
//! order, each maybe with its own `n`/`r` (`-k2,2n`); `-t SEP` splits
//! fields at SEP, else a field is its leading blanks and what follows up to
//! the next blank. Lines equal by their keys are compared whole, by bytes,
//! as a last resort (not with `-u` or `-s`). `-o FILE` writes FILE after
//! everything is read, so `sort -o f f` works. Not supported: `-b`, `-f`,
//! `-g`, `-h`, `-M`, `-V`, `-c`, character positions in keys (`-k 2.3`).

use std::cmp::Ordering;

use crate::cli::{Io, OrFail, Result, quote, usage};
use crate::opts::{self, Flag};
use crate::text;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "sort",
    usage: "[OPTION]... [FILE]...",
    about: "Print the lines of all FILEs (- or none: stdin), sorted by bytes.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("r", "r", "reverse", "reverse the order"),
    Flag::new(
        "n",
        "n",
        "numeric-sort",
        "compare leading numbers (-1.5, 10); no number is 0",
    ),
    Flag::new(
        "u",
        "u",
        "unique",
        "print one line of each run of equal keys",
    ),
    Flag::new(
        "s",
        "s",
        "stable",
        "no last-resort comparison of whole lines",
    ),
    Flag::new(
        "k",
        "k",
        "key",
        "sort by fields N to M (default: to the end of the line), options n, r",
    )
    .takes("N[,M][nr]"),
    Flag::new("t", "t", "field-separator", "fields are separated by SEP").takes("SEP"),
    Flag::new(
        "o",
        "o",
        "output",
        "write to FILE, after reading everything",
    )
    .takes("FILE"),
];

/// One `-k`: fields `start` to `end` (1-based, inclusive; `None`: to the
/// end of the line).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    start: usize,
    end: Option<usize>,
    numeric: bool,
    reverse: bool,
}

struct Order {
    keys: Vec<Key>,
    separator: Option<u8>,
    last_resort: bool,
    reverse: bool,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let (numeric, reverse) = (parsed.has("n"), parsed.has("r"));
    let mut keys = parsed
        .values("k")
        .map(|k| key(k, numeric, reverse))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        keys.push(Key {
            start: 1,
            end: None,
            numeric,
            reverse,
        });
    }
    let separator = match parsed.value("t") {
        None => None,
        Some(sep) if sep.len() == 1 => Some(sep.as_bytes()[0]),
        Some(sep) => {
            return Err(usage(format!(
                "the field separator must be one byte, got {}",
                quote(sep)
            )));
        }
    };
    let unique = parsed.has("u");
    let order = Order {
        keys,
        separator,
        last_resort: !unique && !parsed.has("s"),
        reverse,
    };
    let mut all = Vec::new();
    text::each_input(io, &parsed.operands, |name, input, _| {
        let data = text::read_all(input, name)?;
        all.extend_from_slice(&data);
        if !all.is_empty() && !all.ends_with(b"\n") {
            all.push(b'\n');
        }
        Ok(())
    })?;
    let mut lines: Vec<&[u8]> = text::lines(&all).map(text::chomp).collect();
    lines.sort_by(|a, b| order.compare(a, b));
    if unique {
        lines.dedup_by(|later, kept| order.compare_keys(kept, later) == Ordering::Equal);
    }
    let mut out = Vec::with_capacity(all.len());
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    match parsed.value("o") {
        Some(file) => {
            std::fs::write(file, &out).or_fail(|| format!("cannot write {}", quote(file)))
        }
        None => io.out(&out),
    }
}

/// Parses `N[,M][nr]`; a key with neither `n` nor `r` takes the global ones.
fn key(spec: &str, numeric: bool, reverse: bool) -> Result<Key> {
    let bad = || {
        usage(format!(
            "invalid key {}: expected N[,M][nr], N from 1",
            quote(spec)
        ))
    };
    let body = spec.trim_end_matches(['n', 'r']);
    let letters = &spec[body.len()..];
    let (start, end) = match body.split_once(',') {
        Some((s, e)) => (s, Some(e)),
        None => (body, None),
    };
    let field = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0);
    let start = field(start).ok_or_else(bad)?;
    let end = match end {
        Some(e) => Some(field(e).ok_or_else(bad)?),
        None => None,
    };
    let own = !letters.is_empty();
    Ok(Key {
        start,
        end,
        numeric: if own { letters.contains('n') } else { numeric },
        reverse: if own { letters.contains('r') } else { reverse },
    })
}

impl Order {
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        let by_keys = self.compare_keys(a, b);
        if by_keys != Ordering::Equal || !self.last_resort {
            return by_keys;
        }
        let whole = a.cmp(b);
        if self.reverse { whole.reverse() } else { whole }
    }

    fn compare_keys(&self, a: &[u8], b: &[u8]) -> Ordering {
        for key in &self.keys {
            let (ka, kb) = (self.field(a, key), self.field(b, key));
            let o = if key.numeric {
                compare_numbers(ka, kb)
            } else {
                ka.cmp(kb)
            };
            let o = if key.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// The bytes of `line` that `key` covers.
    fn field<'l>(&self, line: &'l [u8], key: &Key) -> &'l [u8] {
        let starts = field_starts(line, self.separator);
        let at = |n: usize| starts.get(n - 1).copied();
        let Some(start) = at(key.start) else {
            return &[];
        };
        let end = match key.end.and_then(|e| at(e + 1)) {
            // The next field starts after the separator, which is not part of the key.
            Some(next) if self.separator.is_some() => next - 1,
            Some(next) => next,
            None => line.len(),
        };
        &line[start..end.max(start)]
    }
}

/// Where each field of `line` starts: after each SEP, or (without one) at
/// each run of blanks that follows a non-blank.
fn field_starts(line: &[u8], separator: Option<u8>) -> Vec<usize> {
    let mut starts = vec![0];
    match separator {
        Some(sep) => starts.extend(
            line.iter()
                .enumerate()
                .filter(|(_, b)| **b == sep)
                .map(|(i, _)| i + 1),
        ),
        None => {
            let blank = |b: u8| b == b' ' || b == b'\t';
            for i in 1..line.len() {
                if blank(line[i]) && !blank(line[i - 1]) {
                    starts.push(i);
                }
            }
        }
    }
    starts
}

/// Compares the numbers the fields start with (after blanks): an optional
/// `-`, digits, maybe a `.` and more digits; no number is 0.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let (na, nb) = (Number::parse(a), Number::parse(b));
    match (na.negative, nb.negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => na.magnitude_cmp(&nb),
        (true, true) => nb.magnitude_cmp(&na),
    }
}

struct Number<'a> {
    negative: bool,
    /// The integer digits without leading zeros.
    int: &'a [u8],
    /// The fraction digits without trailing zeros.
    frac: &'a [u8],
}

impl<'a> Number<'a> {
    fn parse(s: &'a [u8]) -> Number<'a> {
        let s = &s[s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count()..];
        let (negative, s) = match s.strip_prefix(b"-") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let digits = |s: &'a [u8]| &s[..s.iter().take_while(|b| b.is_ascii_digit()).count()];
        let int = digits(s);
        let frac = match s[int.len()..].strip_prefix(b".") {
            Some(rest) => digits(rest),
            None => &[],
        };
        let int = &int[int.iter().take_while(|&&b| b == b'0').count()..];
        let frac = &frac[..frac.len() - frac.iter().rev().take_while(|&&b| b == b'0').count()];
        Number {
            // -0 is 0.
            negative: negative && !(int.is_empty() && frac.is_empty()),
            int,
            frac,
        }
    }

    fn magnitude_cmp(&self, other: &Number<'_>) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    fn sort(args: &[&str], stdin: &str) -> String {
        crate::tools::run_ok("sort", args, stdin.as_bytes())
    }

    #[test]
    fn bytes_order_reverse_and_unique() {
        assert_eq!(sort(&[], "b\nB\na\n_\n10\n9"), "10\n9\nB\n_\na\nb\n");
        assert_eq!(sort(&["-r"], "b\na\nc\n"), "c\nb\na\n");
        assert_eq!(sort(&["-u"], "b\na\nb\na\n"), "a\nb\n");
        assert_eq!(sort(&[], ""), "");
        assert_eq!(sort(&[], "\n\n"), "\n\n");
    }

    #[test]
    fn numbers_like_gnu() {
        // printf '10\n9\n-1\nx\n1.5\n 2\n-0\n0\n' | sort -n
        assert_eq!(
            sort(&["-n"], "10\n9\n-1\nx\n1.5\n 2\n-0\n0\n"),
            "-1\n-0\n0\nx\n1.5\n 2\n9\n10\n"
        );
        assert_eq!(sort(&["-rn"], "1 a\n2\n1 b\n"), "2\n1 b\n1 a\n");
        assert_eq!(sort(&["-nu"], "1 a\n01\n1 b\n2\n"), "1 a\n2\n");
        assert_eq!(sort(&["-n", "-s"], "1 b\n1 a\n"), "1 b\n1 a\n");
    }

    #[test]
    fn keys_and_separators() {
        let passwd = "root:x:0:0\nbin:x:2:2\ndaemon:x:1:1\nnobody:x:65534:65534\n";
        assert_eq!(
            sort(&["-t:", "-k3", "-n"], passwd),
            "root:x:0:0\ndaemon:x:1:1\nbin:x:2:2\nnobody:x:65534:65534\n"
        );
        assert_eq!(
            sort(&["-t", ":", "-k", "3,3nr"], passwd),
            "nobody:x:65534:65534\nbin:x:2:2\ndaemon:x:1:1\nroot:x:0:0\n"
        );
        // Without -t a field keeps its leading blanks: " b" < "  a"? No: ' ' = ' ', 'b' > ' '.
        assert_eq!(sort(&["-k2"], "x  a\ny b\nz c\n"), "x  a\ny b\nz c\n");
        assert_eq!(
            sort(&["-k", "2,2", "-k1r"], "b 1\na 1\nc 0\n"),
            "c 0\nb 1\na 1\n"
        );
        assert_eq!(sort(&["-k3"], "b\na\n"), "a\nb\n");
    }

    #[test]
    fn files_are_sorted_together_and_o_may_overwrite_its_input() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "c\na").unwrap();
        fs::write(dir.path().join("b"), "b\n").unwrap();
        let (a, b) = (arg(dir.path(), "a"), arg(dir.path(), "b"));
        assert_eq!(sort(&[&a, &b, "-"], "d\n"), "a\nb\nc\nd\n");
        assert_eq!(sort(&["-o", &a, &a], ""), "");
        assert_eq!(fs::read_to_string(&a).unwrap(), "a\nc\n");
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = arg(dir.path(), "missing");
        let (code, out, err) = run_for_test("sort", &[&missing, "-"], b"b\na\n");
        assert_eq!((code, out.as_str()), (1, "a\nb\n"));
        assert_eq!(err, format!("sort: {missing}: No such file or directory\n"));
        for bad in ["0", "x", "1,", "2.3"] {
            let (code, _, err) = run_for_test("sort", &["-k", bad], b"");
            assert_eq!(code, 2, "{bad}");
            assert!(err.starts_with("sort: invalid key"), "{err}");
        }
        let (code, _, err) = run_for_test("sort", &["-t", "ab"], b"");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("sort: the field separator must be one byte"),
            "{err}"
        );
        let (code, _, _) = run_for_test("sort", &["-V"], b"");
        assert_eq!(code, 2);
    }
}
