//! File streams (`read-via-stream`, `write-via-stream`, `append-via-stream`)
//! over the VFS, and the `wasi:io/streams` host that serves them.
//!
//! A stream is a wasmtime-wasi [`InputStream`]/[`OutputStream`] in the
//! resource table, so polls, splices and blocking calls work on it as on
//! any other stream. But wasmtime-wasi calls a stream's methods with only
//! the table in hand, and a VFS file lives in `StepState.vfs`, which a
//! `'static` stream object cannot reach. So each file stream keeps its
//! state in a small shared [`Reader`]/[`Writer`] (position, buffered bytes,
//! error), and kiln's `wasi:io/streams` host ([`IoView`]) is wasmtime-wasi's
//! own implementation with one step added around every call on a file
//! stream:
//!
//! - before a call that reads, it fills the reader with the bytes at its
//!   position, at most what the call asked for (and [`MAX_STREAM_READ`]);
//!   the stream hands them out and advances; what is left is dropped after
//!   the call, so nothing is served stale;
//! - after a call that writes, it stores what the stream buffered at the
//!   writer's position (or at the end, for append). A store that fails is
//!   reported by the stream's next call, or by this call if it was a
//!   blocking write-and-flush, and then the stream is closed, as
//!   `wasi:io/streams` specifies.
//!
//! Streams that are not file streams (stdio) pass straight through. Each
//! file stream holds an open reference to its node until dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, InputStream, OutputStream, Pollable, StreamError,
    StreamResult,
};

use super::errors::FsResult;
use crate::vfs::{Errno, NodeRef, Vfs, VfsResult};

/// Most bytes one read of a file stream returns: what the host reads from
/// the VFS ahead of copying it to the guest, whatever length it asked for.
pub const MAX_STREAM_READ: usize = 1 << 20;

/// What `check-write` allows per write on a file stream: bytes the host
/// holds between the guest's write and the VFS store that follows it.
pub const WRITE_PERMIT: usize = 1 << 20;

/// Where a stream is in its life.
#[derive(Debug)]
enum Status {
    Open,
    /// The last VFS operation failed; reported once, then `Closed`.
    Failed(Errno),
    Closed,
}

impl Status {
    /// The error to report before anything else, if any.
    fn check(&mut self) -> StreamResult<()> {
        match std::mem::replace(self, Status::Open) {
            Status::Open => Ok(()),
            Status::Failed(e) => {
                *self = Status::Closed;
                Err(StreamError::LastOperationFailed(wasmtime::Error::new(e)))
            }
            Status::Closed => {
                *self = Status::Closed;
                Err(StreamError::Closed)
            }
        }
    }
}

/// The state of a read stream. See the module docs.
#[derive(Debug)]
struct Reader {
    node: NodeRef,
    position: u64,
    /// Bytes read at `position` for the current call.
    ready: Bytes,
    /// The current call found the end of the file.
    at_end: bool,
    status: Status,
}

/// The state of a write or append stream. See the module docs.
#[derive(Debug)]
struct Writer {
    node: NodeRef,
    /// `None` appends.
    position: Option<u64>,
    /// Bytes written by the current call, stored after it.
    pending: Vec<u8>,
    status: Status,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file read stream in the resource table.
struct FileInput(Arc<Mutex<Reader>>);

#[wasmtime_wasi::async_trait]
impl Pollable for FileInput {
    async fn ready(&mut self) {}
}

impl InputStream for FileInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut r = lock(&self.0);
        r.status.check()?;
        if size == 0 {
            return Ok(Bytes::new());
        }
        if r.ready.is_empty() {
            return if r.at_end {
                Err(StreamError::Closed)
            } else {
                Ok(Bytes::new())
            };
        }
        let n = size.min(r.ready.len());
        let out = r.ready.split_to(n);
        r.position += n as u64;
        Ok(out)
    }
}

/// A file write stream in the resource table.
struct FileOutput(Arc<Mutex<Writer>>);

#[wasmtime_wasi::async_trait]
impl Pollable for FileOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for FileOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut w = lock(&self.0);
        w.status.check()?;
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::trap(
                "write exceeds what check-write permitted",
            ));
        }
        w.pending.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        lock(&self.0).status.check()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        lock(&self.0).status.check()?;
        Ok(WRITE_PERMIT)
    }
}

