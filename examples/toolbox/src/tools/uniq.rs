//! `uniq`: one line of each run of equal adjacent lines, like GNU uniq:
//! `-c` counts (`%7d `), `-d` only repeated lines, `-u` only unique ones,
//! `-i` ignores ASCII case. Reads one INPUT (- or none: stdin); the
//! OUTPUT operand, `-f` and `-s` are not supported (write `> OUTPUT`).

use crate::cli::{Io, Result, usage};
use crate::opts::{self, Flag};
use crate::text::{self, chomp, next_line};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "uniq",
    usage: "[OPTION]... [INPUT]",
    about: "Print INPUT (- or none: stdin) without repeated adjacent lines.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "c",
        "c",
        "count",
        "prefix each line with its number of repeats",
    ),
    Flag::new("d", "d", "repeated", "only print lines that are repeated"),
    Flag::new("u", "u", "unique", "only print lines that are not repeated"),
    Flag::new(
        "i",
        "i",
        "ignore-case",
        "compare ASCII letters without case",
    ),
];

struct Show {
    count: bool,
    repeated: bool,
    unique: bool,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    if parsed.operands.len() > 1 {
        return Err(usage(
            "only one INPUT is read; write the output with > OUTPUT",
        ));
    }
    let show = Show {
        count: parsed.has("c"),
        repeated: parsed.has("d"),
        unique: parsed.has("u"),
    };
    let ignore_case = parsed.has("i");
    let same = |a: &[u8], b: &[u8]| {
        let (a, b) = (chomp(a), chomp(b));
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    text::each_input(io, &parsed.operands, |name, input, io| {
        let (mut kept, mut line) = (Vec::new(), Vec::new());
        let mut repeats = 0u64;
        while next_line(input, &mut line, name)? {
            if repeats > 0 && same(&kept, &line) {
                repeats += 1;
                continue;
            }
            if repeats > 0 {
                show.print(io, &kept, repeats)?;
            }
            std::mem::swap(&mut kept, &mut line);
            repeats = 1;
        }
        if repeats > 0 {
            show.print(io, &kept, repeats)?;
        }
        Ok(())
    })
}

impl Show {
    fn print(&self, io: &mut Io<'_>, line: &[u8], repeats: u64) -> Result {
        if (self.repeated && repeats == 1) || (self.unique && repeats > 1) {
            return Ok(());
        }
        if self.count {
            io.out(format!("{repeats:>7} ").as_bytes())?;
        }
        io.out(chomp(line))?;
        io.out(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    const INPUT: &str = "a\na\nb\nc\nc\nc\na\nA";

    fn uniq(args: &[&str]) -> String {
        crate::tools::run_ok("uniq", args, INPUT.as_bytes())
    }

    #[test]
    fn adjacent_repeats_collapse() {
        assert_eq!(uniq(&[]), "a\nb\nc\na\nA\n");
        assert_eq!(uniq(&["-"]), "a\nb\nc\na\nA\n");
        assert_eq!(uniq(&["-i"]), "a\nb\nc\na\n");
    }

    #[test]
    fn counts_and_filters_like_gnu() {
        // printf 'a\na\nb\nc\nc\nc\na\nA' | uniq -c
        assert_eq!(
            uniq(&["-c"]),
            "      2 a\n      1 b\n      3 c\n      1 a\n      1 A\n"
        );
        assert_eq!(uniq(&["-d"]), "a\nc\n");
        assert_eq!(uniq(&["-u"]), "b\na\nA\n");
        assert_eq!(uniq(&["-dc"]), "      2 a\n      3 c\n");
        assert_eq!(uniq(&["-du"]), "");
        assert_eq!(
            uniq(&["-ci"]),
            "      2 a\n      1 b\n      3 c\n      2 a\n"
        );
    }

    #[test]
    fn a_last_line_without_newline_equals_one_with() {
        let (_, out, _) = run_for_test("uniq", &[], b"x\nx");
        assert_eq!(out, "x\n");
        let (_, out, _) = run_for_test("uniq", &[], b"");
        assert_eq!(out, "");
    }

    #[test]
    fn errors() {
        let (code, _, err) = run_for_test("uniq", &["a", "b"], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("uniq: only one INPUT is read"), "{err}");
        let (code, out, err) = run_for_test("uniq", &["/nonexistent/x"], b"");
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, "uniq: /nonexistent/x: No such file or directory\n");
        let (code, _, _) = run_for_test("uniq", &["-f", "1"], b"");
        assert_eq!(code, 2);
    }
}
