//! The entry point of a step: [`run`] sets the program up the way kiln
//! means it to run (the RUN step's `WORKDIR` as the working directory),
//! hands `main` a [`Step`], and turns its result into an exit code.
//!
//! This is the one place the crate writes to the terminal: the report of a
//! failed step on stderr. Read next: `error.rs` for what is reported.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::args::Args;
use crate::error::{Context, Error, Result};

/// What a running step knows about itself: its arguments, environment,
/// working directory and program name. Made by [`run`].
///
/// ```
/// use kiln_guest::{Args, Step};
///
/// // In tests, build one by hand.
/// let mut step = Step::new("my-step", Args::from_vec(vec!["--dry-run".into()]));
/// assert!(step.args.flag("--dry-run"));
/// assert_eq!(step.program(), "my-step");
/// ```
#[derive(Debug)]
pub struct Step {
    /// The command line after the program name; see [`Args`].
    pub args: Args,
    program: String,
    workdir: PathBuf,
}

impl Step {
    /// A step with these arguments, in the current working directory: for
    /// testing code that takes a [`Step`]. [`run`] makes the real one.
    pub fn new(program: impl Into<String>, args: Args) -> Step {
        Step {
            args,
            program: program.into(),
            workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// The environment variable `name`, or `None` when it is unset (or not
    /// UTF-8).
    ///
    /// A step's environment is the image's `ENV` plus the `ARG`s in scope at
    /// the RUN instruction, so build arguments arrive here: with
    /// `ARG VERSION` in the stage and `kiln build --build-arg VERSION=1.2`,
    /// `step.env("VERSION")` is `Some("1.2")`. Never the host's environment.
    /// A secret mounted with `env=NAME` is here too: read it with
    /// [`secret`](crate::secret)`(id).env(NAME)` instead, which keeps it in
    /// a [`Secret`](crate::Secret).
    ///
    /// ```
    /// # use kiln_guest::{Args, Step};
    /// let step = Step::new("t", Args::from_vec(vec![]));
    /// assert_eq!(step.env("KILN_GUEST_DOC_UNSET"), None);
    /// ```
    pub fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    /// The environment variable `name`, or an error saying how to set it in
    /// the Kilnfile.
    ///
    /// ```
    /// # use kiln_guest::{Args, Step};
    /// let step = Step::new("t", Args::from_vec(vec![]));
    /// let err = step.require_env("KILN_GUEST_DOC_UNSET").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "environment variable KILN_GUEST_DOC_UNSET is not set: declare it with ARG or ENV in the Kilnfile stage before this RUN"
    /// );
    /// ```
    pub fn require_env(&self, name: &str) -> Result<String> {
        self.env(name).with_context(|| {
            format!(
                "environment variable {name} is not set: declare it with ARG or ENV in the Kilnfile stage before this RUN"
            )
        })
    }

    /// The working directory: the RUN step's `WORKDIR` inside kiln (`/`
    /// when the Kilnfile sets none). Relative paths start here.
    pub fn workdir(&self) -> PathBuf {
        self.workdir.clone()
    }

    /// The program name as the command line gave it (`argv[0]`), e.g.
    /// `my-step` for `RUN my-step --flag`.
    pub fn program(&self) -> &str {
        &self.program
    }
}

/// Runs a step: the function to call from `main`.
///
/// 1. Changes to the directory in `PWD` when it is set. wasi-libc starts
///    every program in `/`; kiln passes the RUN step's `WORKDIR` as `PWD`
///    (and to `wasm32-wasip2` programs as their initial directory, which
///    Rust's standard library ignores), so this makes relative paths start
///    at `WORKDIR` as they would in Docker.
/// 2. Reads the arguments into a [`Step`].
/// 3. Calls `main`. On `Err`, prints `error: <message>` and one
///    `  caused by: <cause>` line per cause to stderr, and returns the
///    error's [`code`](Error::code) (1 by default, 2 for argument errors).
///
/// A secret can only reach that report if `main` formats exposed bytes into
/// an error message: a [`Secret`](crate::Secret) cannot be displayed.
///
/// ```no_run
/// use std::process::ExitCode;
///
/// fn main() -> ExitCode {
///     kiln_guest::run(|mut step| {
///         let name = step.args.required("--name")?;
///         step.args.done()?;
///         kiln_guest::fs::write_atomic("hello.txt", format!("hello {name}\n").as_bytes())
///     })
/// }
/// ```
pub fn run(main: impl FnOnce(Step) -> Result<()>) -> ExitCode {
    let step = enter_workdir(std::env::var_os("PWD")).and_then(|workdir| {
        Ok(Step {
            args: Args::from_env()?,
            program: program_name(),
            workdir,
        })
    });
    ExitCode::from(finish(step.and_then(main), &mut std::io::stderr()))
}

/// `argv[0]`, or `""` when there is none.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Changes to `pwd` when given, and returns the working directory.
fn enter_workdir(pwd: Option<OsString>) -> Result<PathBuf> {
    match pwd {
        Some(pwd) if !pwd.is_empty() => {
            let dir = PathBuf::from(pwd);
            std::env::set_current_dir(&dir).with_context(|| {
                format!(
                    "cannot enter the working directory {} (from $PWD)",
                    dir.display()
                )
            })?;
            Ok(dir)
        }
        _ => Ok(std::env::current_dir().unwrap_or_else(|_| Path::new("/").to_path_buf())),
    }
}

/// The exit status for `result`, reporting an error to `stderr`.
fn finish(result: Result<()>, stderr: &mut dyn Write) -> u8 {
    match result {
        Ok(()) => 0,
        Err(err) => {
            // Nowhere left to report a failure to write the report.
            let _ = err.write_report(stderr);
            let _ = stderr.flush();
            exit_status(&err)
        }
    }
}

/// The one-byte exit status of `err`: its code, which
/// [`Error::with_code`] keeps in `1..=255`.
fn exit_status(err: &Error) -> u8 {
    u8::try_from(err.code()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Context;

    fn finished(result: Result<()>) -> (u8, String) {
        let mut out = Vec::new();
        let code = finish(result, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn ok_exits_zero_silently() {
        assert_eq!(finished(Ok(())), (0, String::new()));
    }

    #[test]
    fn error_exits_with_its_code_and_reports_causes() {
        let err = Err::<(), _>(Error::new("connection refused"))
            .context("fetching the index")
            .unwrap_err();
        assert_eq!(
            finished(Err(err)),
            (
                1,
                "error: fetching the index\n  caused by: connection refused\n".to_string()
            )
        );
        let (code, _) = finished(Err(Error::new("x").with_code(42)));
        assert_eq!(code, 42);
    }

    #[test]
    fn usage_errors_exit_two() {
        let mut args = Args::from_vec(vec!["--bogus".into()]);
        let _ = args.flag("--verbose");
        let (code, out) = finished(args.finish());
        assert_eq!(code, 2);
        assert_eq!(out, "error: unknown argument \"--bogus\"\n");
    }

    #[test]
    fn a_missing_workdir_is_an_error_naming_it() {
        let err = enter_workdir(Some("/nonexistent/kiln-guest-test".into())).unwrap_err();
        assert_eq!(
            err.message(),
            "cannot enter the working directory /nonexistent/kiln-guest-test (from $PWD)"
        );
        assert_eq!(finished(Err(err)).0, 1);
    }

    #[test]
    fn without_pwd_the_workdir_is_the_current_directory() {
        // The test process's cwd must not change under other tests: only
        // the paths that do not call `set_current_dir` are exercised here.
        let here = std::env::current_dir().unwrap();
        assert_eq!(enter_workdir(None).unwrap(), here);
        assert_eq!(enter_workdir(Some(OsString::new())).unwrap(), here);
    }

    #[test]
    fn pwd_becomes_the_workdir() {
        // Entering the directory the tests already run in changes nothing
        // for the other tests of this process.
        let here = std::env::current_dir().unwrap();
        assert_eq!(enter_workdir(Some(here.clone().into())).unwrap(), here);
        assert_eq!(std::env::current_dir().unwrap(), here);
    }

    #[test]
    fn main_gets_the_step_and_its_error_becomes_the_code() {
        let step = Step::new("prog", Args::from_vec(vec!["--name".into(), "x".into()]));
        let result = Ok(step).and_then(|mut step: Step| {
            assert_eq!(step.program(), "prog");
            let name = step.args.required("--name")?;
            step.args.done()?;
            Err(Error::new(format!("no greeting for {name}")).with_code(3))
        });
        assert_eq!(
            finished(result),
            (3, "error: no greeting for x\n".to_string())
        );
    }
}
