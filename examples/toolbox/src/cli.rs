//! What every tool shares: its standard streams ([`Io`]), its errors
//! ([`Error`]) and how an error becomes a message and an exit code.
//!
//! Tools never touch the process's streams or call `exit`: they write to
//! `Io`, report problems that do not stop them with [`Io::error`] (the tool
//! goes on, and exits 1 at the end, as `cat a missing b` does), and return
//! an [`Error`] for the problem that stops them. `multicall.rs` turns the
//! outcome into the exit code.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

/// Exit code of a tool that did its work.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code of a tool that failed at runtime (a missing file, a checksum
/// mismatch, a write error).
pub(crate) const EXIT_FAILED: i32 = 1;
/// Exit code of a wrong invocation (an unknown flag, a missing operand).
pub(crate) const EXIT_USAGE: i32 = 2;

/// The problem that stopped a tool.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The command line is wrong: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The work failed: exit code 1.
    #[error("{0}")]
    Failed(String),
    /// Writing to stdout failed (a closed pipe, a full disk): exit code 1,
    /// and nothing more can be reported there, so the tool stops.
    #[error("write error: {0}")]
    Output(String),
    /// Stop with this exit code; everything there was to say has been said
    /// (grep's 2 after reporting unreadable files), or nothing needs saying
    /// (stdout's reader went away: a broken pipe).
    #[error("exit status {0}")]
    Exit(i32),
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Failed(_) | Error::Output(_) => EXIT_FAILED,
            Error::Exit(code) => *code,
        }
    }
}

/// A tool's result.
pub(crate) type Result<T = ()> = std::result::Result<T, Error>;

/// A usage error (exit code 2).
pub(crate) fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// A runtime failure (exit code 1).
pub(crate) fn failed(message: impl Into<String>) -> Error {
    Error::Failed(message.into())
}

/// An OS error the way coreutils print it: the description without Rust's
/// ` (os error N)` suffix.
pub(crate) fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A path in single quotes, as coreutils quote names in messages.
pub(crate) fn quote(path: impl AsRef<Path>) -> String {
    format!("'{}'", path.as_ref().display())
}

/// A failed write to stdout (a closed pipe, a full disk). A broken pipe
/// ends the tool quietly with exit code 1, as SIGPIPE ends a Unix tool
/// (`yes | head -n 1`); any other write error is reported.
pub(crate) fn write_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::Exit(EXIT_FAILED)
    } else {
        Error::Output(describe(&e))
    }
}

/// Turns an `io::Result` into a tool [`Result`] whose message says what was
/// being done: `cannot open 'x': No such file or directory`.
pub(crate) trait OrFail<T> {
    /// Fails with `what(): <OS error>`.
    fn or_fail(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> OrFail<T> for io::Result<T> {
    fn or_fail(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| failed(format!("{}: {}", what(), describe(&e))))
    }
}

/// Size of the buffer files are streamed through: a file of any size is
/// copied with this much memory.
pub(crate) const COPY_BUFFER: usize = 64 << 10;

/// Which side of a [`stream`] failed.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Reading the source.
    Read(io::Error),
    /// Writing the destination.
    Write(io::Error),
}

/// Copies `from` to `to` through a [`COPY_BUFFER`]; returns the bytes
/// copied, or which side failed (a read error is about the file, a write
/// error about the output).
pub(crate) fn stream(
    from: &mut dyn Read,
    to: &mut dyn Write,
) -> std::result::Result<u64, StreamError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(StreamError::Write)?;
        total += n as u64;
    }
}

/// A tool's standard streams, and whether it has reported a failure.
pub(crate) struct Io<'a> {
    /// Standard input.
    pub(crate) stdin: &'a mut dyn Read,
    /// Standard output.
    pub(crate) stdout: &'a mut dyn Write,
    /// Standard error.
    pub(crate) stderr: &'a mut dyn Write,
    tool: &'static str,
    failed: bool,
}

