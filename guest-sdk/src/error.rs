//! Errors a step reports: [`Error`], the [`Result`] alias and [`Context`].
//!
//! An [`Error`] is what a step's `main` returns when it fails: a message, the
//! chain of causes that led to it (each rendered to text when the error is
//! made) and the exit code [`run`](crate::run) ends the program with. It is
//! deliberately text only: nothing in it can hold a [`Secret`](crate::Secret),
//! which has no `Display`, so an error can only show a secret's value if a
//! step formats the exposed bytes into a message itself.
//!
//! This module does not print: [`run`](crate::run) renders the error once, in
//! `step.rs`. Read next: `args.rs`, whose usage errors exit with code 2.

use std::fmt;

/// The result of a step's code: `Ok`, or an [`Error`] to report.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exit code of an error made with [`Error::new`] or converted from
/// another error.
pub const DEFAULT_EXIT_CODE: i32 = 1;

/// The exit code of a mistake in how the step was invoked (an unknown or
/// missing argument), as for most command-line tools.
pub const USAGE_EXIT_CODE: i32 = 2;

/// Why a step failed: a message, its causes (outermost first) and the exit
/// code to end with.
///
/// Any `std::error::Error` converts into it with `?`, its message and
/// `source()` chain kept as text; [`Context`] adds what the step was doing.
///
/// ```
/// use kiln_guest::{Context, Error, Result};
///
/// fn port(text: &str) -> Result<u16> {
///     text.parse::<u16>().with_context(|| format!("invalid port {text:?}"))
/// }
///
/// let err = port("http").unwrap_err();
/// assert_eq!(err.to_string(), "invalid port \"http\": invalid digit found in string");
/// assert_eq!(err.code(), 1);
///
/// let usage = Error::new("--port is missing").with_code(2);
/// assert_eq!(usage.code(), 2);
/// ```
pub struct Error {
    message: String,
    causes: Vec<String>,
    code: i32,
}

impl Error {
    /// An error with `msg`, no causes and exit code 1.
    ///
    /// ```
    /// let err = kiln_guest::Error::new("no package.json in /app");
    /// assert_eq!(err.message(), "no package.json in /app");
    /// ```
    pub fn new(msg: impl Into<String>) -> Error {
        Error {
            message: msg.into(),
            causes: Vec::new(),
            code: DEFAULT_EXIT_CODE,
        }
    }

    /// The same error, ending the step with `code`.
    ///
    /// Exit statuses are one byte and an error must never look like
    /// success, so a code outside `1..=255` becomes 1. A `wasm32-wasip2`
    /// program built with Rust 1.95 reports every nonzero code as 1 (its
    /// wasi-libc has no way to pass the code on); `wasm32-wasip1` programs
    /// keep it.
    ///
    /// ```
    /// use kiln_guest::Error;
    /// assert_eq!(Error::new("busy").with_code(75).code(), 75);
    /// assert_eq!(Error::new("not an error?").with_code(0).code(), 1);
    /// assert_eq!(Error::new("too big").with_code(256).code(), 1);
    /// ```
    pub fn with_code(mut self, code: i32) -> Error {
        self.code = if (1..=255).contains(&code) {
            code
        } else {
            DEFAULT_EXIT_CODE
        };
        self
    }

    /// The exit code [`run`](crate::run) ends the program with for this
    /// error: 1 unless [`with_code`](Error::with_code) set another.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The error's own message, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The causes, outermost first: what led to [`message`](Error::message).
    ///
    /// ```
    /// use kiln_guest::{Context, Error};
    ///
    /// let err = Err::<(), _>(Error::new("disk full"))
    ///     .context("writing /app/out.json")
    ///     .unwrap_err();
    /// assert_eq!(err.message(), "writing /app/out.json");
    /// assert_eq!(err.causes().collect::<Vec<_>>(), ["disk full"]);
    /// ```
    pub fn causes(&self) -> impl Iterator<Item = &str> {
        self.causes.iter().map(String::as_str)
    }

    /// The same error with `cause` added after the causes it has: a detail
    /// that explains it, shown as a `caused by:` line.
    ///
    /// ```
    /// use kiln_guest::Error;
    ///
    /// let err = Error::new("no lockfile").caused_by("looked in /app and /app/frontend");
    /// assert_eq!(err.to_string(), "no lockfile: looked in /app and /app/frontend");
    /// ```
    pub fn caused_by(mut self, cause: impl Into<String>) -> Error {
        self.causes.push(cause.into());
        self
    }

    /// This error as the cause of a new one with `msg`; the code is kept.
    fn wrap(self, msg: String) -> Error {
        let mut causes = Vec::with_capacity(self.causes.len() + 1);
        causes.push(self.message);
        causes.extend(self.causes);
        Error {
            message: msg,
            causes,
            code: self.code,
        }
    }

    /// Writes the report [`run`](crate::run) prints: `error: <message>`,
    /// then a `  caused by: <cause>` line per cause.
    pub(crate) fn write_report(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "error: {}", self.message)?;
        for cause in &self.causes {
            writeln!(out, "  caused by: {cause}")?;
        }
        Ok(())
    }
}

