//! The tools, one file each, and the registry that names them. A tool is a
//! function from arguments (without argv[0]) and [`Io`] to a [`Result`];
//! its flags are listed in its [`Tool`] so `--help` and error messages
//! come from the same place as the parsing.

use crate::cli::{Io, Result};
use crate::opts::Flag;

mod basename;
mod cat;
mod cp;
mod cut;
mod dirname;
mod echo;
mod env;
mod exit_status;
mod grep;
mod head;
mod ln;
mod ls;
mod mkdir;
mod mv;
mod rm;
mod seq;
mod sha256sum;
mod sleep;
mod sort;
mod tail;
mod tar;
mod touch;
mod tr;
mod uniq;
mod wc;
mod yes;

/// One tool of the toolbox.
pub(crate) struct Tool {
    /// What argv[0] (or `toolbox NAME`) says.
    pub(crate) name: &'static str,
    /// The synopsis after the name: `[OPTION]... [FILE]...`.
    pub(crate) usage: &'static str,
    /// One sentence on what it does, and what it deliberately does not.
    pub(crate) about: &'static str,
    /// Its flags.
    pub(crate) flags: &'static [Flag],
    /// Runs it.
    pub(crate) run: fn(&[String], &mut Io<'_>) -> Result,
}

/// Every tool, in the order `toolbox --list` prints them.
pub(crate) const TOOLS: &[Tool] = &[
    basename::TOOL,
    cat::TOOL,
    cp::TOOL,
    cut::TOOL,
    dirname::TOOL,
    echo::TOOL,
    env::TOOL,
    exit_status::FALSE,
    grep::TOOL,
    head::TOOL,
    ln::TOOL,
    ls::TOOL,
    mkdir::TOOL,
    mv::TOOL,
    rm::TOOL,
    seq::TOOL,
    sha256sum::TOOL,
    sleep::TOOL,
    sort::TOOL,
    tail::TOOL,
    tar::TOOL,
    touch::TOOL,
    tr::TOOL,
    exit_status::TRUE,
    uniq::TOOL,
    wc::TOOL,
    yes::TOOL,
];

/// The tool called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Runs a tool the way `multicall` does, with `stdin` as input; returns the
/// exit code, stdout and stderr.
#[cfg(test)]
pub(crate) fn run_for_test(name: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let (code, out, err) = run_for_test_bytes(name, args, stdin);
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// [`run_for_test`] for a run that must succeed silently: its stdout.
#[cfg(test)]
pub(crate) fn run_ok(name: &str, args: &[&str], stdin: &[u8]) -> String {
    let (code, out, err) = run_for_test(name, args, stdin);
    assert_eq!((code, err.as_str()), (0, ""), "{name} {args:?}");
    out
}

/// [`run_for_test`] with stdout as bytes (an archive).
#[cfg(test)]
pub(crate) fn run_for_test_bytes(
    name: &str,
    args: &[&str],
    stdin: &[u8],
) -> (i32, Vec<u8>, String) {
    let tool = find(name).expect("a tool of the toolbox");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut input, mut out, mut err) = (stdin, Vec::new(), Vec::new());
    let code = crate::multicall::run_tool(tool, &args, &mut input, &mut out, &mut err);
    (code, out, String::from_utf8_lossy(&err).into_owned())
}

/// A path inside a test's temp directory, as a `String` argument.
#[cfg(test)]
pub(crate) fn arg(dir: &std::path::Path, rel: &str) -> String {
    dir.join(rel).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sorted_and_there_is_no_shell() {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(find("sh").is_none());
    }
}
