//! `dirname`: each NAME without its last part, like GNU dirname: `a/b/`
//! gives `a`, `a` gives `.`, `/a` and `/` give `/`.

use crate::cli::{Io, Result, usage};
use crate::opts;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "dirname",
    usage: "NAME...",
    about: "Print each NAME without its last part (. if it has no directory).",
    flags: &[],
    run,
};

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(TOOL.flags, args)?;
    if parsed.operands.is_empty() {
        return Err(usage("missing operand"));
    }
    for name in &parsed.operands {
        io.line(dirname(name))?;
    }
    Ok(())
}

fn dirname(name: &str) -> &str {
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() {
        return if name.is_empty() { "." } else { "/" };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(i) => {
            let dir = trimmed[..i].trim_end_matches('/');
            if dir.is_empty() { "/" } else { dir }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    #[test]
    fn parents_like_gnu() {
        let (code, out, err) = run_for_test(
            "dirname",
            &[
                "/usr/lib/x.so",
                "a/b//",
                "a//b",
                "a",
                "/a",
                "//a",
                "/",
                "//",
                "",
            ],
            b"",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, "/usr/lib\na\na\n.\n/\n/\n/\n/\n.\n");
    }

    #[test]
    fn needs_a_name() {
        let (code, _, err) = run_for_test("dirname", &[], b"");
        assert_eq!(code, 2);
        assert_eq!(err, "dirname: missing operand\nusage: dirname NAME...\n");
    }
}
