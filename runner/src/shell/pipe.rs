//! An in-memory pipe between two programs of a pipeline, each on its own
//! thread: the writer waits while the pipe is full (backpressure), the
//! reader while it is empty; the reader sees the end once the writer is
//! gone, and the writer gets "broken pipe" once the reader is gone (so
//! `yes | head -n 1` ends when `head` does).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// What a pipe holds before its writer waits: as much as a Linux pipe.
pub(crate) const PIPE_CAPACITY: usize = 64 << 10;

struct State {
    bytes: VecDeque<u8>,
    /// Writing ends still open (a program's output and, with `2>&1`, its
    /// errors).
    writers: usize,
    reader: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A writing end; each clone is another, and the reader sees the end once
/// every one is gone.
pub(crate) struct PipeWriter(Arc<Shared>);

impl Clone for PipeWriter {
    fn clone(&self) -> Self {
        self.0.lock().writers += 1;
        PipeWriter(Arc::clone(&self.0))
    }
}

/// The reading end.
pub(crate) struct PipeReader(Arc<Shared>);

/// A pipe holding at most [`PIPE_CAPACITY`] bytes.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            bytes: VecDeque::new(),
            writers: 1,
            reader: true,
        }),
        changed: Condvar::new(),
    });
    let writer = PipeWriter(Arc::clone(&shared));
    (writer, PipeReader(shared))
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.0.lock();
        loop {
            if !state.reader {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let room = PIPE_CAPACITY.saturating_sub(state.bytes.len());
            if room > 0 {
                let n = room.min(buf.len());
                state.bytes.extend(&buf[..n]);
                self.0.changed.notify_all();
                return Ok(n);
            }
            state = self
                .0
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.0.lock().writers -= 1;
        self.0.changed.notify_all();
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.0.lock();
        loop {
            if !state.bytes.is_empty() {
                let n = buf.len().min(state.bytes.len());
                let (front, back) = state.bytes.as_slices();
                let from_front = n.min(front.len());
                buf[..from_front].copy_from_slice(&front[..from_front]);
                buf[from_front..n].copy_from_slice(&back[..n - from_front]);
                state.bytes.drain(..n);
                self.0.changed.notify_all();
                return Ok(n);
            }
            if state.writers == 0 {
                return Ok(0);
            }
            state = self
                .0
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.reader = false;
        state.bytes.clear();
        drop(state);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_flow_with_backpressure_and_end() {
        let (mut w, mut r) = pipe();
        let writer = std::thread::spawn(move || {
            // Four times what the pipe holds: the writer must wait.
            let chunk = vec![7u8; PIPE_CAPACITY];
            for _ in 0..4 {
                w.write_all(&chunk).unwrap();
            }
        });
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        writer.join().unwrap();
        assert_eq!(all.len(), 4 * PIPE_CAPACITY);
        assert!(all.iter().all(|b| *b == 7));
    }

    #[test]
    fn a_gone_reader_breaks_the_pipe() {
        let (mut w, r) = pipe();
        let writer = std::thread::spawn(move || {
            let chunk = vec![1u8; 4096];
            loop {
                if let Err(e) = w.write_all(&chunk) {
                    return e.kind();
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(r);
        assert_eq!(writer.join().unwrap(), io::ErrorKind::BrokenPipe);
    }
}
