//! The compressor stage of the layer pipeline, on every core, with output
//! that does not depend on how many there are.
//!
//! gzip is compressed the way pigz does it: the tar is cut into chunks of
//! [`GZIP_CHUNK`] bytes, each chunk is deflated on its own (on a pool of
//! threads) with the last 32 KiB of the chunk before it as a preset
//! dictionary, and ends with a sync flush (an empty stored block) so the
//! raw deflate streams concatenate into one; the last ends the stream. The
//! gzip header is fixed (no name, mtime 0, OS 255) and the trailer's CRC-32
//! and length cover the whole tar. Every chunk's bytes are a function of
//! the tar alone, so one thread and N threads write the same blob.
//!
//! zstd uses libzstd's own multithreaded streaming mode, whose frames are
//! the same for any number of workers from one up (its maintainers' rule;
//! the tests below hold it to it). Zero workers, the single-threaded mode,
//! would give other bytes, so kiln never uses it. Its jobs are of
//! [`ZSTD_JOB`] bytes, half of libzstd's default at level 3.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

use super::Compression;

/// Uncompressed bytes per gzip chunk: large enough that the restart of each
/// chunk's Huffman tables and its 5-byte sync marker cost under 0.1% on
/// text, small enough that a 2 MiB layer already uses two cores.
pub(crate) const GZIP_CHUNK: usize = 256 << 10;

/// Uncompressed bytes per libzstd job. At level 3 the default is 8 MiB;
/// 4 MiB jobs took 6% to 13% less CPU for blobs within 0.3% of the size
/// (measured on tars of Rust sources, shared libraries and the benchmark's
/// small files). Smaller jobs lose more: 2 MiB is 1% larger on the
/// sources, 1 MiB 3% larger and slower.
const ZSTD_JOB: u32 = 4 << 20;

/// deflate's window: the dictionary each chunk is primed with.
const WINDOW: usize = 32 << 10;

