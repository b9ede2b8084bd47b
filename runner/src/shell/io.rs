//! The shell's standard streams: where each of descriptors 0, 1 and 2
//! points while a command runs.
//!
//! Standard input is always bytes in memory with a shared read position
//! (a here-document, a file read whole, the output of the pipeline stage
//! before), so `while read l; do ...; done <file` reads on from where the
//! last `read` stopped. Output goes to the shell's own stdout or stderr, a
//! buffer (a pipe, a command substitution), a file (buffered, appended to
//! the host's file when the redirection ends) or nowhere.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::rc::Rc;

/// Where output goes.
pub(super) enum Sink {
    /// The shell's standard output.
    Stdout,
    /// The shell's standard error.
    Stderr,
    /// Kept in memory (pipes, command substitution).
    Buf(Vec<u8>),
    /// A file: its path and the bytes not yet appended to it.
    File(String, Vec<u8>),
    /// `/dev/null`, or a closed descriptor.
    Null,
}

/// An output descriptor; shared by `2>&1`.
pub(super) type Out = Rc<RefCell<Sink>>;
/// An input descriptor.
pub(super) type In = Rc<RefCell<Cursor<Vec<u8>>>>;

/// Descriptors 0, 1, 2.
#[derive(Clone)]
pub(super) struct Fds {
    /// `None`: the shell's own standard input, not redirected, which the
    /// host hands to a program as it is.
    pub stdin: Option<In>,
    pub stdout: Out,
    pub stderr: Out,
}

pub(super) fn sink(s: Sink) -> Out {
    Rc::new(RefCell::new(s))
}

pub(super) fn input(bytes: Vec<u8>) -> In {
    Rc::new(RefCell::new(Cursor::new(bytes)))
}

/// The shell's own output streams.
pub(super) struct Tops<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Writes into a descriptor.
pub(super) struct OutWriter<'t, 'a> {
    pub out: Out,
    pub tops: &'t RefCell<Tops<'a>>,
}

/// The most a pipe or a command substitution holds. Pipeline stages run
/// one after another, so a stage's whole output waits in memory for the
/// next: past this, the writer gets "broken pipe", as a program whose
/// reader stopped would (`yes | head` ends).
pub(super) const PIPE_MAX: usize = 256 << 20;

impl Write for OutWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut *self.out.borrow_mut() {
            Sink::Stdout => self.tops.borrow_mut().stdout.write_all(buf)?,
            Sink::Stderr => self.tops.borrow_mut().stderr.write_all(buf)?,
            Sink::Buf(b) if b.len() + buf.len() > PIPE_MAX => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "broken pipe: the reader holds at most 256 MiB",
                ));
            }
            Sink::Buf(b) | Sink::File(_, b) => b.extend_from_slice(buf),
            Sink::Null => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads from an input descriptor.
pub(super) struct InReader(pub In);

impl Read for InReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl super::host::Input for InReader {
    fn peek(&mut self) -> Vec<u8> {
        let c = self.0.borrow();
        let pos = (c.position() as usize).min(c.get_ref().len());
        c.get_ref()[pos..].to_vec()
    }
}

/// Reads one line (without its newline) from `input`; `None` at the end.
pub(super) fn read_line(input: &In) -> Option<String> {
    let mut c = input.borrow_mut();
    let pos = c.position() as usize;
    let data = c.get_ref();
    if pos >= data.len() {
        return None;
    }
    let rest = &data[pos..];
    let (line, used) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], i + 1),
        None => (rest, rest.len()),
    };
    let line = String::from_utf8_lossy(line).into_owned();
    c.set_position((pos + used) as u64);
    Some(line)
}
