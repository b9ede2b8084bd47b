//! What the shell needs from the world outside it: programs to run and a
//! filesystem. The build implements it over the step's `Vfs` and
//! `step::run`; tests over an in-memory fake.
//!
//! Paths given to a host are absolute and normalized (`/a/b`), already
//! resolved against the shell's working directory.

use std::io::{self, Read, Write};

/// An external command to run.
pub struct Exec<'a> {
    /// The arguments; `argv[0]` names the program as written (a name to
    /// look up on `PATH`, or a path).
    pub argv: &'a [String],
    /// The exported environment, `PATH` included.
    pub env: &'a [(String, String)],
    /// The working directory.
    pub cwd: &'a str,
}

/// Bytes in memory a command reads as its standard input, with a read
/// position shared with the shell (`while read l; do prog; done <f`).
pub trait Input: Read {
    /// What is left to read, without reading it: a host that hands the
    /// bytes to a program elsewhere reads (consumes) afterwards only as
    /// many as the program did.
    fn peek(&mut self) -> Vec<u8>;
}

/// A command's standard input.
pub enum Stdin<'a> {
    /// The shell's own standard input, not redirected: the host gives the
    /// program its own (the terminal for `kiln run`, nothing in a build).
    Inherited,
    /// A pipe, a file, a here-document.
    Bytes(&'a mut (dyn Input + 'static)),
}

/// The standard streams of an external command.
pub struct Streams<'a> {
    /// Standard input.
    pub stdin: Stdin<'a>,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
}

/// The streams of a pipeline of programs.
pub struct PipelineStreams<'a> {
    /// The first program's standard input.
    pub stdin: Stdin<'a>,
    /// The last program's standard output.
    pub stdout: &'a mut dyn Write,
    /// Each program's standard error, in order.
    pub stderr: Vec<ErrTo<'a>>,
}

/// Where a program of a pipeline writes its errors.
pub enum ErrTo<'a> {
    /// A descriptor of the shell.
    Writer(&'a mut dyn Write),
    /// Into its standard output, the pipe to the next program (`2>&1`).
    Stdout,
}

impl Input for io::Cursor<Vec<u8>> {
    fn peek(&mut self) -> Vec<u8> {
        let pos = (self.position() as usize).min(self.get_ref().len());
        self.get_ref()[pos..].to_vec()
    }
}

/// Appends to a buffer shared by a program's output and errors.
struct BufferWriter<'b>(&'b std::cell::RefCell<Vec<u8>>);

impl Write for BufferWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What [`Host::test`] asks of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathTest {
    /// It exists (`test -e`).
    Exists,
    /// It is a regular file (`test -f`).
    File,
    /// It is a directory (`test -d`).
    Dir,
    /// It can be run (`test -x`).
    Executable,
    /// It exists and is not empty (`test -s`).
    NonEmpty,
    /// It is a symbolic link (`test -L`, `test -h`).
    Symlink,
}

/// What the shell needs from outside.
pub trait Host {
    /// Runs an external command and returns its exit status. A program
    /// not found is 127 and one that cannot be run 126, each after a
    /// message on `streams.stderr` (for not found, naming the `PATH`
    /// searched).
    fn run(&mut self, cmd: &Exec<'_>, streams: Streams<'_>) -> i32;

    /// Runs a pipeline whose every stage is a program (`a | b | c`), each
    /// one's standard output the next one's standard input; returns each
    /// one's status. A host that can runs them at the same time, joined by
    /// pipes with backpressure; this default runs them one after another,
    /// each one's output held in memory for the next.
    fn run_pipeline(&mut self, cmds: &[Exec<'_>], streams: PipelineStreams<'_>) -> Vec<i32> {
        let PipelineStreams {
            stdin,
            stdout,
            stderr,
        } = streams;
        let mut first = Some(stdin);
        let mut last = Some(stdout);
        let mut statuses = Vec::new();
        let mut piped: Option<io::Cursor<Vec<u8>>> = None;
        for (i, (cmd, err)) in cmds.iter().zip(stderr).enumerate() {
            let buffer = std::cell::RefCell::new(Vec::new());
            let mut input = piped.take();
            let status = {
                let mut to_buffer = (BufferWriter(&buffer), BufferWriter(&buffer));
                let out: &mut dyn Write = if i + 1 == cmds.len() {
                    last.take().expect("the last stage comes once")
                } else {
                    &mut to_buffer.0
                };
                let stdin = match input.as_mut() {
                    Some(bytes) => Stdin::Bytes(bytes),
                    None => first.take().unwrap_or(Stdin::Inherited),
                };
                let stderr: &mut dyn Write = match err {
                    ErrTo::Writer(w) => w,
                    // Only a stage before the last writes errors into the
                    // pipe (the last one's `2>&1` is a writer).
                    ErrTo::Stdout => &mut to_buffer.1,
                };
                self.run(
                    cmd,
                    Streams {
                        stdin,
                        stdout: out,
                        stderr,
                    },
                )
            };
            statuses.push(status);
            piped = Some(io::Cursor::new(buffer.into_inner()));
        }
        statuses
    }

    /// The contents of a file (`<`, `.`).
    fn read_file(&mut self, path: &str) -> io::Result<Vec<u8>>;

    /// Creates or truncates a file (`>`) or opens it for appending (`>>`),
    /// failing as `open` would (a directory, a missing parent).
    fn open_write(&mut self, path: &str, append: bool) -> io::Result<()>;

    /// Appends bytes to a file opened by [`Host::open_write`].
    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()>;

    /// Tests a path; symbolic links are followed except for
    /// [`PathTest::Symlink`].
    fn test(&mut self, path: &str, what: PathTest) -> bool;

    /// The names in a directory, for globbing (without `.` and `..`).
    fn list_dir(&mut self, path: &str) -> io::Result<Vec<String>>;

    /// Whether `cd` may enter `path`: an error saying why not.
    fn check_dir(&mut self, path: &str) -> io::Result<()> {
        if self.test(path, PathTest::Dir) {
            Ok(())
        } else if self.test(path, PathTest::Exists) {
            Err(io::Error::other("not a directory"))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such file or directory",
            ))
        }
    }

    /// Whether the script must stop now (cancelled, out of time, a limit of
    /// the step hit), and the status it ends with. Asked before every
    /// pipeline.
    fn stopped(&mut self) -> Option<i32> {
        None
    }

    /// Writes a `set -x` trace line (without its newline). The build masks
    /// secrets here.
    fn trace(&mut self, line: &str, stderr: &mut dyn Write) {
        let _ = writeln!(stderr, "{line}");
    }
}