impl<'a> Io<'a> {
    /// Streams for the tool named `tool` (the prefix of its messages).
    pub(crate) fn new(
        tool: &'static str,
        stdin: &'a mut dyn Read,
        stdout: &'a mut dyn Write,
        stderr: &'a mut dyn Write,
    ) -> Io<'a> {
        Io {
            stdin,
            stdout,
            stderr,
            tool,
            failed: false,
        }
    }

    /// Reports a problem that does not stop the tool; it exits 1 at the end.
    pub(crate) fn error(&mut self, message: impl fmt::Display) {
        self.failed = true;
        self.note(message);
    }

    /// Makes the tool exit 1 without a message.
    pub(crate) fn set_failed(&mut self) {
        self.failed = true;
    }

    /// Reports a failed [`Result`] the way [`Io::error`] does.
    pub(crate) fn report(&mut self, result: Result) {
        if let Err(e) = result {
            self.error(e);
        }
    }

    /// A step of a larger job: a failure is reported and the job goes on
    /// (returns whether the step worked); a failed write to stdout stops
    /// the job.
    pub(crate) fn carry_on(&mut self, result: Result) -> Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e @ (Error::Output(_) | Error::Exit(_))) => Err(e),
            Err(e) => {
                self.error(e);
                Ok(false)
            }
        }
    }

    /// Writes `tool: message` to stderr without changing the exit code.
    pub(crate) fn note(&mut self, message: impl fmt::Display) {
        // Whatever stdout holds comes first, so a log reads in order.
        let _ = self.stdout.flush();
        let _ = writeln!(self.stderr, "{}: {message}", self.tool);
    }

    /// Whether [`Io::error`] was called.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed
    }

    /// Takes stdin for a tool that hands it to a reader of its own (a
    /// checksum list, an archive), leaving an empty stream in its place;
    /// give it back with [`Io::put_stdin`].
    pub(crate) fn take_stdin(&mut self) -> &'a mut dyn Read {
        // `Empty` has no size: leaking one allocates nothing.
        std::mem::replace(&mut self.stdin, Box::leak(Box::new(io::empty())))
    }

    /// Gives back what [`Io::take_stdin`] took.
    pub(crate) fn put_stdin(&mut self, stdin: &'a mut dyn Read) {
        self.stdin = stdin;
    }

    /// Takes stdout for a tool that writes data there (an archive), leaving
    /// a sink in its place, so nothing else can end up inside the data;
    /// give it back with [`Io::put_stdout`].
    pub(crate) fn take_stdout(&mut self) -> &'a mut dyn Write {
        // `Sink` has no size: leaking one allocates nothing.
        std::mem::replace(&mut self.stdout, Box::leak(Box::new(io::sink())))
    }

    /// Gives back what [`Io::take_stdout`] took.
    pub(crate) fn put_stdout(&mut self, stdout: &'a mut dyn Write) {
        self.stdout = stdout;
    }

    /// Takes stderr for a tool told to keep quiet about its inputs
    /// (`grep -s`), leaving a sink in its place; give it back with
    /// [`Io::put_stderr`].
    pub(crate) fn take_stderr(&mut self) -> &'a mut dyn Write {
        std::mem::replace(&mut self.stderr, Box::leak(Box::new(io::sink())))
    }

    /// Gives back what [`Io::take_stderr`] took.
    pub(crate) fn put_stderr(&mut self, stderr: &'a mut dyn Write) {
        self.stderr = stderr;
    }

    /// Writes one line to stdout.
    pub(crate) fn line(&mut self, text: impl fmt::Display) -> Result {
        writeln!(self.stdout, "{text}").map_err(write_error)
    }

    /// Writes bytes to stdout as they are.
    pub(crate) fn out(&mut self, bytes: &[u8]) -> Result {
        self.stdout.write_all(bytes).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_drops_the_os_error_number() {
        let e = io::Error::from_raw_os_error(2);
        assert!(!describe(&e).contains("os error"), "{}", describe(&e));
        let e = io::Error::other("plain");
        assert_eq!(describe(&e), "plain");
    }

    #[test]
    fn errors_after_output_keep_the_order_and_set_the_exit_code() {
        let (mut stdin, mut out, mut err) = (io::empty(), Vec::new(), Vec::new());
        let mut io = Io::new("cat", &mut stdin, &mut out, &mut err);
        io.line("first").unwrap();
        assert!(!io.has_failed());
        io.error("x: gone");
        assert!(io.has_failed());
        assert_eq!(String::from_utf8(err).unwrap(), "cat: x: gone\n");
        assert_eq!(String::from_utf8(out).unwrap(), "first\n");
    }
}