/// The gzip header kiln writes: deflate, no flags, mtime 0, no extra
/// flags, OS "unknown", so the bytes never depend on the host.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// How many threads compress: `requested`, or one per core when 0.
pub(crate) fn threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The compressor stage: tar bytes in, blob bytes out to `W`.
pub(crate) enum Encoder<W: Write> {
    Gzip(Box<ParallelGzip<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` on `threads` threads (0: one per core).
    pub(crate) fn new(compression: Compression, w: W, threads: usize) -> io::Result<Encoder<W>> {
        let threads = self::threads(threads);
        Ok(match compression {
            Compression::Gzip => {
                Encoder::Gzip(Box::new(ParallelGzip::new(w, super::GZIP_LEVEL, threads)?))
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, super::ZSTD_LEVEL)?;
                e.include_checksum(true)?;
                e.include_contentsize(false)?;
                // At least one worker: the multithreaded format (above).
                e.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
                e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                Encoder::Zstd(e)
            }
            Compression::Uncompressed => Encoder::Plain(w),
        })
    }

    /// Ends the stream and gives back the sink.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => (*e).finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

/// One chunk to deflate: its bytes, the window before it, and whether it
/// ends the stream.
struct Job {
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// A chunk on its way: deflated inline (one thread) or by a worker.
enum Pending {
    Done(io::Result<Vec<u8>>),
    Worker(mpsc::Receiver<io::Result<Vec<u8>>>),
}

/// Where a worker sends a chunk's deflated bytes.
type Reply = mpsc::SyncSender<io::Result<Vec<u8>>>;

/// The workers, fed through one queue; each job carries the channel its
/// result goes back on, so results are collected in chunk order.
struct Pool {
    jobs: Option<mpsc::Sender<(Job, Reply)>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize, level: u32) -> io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<(Job, Reply)>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let rx = rx.clone();
            let worker = thread::Builder::new()
                .name(format!("kiln-gzip-{n}"))
                .spawn(move || {
                    let mut deflate = Deflate::new(level);
                    loop {
                        // The lock is held only to take the next job.
                        let next = rx.lock().map(|r| r.recv());
                        let Ok(Ok((job, reply))) = next else { return };
                        // The writer may be gone (an error): nothing to do.
                        let _ = reply.send(deflate.chunk(&job));
                    }
                })?;
            workers.push(worker);
        }
        Ok(Pool {
            jobs: Some(tx),
            workers,
        })
    }

    fn submit(&self, job: Job) -> Pending {
        let (reply, result) = mpsc::sync_channel(1);
        match &self.jobs {
            Some(jobs) if jobs.send((job, reply)).is_ok() => Pending::Worker(result),
            _ => Pending::Done(Err(io::Error::other("the gzip workers stopped"))),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it is idle.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Deflates chunks, each with a deflate state of its own.
///
/// A state is made for every chunk, not reset and reused: zlib-rs's reset
/// does not leave a state that deflates exactly as a new one (measured: a
/// 3 MB tar of repetitive text gave 22,024 or 22,027 bytes), so reused
/// states made a chunk's bytes depend on which chunk its worker deflated
/// before, and so on the threads' timing. A new state costs an allocation
/// of about 300 KB per 256 KiB chunk, far less than deflating it.
struct Deflate {
    level: u32,
}

impl Deflate {
    fn new(level: u32) -> Deflate {
        Deflate { level }
    }

    /// The raw deflate bytes of one chunk.
    fn chunk(&mut self, job: &Job) -> io::Result<Vec<u8>> {
        let mut z = flate2::Compress::new(flate2::Compression::new(self.level), false);
        if !job.dictionary.is_empty() {
            z.set_dictionary(&job.dictionary)
                .map_err(io::Error::other)?;
        }
        let flush = if job.last {
            flate2::FlushCompress::Finish
        } else {
            flate2::FlushCompress::Sync
        };
        let mut out = Vec::with_capacity(job.data.len() + job.data.len() / 64 + 64);
        let start = z.total_in();
        loop {
            let consumed = usize::try_from(z.total_in() - start).unwrap_or(usize::MAX);
            let status = z
                .compress_vec(&job.data[consumed..], &mut out, flush)
                .map_err(io::Error::other)?;
            let all_in = usize::try_from(z.total_in() - start).ok() == Some(job.data.len());
            let done = match flush {
                flate2::FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // A sync flush is complete once all input is in and deflate
                // stopped with room to spare (zlib's rule).
                _ => all_in && out.len() < out.capacity(),
            };
            if done {
                return Ok(out);
            }
            out.reserve(out.capacity().max(4096));
        }
    }
}

/// gzip on a pool of threads, deterministic (see the module docs).
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    /// The chunk being filled.
    chunk: Vec<u8>,
    /// The last [`WINDOW`] bytes of the chunk before it.
    window: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    /// Chunks submitted and not yet written, in order.
    pending: VecDeque<Pending>,
    /// None with one thread: chunks are deflated inline.
    pool: Option<Pool>,
    inline: Option<Deflate>,
    /// How many chunks may be in flight before the writer waits.
    depth: usize,
}

impl<W: Write> ParallelGzip<W> {
    fn new(mut out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        out.write_all(&GZIP_HEADER)?;
        let (pool, inline) = if threads > 1 {
            (Some(Pool::new(threads, level)?), None)
        } else {
            (None, Some(Deflate::new(level)))
        };
        Ok(ParallelGzip {
            out,
            chunk: Vec::with_capacity(GZIP_CHUNK),
            window: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
            pending: VecDeque::new(),
            pool,
            inline,
            depth: threads * 2,
        })
    }

    /// Hands the current chunk to a worker (or deflates it here).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(GZIP_CHUNK));
        let keep = data.len().min(WINDOW);
        let next_window = data[data.len() - keep..].to_vec();
        let job = Job {
            dictionary: std::mem::replace(&mut self.window, next_window),
            data,
            last,
        };
        let pending = match (&self.pool, &mut self.inline) {
            (Some(pool), _) => pool.submit(job),
            (None, Some(deflate)) => Pending::Done(deflate.chunk(&job)),
            (None, None) => unreachable!("a ParallelGzip has a pool or an inline state"),
        };
        self.pending.push_back(pending);
        while self.pending.len() > self.depth || (last && !self.pending.is_empty()) {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk and writes it out.
    fn write_oldest(&mut self) -> io::Result<()> {
        let bytes = match self.pending.pop_front() {
            Some(Pending::Done(result)) => result?,
            Some(Pending::Worker(rx)) => rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped"))??,
            None => return Ok(()),
        };
        self.out.write_all(&bytes)
    }

    fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        // ISIZE: the length modulo 2^32, as RFC 1952 says.
        trailer[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        self.pool = None;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // A full chunk goes out only when more bytes follow it: the
            // last chunk, whatever its size, is the one `finish` ends.
            if self.chunk.len() == GZIP_CHUNK {
                self.submit(false)?;
            }
            let take = rest.len().min(GZIP_CHUNK - self.chunk.len());
            self.chunk.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        self.crc.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    /// Chunk boundaries never depend on flushes (that would make the bytes
    /// depend on how the tar was written): this flushes only the sink.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;
