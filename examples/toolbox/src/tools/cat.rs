//! `cat`: copies files, and `-` (stdin), to stdout in order, streaming
//! each through a fixed buffer. A file that cannot be read is reported and
//! skipped (exit 1 at the end); a failed write to stdout stops it.

use crate::cli::{Io, Result};
use crate::opts::{self, Flag};
use crate::text;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "cat",
    usage: "[OPTION]... [FILE]...",
    about: "Copy each FILE (- or none: stdin) to stdout.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[Flag::new(
    "u",
    "u",
    "",
    "ignored: output is never held back",
)];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    text::each_input(io, &parsed.operands, |name, input, io| {
        text::copy(input, io, name)
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    #[test]
    fn concatenates_files_and_stdin_in_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "A\n").unwrap();
        fs::write(dir.path().join("b"), "B").unwrap();
        let (a, b) = (arg(dir.path(), "a"), arg(dir.path(), "b"));
        let (code, out, err) = run_for_test("cat", &[&a, "-", &b], b"in\n");
        assert_eq!((code, out.as_str(), err.as_str()), (0, "A\nin\nB", ""));
        let (code, out, _) = run_for_test("cat", &[], b"only stdin");
        assert_eq!((code, out.as_str()), (0, "only stdin"));
    }

    #[test]
    fn large_files_stream_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        fs::write(dir.path().join("big"), &big).unwrap();
        let (code, out, _) = run_for_test("cat", &[&arg(dir.path(), "big")], b"");
        assert_eq!(code, 0);
        assert_eq!(out.as_bytes(), &big[..]);
    }

    #[test]
    fn missing_files_and_directories_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "A").unwrap();
        let missing = arg(dir.path(), "missing");
        let d = arg(dir.path(), "");
        let (code, out, err) = run_for_test("cat", &[&missing, &arg(dir.path(), "a"), &d], b"");
        assert_eq!(code, 1);
        assert_eq!(out, "A");
        assert_eq!(
            err,
            format!("cat: {missing}: No such file or directory\ncat: {d}: Is a directory\n")
        );
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let (code, _, err) = run_for_test("cat", &["-n", "x"], b"");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("cat: unknown option -n; supported: -u\n"),
            "{err}"
        );
    }
}
