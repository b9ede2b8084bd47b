//! A component's standard streams: the step's [`Stdio`] reader and writers
//! behind wasmtime-wasi's [`StdinStream`]/[`StdoutStream`] traits.
//!
//! wasmtime-wasi makes a new stream object each time the guest asks for
//! stdout, and each must write to the same place. [`share`] therefore moves
//! each of the step's streams behind a shared handle and puts a clone of
//! the handle back into [`Stdio`]: `StepState` keeps its `Box<dyn Write>`
//! fields, and whoever writes through either end writes, in order, to the
//! one writer underneath.
//!
//! Nothing is buffered here: a guest's write is a `write_all` on the
//! writer, so the build's progress output shows it as it happens. Reading
//! stdin blocks the guest until the reader returns (a step's stdin is empty
//! or a pipe kiln feeds).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::wasi::Stdio;

/// What `check-write` allows per write on stdout or stderr. The bytes are
/// already in host memory when the guest writes them; this only bounds one
/// write call's copy.
pub const STDIO_WRITE_PERMIT: usize = 1 << 16;

/// Most bytes one read of stdin returns, whatever length the guest asked
/// for: the host allocates the buffer before reading into it.
pub const STDIN_READ_CHUNK: usize = 1 << 16;

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The streams a component's `WasiCtx` writes to and reads from.
pub(super) struct SharedStdio {
    pub(super) stdin: SharedReader,
    pub(super) stdout: SharedWriter,
    pub(super) stderr: SharedWriter,
}

/// Moves the streams of `stdio` behind shared handles (see the module
/// docs) and returns the component's ends.
pub(super) fn share(stdio: &mut Stdio) -> SharedStdio {
    let terminal = stdio.terminal;
    let stdin = SharedReader {
        inner: Arc::new(Mutex::new(std::mem::replace(
            &mut stdio.stdin,
            Box::new(io::empty()),
        ))),
        terminal,
    };
    let stdout = SharedWriter::new(
        std::mem::replace(&mut stdio.stdout, Box::new(io::sink())),
        terminal,
    );
    let stderr = SharedWriter::new(
        std::mem::replace(&mut stdio.stderr, Box::new(io::sink())),
        terminal,
    );
    stdio.stdin = Box::new(stdin.clone());
    stdio.stdout = Box::new(stdout.clone());
    stdio.stderr = Box::new(stderr.clone());
    SharedStdio {
        stdin,
        stdout,
        stderr,
    }
}

fn stream_error(e: io::Error) -> StreamError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        StreamError::Closed
    } else {
        StreamError::LastOperationFailed(e.into())
    }
}

/// A writer shared by the step state and the component's streams.
#[derive(Clone)]
pub(super) struct SharedWriter {
    inner: Arc<Mutex<Box<dyn Write + Send>>>,
    terminal: bool,
}

impl SharedWriter {
    fn new(writer: Box<dyn Write + Send>, terminal: bool) -> SharedWriter {
        SharedWriter {
            inner: Arc::new(Mutex::new(writer)),
            terminal,
        }
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.inner).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        lock(&self.inner).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.inner).flush()
    }
}

impl IsTerminal for SharedWriter {
    fn is_terminal(&self) -> bool {
        self.terminal
    }
}

impl StdoutStream for SharedWriter {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    /// For WASI 0.3 hosts (kiln links none): writes synchronously.
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SharedWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for SharedWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > STDIO_WRITE_PERMIT {
            return Err(StreamError::trap(
                "write exceeds what check-write permitted",
            ));
        }
        self.write_all(&bytes).map_err(stream_error)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Write::flush(self).map_err(stream_error)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(STDIO_WRITE_PERMIT)
    }
}

impl AsyncWrite for SharedWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Write::write(&mut *self, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Write::flush(&mut *self))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A reader shared by the step state and the component's stdin.
#[derive(Clone)]
pub(super) struct SharedReader {
    inner: Arc<Mutex<Box<dyn Read + Send>>>,
    terminal: bool,
}

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.inner).read(buf)
    }
}

impl IsTerminal for SharedReader {
    fn is_terminal(&self) -> bool {
        self.terminal
    }
}

impl StdinStream for SharedReader {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }

    /// For WASI 0.3 hosts (kiln links none): reads synchronously.
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SharedReader {
    async fn ready(&mut self) {}
}

impl InputStream for SharedReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; size.min(STDIN_READ_CHUNK)];
        let n = loop {
            match Read::read(self, &mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_error(e)),
            }
        };
        if n == 0 {
            return Err(StreamError::Closed);
        }
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }
}

impl AsyncRead for SharedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = match Read::read(&mut *self, buf.initialize_unfilled()) {
            Ok(n) => n,
            Err(e) => return Poll::Ready(Err(e)),
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}