/// The VFS ends of a step's file streams, by resource index.
#[derive(Default)]
pub(super) struct FileStreams {
    readers: HashMap<u32, Arc<Mutex<Reader>>>,
    writers: HashMap<u32, Arc<Mutex<Writer>>>,
}

impl FileStreams {
    /// A read stream of `node` from `offset`.
    pub(super) fn open_reader(
        &mut self,
        table: &mut ResourceTable,
        vfs: &mut Vfs,
        node: NodeRef,
        offset: u64,
    ) -> FsResult<Resource<DynInputStream>> {
        let reader = Arc::new(Mutex::new(Reader {
            node,
            position: offset,
            ready: Bytes::new(),
            at_end: false,
            status: Status::Open,
        }));
        vfs.retain(node)?;
        let stream: DynInputStream = Box::new(FileInput(Arc::clone(&reader)));
        let res = table.push(stream).inspect_err(|_| vfs.close(node))?;
        self.readers.insert(res.rep(), reader);
        Ok(res)
    }

    /// A write stream of `node` at `offset`, or appending if `None`.
    pub(super) fn open_writer(
        &mut self,
        table: &mut ResourceTable,
        vfs: &mut Vfs,
        node: NodeRef,
        offset: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let writer = Arc::new(Mutex::new(Writer {
            node,
            position: offset,
            pending: Vec::new(),
            status: Status::Open,
        }));
        vfs.retain(node)?;
        let stream: DynOutputStream = Box::new(FileOutput(Arc::clone(&writer)));
        let res = table.push(stream).inspect_err(|_| vfs.close(node))?;
        self.writers.insert(res.rep(), writer);
        Ok(res)
    }
}

/// What kiln's `wasi:io/streams` host works on. See the module docs.
pub(super) struct IoView<'a> {
    pub(super) table: &'a mut ResourceTable,
    pub(super) vfs: &'a mut Vfs,
    pub(super) files: &'a mut FileStreams,
}

/// [`wasmtime::component::HasData`] for `wasi:io/streams`.
pub(super) struct Io;

impl wasmtime::component::HasData for Io {
    type Data<'a> = IoView<'a>;
}

impl IoView<'_> {
    /// Before a call that reads up to `len` bytes from `rep`: fills it if it
    /// is a file stream. Returns the reader to [`IoView::after_read`].
    fn before_read(&mut self, rep: u32, len: u64) -> Option<Arc<Mutex<Reader>>> {
        let reader = Arc::clone(self.files.readers.get(&rep)?);
        {
            let mut r = lock(&reader);
            r.ready = Bytes::new();
            r.at_end = false;
            if matches!(r.status, Status::Open) && len > 0 {
                match self.fill(&mut r, len) {
                    Ok(()) => {}
                    Err(e) => r.status = Status::Failed(e),
                }
            }
        }
        Some(reader)
    }

    /// Reads up to `len` bytes (and [`MAX_STREAM_READ`]) at the reader's
    /// position, allocating no more than the file has left.
    fn fill(&mut self, r: &mut Reader, len: u64) -> VfsResult<()> {
        let left = self.vfs.stat(r.node)?.size.saturating_sub(r.position);
        let want = len.min(left).min(MAX_STREAM_READ as u64) as usize;
        if want == 0 {
            r.at_end = true;
            return Ok(());
        }
        let mut buf = vec![0u8; want];
        let n = self.vfs.read(r.node, r.position, &mut buf)?;
        buf.truncate(n);
        r.at_end = n == 0;
        r.ready = Bytes::from(buf);
        Ok(())
    }

    /// After a call that read: drops what the call did not take.
    fn after_read(reader: Option<Arc<Mutex<Reader>>>) {
        if let Some(reader) = reader {
            let mut r = lock(&reader);
            r.ready = Bytes::new();
            r.at_end = false;
        }
    }

    /// After a call that may have written to `rep`: stores what it wrote.
    /// A failure is kept for the stream's next call unless `blocking`, in
    /// which case it is this call's result.
    fn after_write(
        &mut self,
        rep: u32,
        result: StreamResult<()>,
        blocking: bool,
    ) -> StreamResult<()> {
        let Some(writer) = self.files.writers.get(&rep).map(Arc::clone) else {
            return result;
        };
        let mut w = lock(&writer);
        let pending = std::mem::take(&mut w.pending);
        if pending.is_empty() {
            return result;
        }
        match self.store(&mut w, &pending) {
            Ok(()) => result,
            Err(e) => {
                w.status = Status::Failed(e);
                if blocking && result.is_ok() {
                    w.status.check()
                } else {
                    result
                }
            }
        }
    }

    fn store(&mut self, w: &mut Writer, data: &[u8]) -> VfsResult<()> {
        let at = match w.position {
            Some(p) => p,
            None => self.vfs.stat(w.node)?.size,
        };
        let mut done = 0;
        while done < data.len() {
            let offset = at.checked_add(done as u64).ok_or(Errno::Fbig)?;
            match self.vfs.write(w.node, offset, &data[done..])? {
                0 => return Err(Errno::Io),
                n => done += n,
            }
            if let Some(p) = &mut w.position {
                *p = at + done as u64;
            }
        }
        Ok(())
    }

    /// Releases the node of a file stream that was dropped.
    fn forget(&mut self, rep: u32) {
        let node = if let Some(r) = self.files.readers.remove(&rep) {
            lock(&r).node
        } else if let Some(w) = self.files.writers.remove(&rep) {
            lock(&w).node
        } else {
            return;
        };
        self.vfs.close(node);
    }
}