/// The message, then each cause after `": "`, on one line.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("message", &self.message)
            .field("causes", &self.causes)
            .field("code", &self.code)
            .finish()
    }
}

/// Converts any error (`std::io::Error`, `ParseIntError`, ...) with its
/// `source()` chain, so `?` works on them in a step. Exit code 1.
///
/// `Error` itself does not implement `std::error::Error`, which is what
/// lets this conversion and [`Context`] cover every other error type.
impl<E: std::error::Error> From<E> for Error {
    fn from(err: E) -> Error {
        let mut causes = Vec::new();
        let mut source = err.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Error {
            message: err.to_string(),
            causes,
            code: DEFAULT_EXIT_CODE,
        }
    }
}

/// Says what the step was doing when something failed: the failure becomes
/// the first cause of a new [`Error`] with the given message.
///
/// Implemented for `Result<T, E>` of any `std::error::Error`, for
/// `Result<T, Error>` (keeping its exit code) and for `Option<T>` (`None`
/// becomes an error with just the message).
///
/// ```
/// use kiln_guest::{Context, Result};
///
/// fn read_config() -> Result<String> {
///     let path = "/nonexistent/kiln.toml";
///     std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
/// }
///
/// let err = read_config().unwrap_err();
/// assert_eq!(err.message(), "reading /nonexistent/kiln.toml");
/// assert_eq!(err.causes().count(), 1); // the OS error
///
/// let missing: Option<&str> = None;
/// assert_eq!(missing.context("no HOME").unwrap_err().to_string(), "no HOME");
/// ```
pub trait Context<T> {
    /// Wraps a failure in an error saying `msg`.
    fn context(self, msg: impl Into<String>) -> Result<T>;

    /// Like [`context`](Context::context), the message built only on failure.
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::from(e).wrap(msg.into()))
    }

    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::from(e).wrap(f()))
    }
}

impl<T> Context<T> for Result<T, Error> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.wrap(msg.into()))
    }

    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| e.wrap(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| Error::new(msg))
    }

    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.ok_or_else(|| Error::new(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading the lockfile")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn report(err: &Error) -> String {
        let mut out = Vec::new();
        err.write_report(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn new_error_has_code_one_and_no_causes() {
        let err = Error::new("boom");
        assert_eq!((err.message(), err.code()), ("boom", 1));
        assert_eq!(err.causes().count(), 0);
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn codes_that_are_not_failures_become_one() {
        for (given, kept) in [(2, 2), (255, 255), (0, 1), (-1, 1), (256, 1), (i32::MAX, 1)] {
            assert_eq!(Error::new("x").with_code(given).code(), kept, "{given}");
        }
    }

    #[test]
    fn io_errors_convert_with_their_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::from(io);
        assert_eq!((err.message(), err.code()), ("no such file", 1));
    }

    #[test]
    fn source_chain_becomes_causes() {
        let err = Error::from(Outer(std::io::Error::other("disk on fire")));
        assert_eq!(err.message(), "loading the lockfile");
        assert_eq!(err.causes().collect::<Vec<_>>(), ["disk on fire"]);
    }

    #[test]
    fn context_stacks_outermost_first_and_keeps_the_code() {
        let err = Err::<(), _>(Error::new("registry said 401").with_code(3))
            .context("fetching index")
            .with_context(|| "installing packages".to_string())
            .unwrap_err();
        assert_eq!(err.message(), "installing packages");
        assert_eq!(
            err.causes().collect::<Vec<_>>(),
            ["fetching index", "registry said 401"]
        );
        assert_eq!(err.code(), 3);
        assert_eq!(
            err.to_string(),
            "installing packages: fetching index: registry said 401"
        );
    }

    #[test]
    fn context_on_std_errors_and_options() {
        let err = "x".parse::<i32>().context("parsing --jobs").unwrap_err();
        assert_eq!(err.message(), "parsing --jobs");
        assert_eq!(err.causes().count(), 1);
        assert_eq!(err.code(), 1);
        assert_eq!(Some(5).context("unused").unwrap(), 5);
        let none: Option<u8> = None;
        let err = none.with_context(|| "no value".into()).unwrap_err();
        assert_eq!((err.message(), err.causes().count()), ("no value", 0));
    }

    #[test]
    fn report_has_one_line_per_cause() {
        let err = Err::<(), _>(Outer(std::io::Error::other("disk on fire")))
            .context("installing")
            .unwrap_err();
        assert_eq!(
            report(&err),
            "error: installing\n  caused by: loading the lockfile\n  caused by: disk on fire\n"
        );
    }

    #[test]
    fn question_mark_converts_std_errors() {
        fn parse(s: &str) -> Result<u8> {
            Ok(s.parse::<u8>()?)
        }
        assert_eq!(parse("7").unwrap(), 7);
        assert_eq!(parse("300").unwrap_err().code(), 1);
    }
}
