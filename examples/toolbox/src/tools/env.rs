//! `env`: prints the environment, one `NAME=VALUE` a line, in the order
//! the program got it, after applying `-i`, `-u NAME` and `NAME=VALUE`
//! operands. Running a command with that environment, what `env` is
//! mostly for elsewhere, is impossible: a WASI program cannot start
//! another program. That is refused with the alternative (ENV, or
//! `kiln run -e`).

use crate::cli::{Io, Result, quote, usage, write_error};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "env",
    usage: "[OPTION]... [NAME=VALUE]...",
    about: "Print the environment, changed by the options and NAME=VALUE operands. \
            It cannot run a command: WASI has no way to start another program.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "i",
        "i",
        "ignore-environment",
        "start from an empty environment",
    ),
    Flag::new("u", "u", "unset", "remove NAME").takes("NAME"),
    Flag::new("0", "0", "null", "end each line with NUL, not newline"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    print_env(args, vars, io)
}

fn print_env(args: &[String], mut vars: Vec<(String, String)>, io: &mut Io<'_>) -> Result {
    let parsed = opts::parse_until_operand(FLAGS, args)?;
    if parsed.has("i") {
        vars.clear();
    }
    for name in parsed.values("u") {
        if name.is_empty() || name.contains('=') {
            return Err(usage(format!(
                "cannot unset {}: Invalid argument",
                quote(name)
            )));
        }
        vars.retain(|(k, _)| k != name);
    }
    for operand in &parsed.operands {
        let Some((name, value)) = operand.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(usage(format!(
                "cannot run {}: a WASI program cannot start another program; \
                 set variables with ENV (or `kiln run -e NAME=VALUE`) and run the \
                 command itself",
                quote(operand)
            )));
        };
        match vars.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => vars.push((name.to_string(), value.to_string())),
        }
    }
    let end = if parsed.has("0") { '\0' } else { '\n' };
    for (k, v) in &vars {
        write!(io.stdout, "{k}={v}{end}").map_err(write_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::Io;

    fn env(args: &[&str], vars: &[(&str, &str)]) -> (Result<String, String>, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (mut input, mut out, mut err) = (&b""[..], Vec::new(), Vec::new());
        let mut io = Io::new("env", &mut input, &mut out, &mut err);
        let result = super::print_env(&args, vars, &mut io).map_err(|e| e.to_string());
        (
            result.map(|()| String::from_utf8(out).unwrap()),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn prints_in_order_with_changes_applied() {
        let vars = [("PATH", "/bin"), ("A", "1"), ("B", "2")];
        assert_eq!(env(&[], &vars).0.unwrap(), "PATH=/bin\nA=1\nB=2\n");
        assert_eq!(
            env(&["-u", "A", "B=3", "C=x=y"], &vars).0.unwrap(),
            "PATH=/bin\nB=3\nC=x=y\n"
        );
        assert_eq!(env(&["-i", "Z=1"], &vars).0.unwrap(), "Z=1\n");
        assert_eq!(env(&["-0"], &[("A", "1")]).0.unwrap(), "A=1\0");
    }

    #[test]
    fn running_a_command_is_refused_with_the_reason() {
        let (result, _) = env(&["A=1", "ls", "-l"], &[]);
        let e = result.unwrap_err();
        assert!(
            e.starts_with("cannot run 'ls': a WASI program cannot start another program"),
            "{e}"
        );
        let code = crate::tools::run_for_test("env", &["ls"], b"").0;
        assert_eq!(code, 2);
    }

    #[test]
    fn the_real_environment_is_printed() {
        let (code, out, _) = crate::tools::run_for_test("env", &[], b"");
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), std::env::vars_os().count());
    }
}
