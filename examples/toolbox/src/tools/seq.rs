//! `seq`: integers from FIRST (default 1) by INCR (default 1) to LAST, one
//! a line (or separated by `-s SEP`), `-w` padding them with zeros to one
//! width, like GNU seq. Negative numbers are numbers, not flags (`seq -3
//! -1`). Only integers: `seq 0 0.5 2` is refused.

use crate::cli::{Io, Result, quote, usage};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "seq",
    usage: "[-s SEP] [-w] [FIRST [INCR]] LAST",
    about: "Print the integers from FIRST to LAST, by INCR.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "s",
        "s",
        "separator",
        "separate the numbers with SEP (default: newline)",
    )
    .takes("SEP"),
    Flag::new(
        "w",
        "w",
        "equal-width",
        "pad with leading zeros to one width",
    ),
];

/// Output is written in chunks of about this size.
const CHUNK: usize = 16 << 10;

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    // Numbers first, so `-3` is not taken for a flag; a flag's value stays a value.
    let (mut flags, mut numbers) = (Vec::new(), Vec::new());
    let mut value_next = false;
    for arg in args {
        if !value_next && is_integer(arg) {
            numbers.push(arg.as_str());
        } else {
            value_next = !value_next && (arg == "-s" || arg == "--separator");
            flags.push(arg.clone());
        }
    }
    let parsed = opts::parse(FLAGS, &flags)?;
    if let Some(bad) = parsed.operands.first() {
        return Err(usage(format!(
            "invalid integer argument {} (only integers are supported)",
            quote(bad)
        )));
    }
    let parse = |s: &str| -> Result<i128> {
        s.parse()
            .map_err(|_| usage(format!("integer argument out of range: {}", quote(s))))
    };
    let (first, incr, last) = match numbers[..] {
        [last] => (1, 1, parse(last)?),
        [first, last] => (parse(first)?, 1, parse(last)?),
        [first, incr, last] => (parse(first)?, parse(incr)?, parse(last)?),
        [] => return Err(usage("missing operand")),
        [_, _, _, extra, ..] => return Err(usage(format!("extra operand {}", quote(extra)))),
    };
    if incr == 0 {
        return Err(usage(format!(
            "invalid Zero increment value: {}",
            quote(numbers[1])
        )));
    }
    let width = if parsed.has("w") {
        first.to_string().len().max(last.to_string().len())
    } else {
        0
    };
    let separator = parsed.value("s").unwrap_or("\n");
    let mut out = String::new();
    let mut n = first;
    let mut any = false;
    while (incr > 0 && n <= last) || (incr < 0 && n >= last) {
        if any {
            out.push_str(separator);
        }
        any = true;
        if n < 0 {
            out.push_str(&format!("-{:0>w$}", -n, w = width.saturating_sub(1)));
        } else {
            out.push_str(&format!("{n:0>width$}"));
        }
        if out.len() >= CHUNK {
            io.out(out.as_bytes())?;
            out.clear();
        }
        n += incr;
    }
    if any {
        out.push('\n');
    }
    io.out(out.as_bytes())
}

/// `12`, `-3`, `+4`.
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    fn seq(args: &[&str]) -> String {
        crate::tools::run_ok("seq", args, b"")
    }

    #[test]
    fn counts_up_down_and_by_steps() {
        assert_eq!(seq(&["3"]), "1\n2\n3\n");
        assert_eq!(seq(&["-1", "1"]), "-1\n0\n1\n");
        assert_eq!(seq(&["5", "-2", "1"]), "5\n3\n1\n");
        assert_eq!(seq(&["1", "3", "8"]), "1\n4\n7\n");
        assert_eq!(seq(&["3", "1"]), "");
        assert_eq!(seq(&["0"]), "");
        assert_eq!(seq(&["+2", "3"]), "2\n3\n");
    }

    #[test]
    fn separators_and_equal_widths_like_gnu() {
        assert_eq!(seq(&["-s", ",", "3"]), "1,2,3\n");
        assert_eq!(seq(&["-s,", "-2", "0"]), "-2,-1,0\n");
        assert_eq!(seq(&["-s", "-1", "2"]), "1-12\n");
        assert_eq!(seq(&["-w", "8", "10"]), "08\n09\n10\n");
        assert_eq!(seq(&["-w", "-1", "1"]), "-1\n00\n01\n");
    }

    #[test]
    fn long_runs_are_whole() {
        let out = seq(&["100000"]);
        assert_eq!(out.lines().count(), 100_000);
        assert!(out.ends_with("99999\n100000\n"));
    }

    #[test]
    fn bad_operands_are_usage_errors() {
        for (args, message) in [
            (&[][..], "missing operand"),
            (&["1", "2", "3", "4"], "extra operand '4'"),
            (&["1", "0", "3"], "invalid Zero increment value: '0'"),
            (
                &["0.5"],
                "invalid integer argument '0.5' (only integers are supported)",
            ),
            (&["x"], "invalid integer argument 'x'"),
            (&["-x", "3"], "unknown option -x"),
        ] {
            let (code, _, err) = run_for_test("seq", args, b"");
            assert_eq!(code, 2, "{args:?}");
            assert!(err.starts_with(&format!("seq: {message}")), "{err}");
        }
    }
}