impl streams::Host for IoView<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.table, err)
    }
}

impl streams::HostInputStream for IoView<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        let rep = stream.rep();
        streams::HostInputStream::drop(self.table, stream)?;
        self.forget(rep);
        Ok(())
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        let reader = self.before_read(stream.rep(), len);
        let result = streams::HostInputStream::read(self.table, stream, len);
        Self::after_read(reader);
        result
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        let reader = self.before_read(stream.rep(), len);
        let result = streams::HostInputStream::blocking_read(self.table, stream, len);
        Self::after_read(reader);
        result
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let reader = self.before_read(stream.rep(), len);
        let result = streams::HostInputStream::skip(self.table, stream, len);
        Self::after_read(reader);
        result
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let reader = self.before_read(stream.rep(), len);
        let result = streams::HostInputStream::blocking_skip(self.table, stream, len);
        Self::after_read(reader);
        result
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.table, stream)
    }
}

impl streams::HostOutputStream for IoView<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        let rep = stream.rep();
        streams::HostOutputStream::drop(self.table, stream)?;
        self.forget(rep);
        Ok(())
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, contents: Vec<u8>) -> StreamResult<()> {
        let rep = stream.rep();
        let result = streams::HostOutputStream::write(self.table, stream, contents);
        self.after_write(rep, result, false)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        contents: Vec<u8>,
    ) -> StreamResult<()> {
        let rep = stream.rep();
        let result =
            streams::HostOutputStream::blocking_write_and_flush(self.table, stream, contents);
        self.after_write(rep, result, true)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::blocking_flush(self.table, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        let rep = stream.rep();
        let result = streams::HostOutputStream::write_zeroes(self.table, stream, len);
        self.after_write(rep, result, false)
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let rep = stream.rep();
        let result =
            streams::HostOutputStream::blocking_write_zeroes_and_flush(self.table, stream, len);
        self.after_write(rep, result, true)
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let rep = dst.rep();
        let reader = self.before_read(src.rep(), len);
        let result = streams::HostOutputStream::splice(self.table, dst, src, len);
        Self::after_read(reader);
        let (result, n) = split(result);
        self.after_write(rep, result, false).map(|()| n)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let rep = dst.rep();
        let reader = self.before_read(src.rep(), len);
        let result = streams::HostOutputStream::blocking_splice(self.table, dst, src, len);
        Self::after_read(reader);
        let (result, n) = split(result);
        self.after_write(rep, result, true).map(|()| n)
    }
}

/// A count result as a unit result and the count (0 on error).
fn split(r: StreamResult<u64>) -> (StreamResult<()>, u64) {
    match r {
        Ok(n) => (Ok(()), n),
        Err(e) => (Err(e), 0),
    }
}
