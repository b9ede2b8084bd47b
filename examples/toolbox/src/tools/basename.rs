//! `basename`: the last part of each NAME, without trailing slashes, and
//! without SUFFIX if it ends with it (and is not only the SUFFIX), like
//! GNU basename: one NAME and maybe a SUFFIX, or with `-a`/`-s` any number
//! of NAMEs.

use crate::cli::{Io, Result, quote, usage};
use crate::fsx;
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "basename",
    usage: "NAME [SUFFIX] | -a [-s SUFFIX] NAME...",
    about: "Print NAME without its directories (and SUFFIX).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("a", "a", "multiple", "every operand is a NAME"),
    Flag::new("s", "s", "suffix", "remove SUFFIX; implies -a").takes("SUFFIX"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let names = &parsed.operands;
    let (names, suffix) = if parsed.has("a") || parsed.has("s") {
        (&names[..], parsed.value("s"))
    } else {
        match &names[..] {
            [_] => (&names[..1], None),
            [_, suffix] => (&names[..1], Some(suffix.as_str())),
            [_, _, extra, ..] => {
                return Err(usage(format!("extra operand {}", quote(extra))));
            }
            [] => return Err(usage("missing operand")),
        }
    };
    if names.is_empty() {
        return Err(usage("missing operand"));
    }
    for name in names {
        let base = fsx::last_name(name);
        let base = match suffix {
            Some(s) if base != s && base != "/" => base.strip_suffix(s).unwrap_or(base),
            _ => base,
        };
        io.line(base)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    fn basename(args: &[&str]) -> String {
        crate::tools::run_ok("basename", args, b"")
    }

    #[test]
    fn last_names_like_gnu() {
        assert_eq!(basename(&["/usr/lib/x.so"]), "x.so\n");
        assert_eq!(basename(&["a/b//"]), "b\n");
        assert_eq!(basename(&["//"]), "/\n");
        assert_eq!(basename(&["plain"]), "plain\n");
        assert_eq!(basename(&[""]), "\n");
    }

    #[test]
    fn suffixes_go_unless_they_are_all_there_is() {
        assert_eq!(basename(&["a/b.txt", ".txt"]), "b\n");
        assert_eq!(basename(&[".txt", ".txt"]), ".txt\n");
        assert_eq!(basename(&["a/b.txt", ".c"]), "b.txt\n");
        assert_eq!(basename(&["-s", ".c", "a.c", "b/c.c"]), "a\nc\n");
        assert_eq!(basename(&["-a", "x/y", "z/"]), "y\nz\n");
    }

    #[test]
    fn operand_counts_are_checked() {
        for (args, message) in [
            (&[][..], "missing operand"),
            (&["a", "b", "c"], "extra operand 'c'"),
            (&["-a"], "missing operand"),
        ] {
            let (code, _, err) = run_for_test("basename", args, b"");
            assert_eq!(code, 2, "{args:?}");
            assert!(err.starts_with(&format!("basename: {message}\n")), "{err}");
        }
    }
}
