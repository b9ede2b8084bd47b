//! The back half of the layer pipeline on a thread of its own.
//!
//! The thread that builds the tar also reads and hashes every file it
//! holds. Hashing the whole tar (the diff_id), writing it into the pack and
//! handing it to the compressor is as much work again, so it runs beside:
//! the tar builder fills [`CHUNK`]-sized buffers and sends them, in order,
//! over a bounded channel to a worker that hashes and writes them. The
//! bytes are the same whichever thread writes them; only the time differs.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

use crate::digest::{Digest, Hasher};

/// Bytes per buffer handed to the worker.
const CHUNK: usize = 256 << 10;

/// Buffers in flight at most: enough to ride out a slow write, few enough
/// that a stalled disk holds back the tar builder after a megabyte.
const IN_FLIGHT: usize = 4;

/// A writer whose bytes are hashed and written into `W` by a worker thread.
pub(crate) struct Offload<W: Write + Send + 'static> {
    buf: Vec<u8>,
    len: u64,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Buffers the worker is done with, to fill again.
    spare: mpsc::Receiver<Vec<u8>>,
    worker: Option<thread::JoinHandle<io::Result<(W, Digest)>>>,
    /// Why the worker stopped, once it did with an error.
    broken: Option<(io::ErrorKind, String)>,
}

impl<W: Write + Send + 'static> Offload<W> {
    /// Starts the worker that writes into `inner`.
    pub(crate) fn new(mut inner: W) -> io::Result<Offload<W>> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (give_back, spare) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("kiln-layer-write".into())
            .spawn(move || {
                let mut hasher = Hasher::new();
                for chunk in rx {
                    hasher.update(&chunk);
                    inner.write_all(&chunk)?;
                    // The builder may be gone already: the buffer is freed.
                    let _ = give_back.send(chunk);
                }
                Ok((inner, hasher.finish().0))
            })?;
        Ok(Offload {
            buf: Vec::with_capacity(CHUNK),
            len: 0,
            tx: Some(tx),
            spare,
            worker: Some(worker),
            broken: None,
        })
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Sends the filled buffer to the worker.
    fn send(&mut self) -> io::Result<()> {
        let next = match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        if !sent {
            // The worker stopped: its error is the one to report.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the layer writer stopped")));
        }
        Ok(())
    }

    /// Waits for the worker; an error it ended with is kept, so every
    /// later call reports it too.
    fn join(&mut self) -> io::Result<(W, Digest)> {
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            match worker.join() {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(e)) => self.broken = Some((e.kind(), e.to_string())),
                Err(_) => {
                    self.broken = Some((io::ErrorKind::Other, "the layer writer panicked".into()))
                }
            }
        }
        let (kind, why) = self
            .broken
            .clone()
            .unwrap_or((io::ErrorKind::Other, "the layer writer stopped".into()));
        Err(io::Error::new(kind, why))
    }

    /// Writes what is left and waits for the worker: the inner writer, the
    /// digest of every byte written, and their count.
    pub(crate) fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        let (inner, digest) = self.join()?;
        Ok((inner, digest, self.len))
    }
}

impl<W: Write + Send + 'static> Write for Offload<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.worker.is_none() {
            return Err(self.join().err().expect("stopped"));
        }
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.len += n as u64;
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for Offload<W> {
    fn drop(&mut self) {
        // Dropped unfinished (an error, a cancelled build): the worker ends
        // once the channel closes, and what it wrote is dropped with it.
        if self.worker.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_hashed_and_counted() {
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let mut w = Offload::new(Vec::new()).unwrap();
        for piece in data.chunks(1000) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.len(), data.len() as u64);
        let (out, digest, len) = w.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!((digest, len), (Digest::of(&data), data.len() as u64));
    }

    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_workers_error_is_reported() {
        let mut w = Offload::new(Full).unwrap();
        let mut result = Ok(());
        for _ in 0..(IN_FLIGHT + 4) * 2 {
            result = result.and(w.write_all(&[0u8; CHUNK / 2]));
        }
        let err = result.and(w.finish().map(|_| ())).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }
}
