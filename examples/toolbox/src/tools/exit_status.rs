//! `true` and `false`: do nothing and exit 0 or 1, whatever the arguments
//! (as POSIX asks; `--help` still prints the help).

use crate::cli::{Io, Result};
use crate::tools::Tool;

pub(crate) const TRUE: Tool = Tool {
    name: "true",
    usage: "[IGNORED]...",
    about: "Do nothing, successfully (exit 0).",
    flags: &[],
    run: |_, _| Ok(()),
};

pub(crate) const FALSE: Tool = Tool {
    name: "false",
    usage: "[IGNORED]...",
    about: "Do nothing, unsuccessfully (exit 1).",
    flags: &[],
    run: run_false,
};

fn run_false(_args: &[String], io: &mut Io<'_>) -> Result {
    // Exit 1 without a message: failing is what it was asked to do.
    io.set_failed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    #[test]
    fn true_succeeds_and_false_fails_silently_whatever_the_arguments() {
        assert_eq!(
            run_for_test("true", &["-x", "y"], b""),
            (0, String::new(), String::new())
        );
        assert_eq!(
            run_for_test("false", &["-x"], b""),
            (1, String::new(), String::new())
        );
    }
}
