//! Writing and reading content-addressed objects.
//!
//! [`AtomicWriter`] streams into a temp file in the store, hashing as it
//! goes, and `commit` renames it to its digest: a reader can never observe a
//! partial object under a real name. Objects are not fsynced one by one
//! (a layer of 100,000 files would pay 100,000 syncs); instead every read
//! goes through [`BlobReader`], which verifies the digest, so an object torn
//! by a power loss is detected as corrupt, never trusted. `index.json`, the
//! root everything else hangs from, is synced.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Result, Store, StoreError, io_err, open_or};
use crate::digest::{Digest, Hasher, VerifyingReader};

/// Buffer size for store I/O: large enough that syscalls are not the cost.
const IO_BUFFER: usize = 256 << 10;

/// A new object being written; see the module docs.
pub struct AtomicWriter {
    file: BufWriter<NamedTempFile>,
    hasher: Hasher,
    dest_dir: PathBuf,
}

impl AtomicWriter {
    pub(super) fn new(tmp_dir: &Path, dest_dir: PathBuf) -> Result<AtomicWriter> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(tmp_dir)
            .map_err(io_err("creating a temp file in", tmp_dir))?;
        Ok(AtomicWriter {
            file: BufWriter::with_capacity(IO_BUFFER, tmp),
            hasher: Hasher::new(),
            dest_dir,
        })
    }

    /// Writes all of `bytes`.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_all(bytes)
            .map_err(io_err("writing", self.file.get_ref().path()))
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Names the object by its digest, replacing whatever had that name:
    /// an existing copy may be damaged (a flipped byte, a torn write), and
    /// the bytes just hashed are known good, so producing an object again
    /// heals it. Where the rename cannot replace a file (Windows, while
    /// another process has it open), the existing copy is kept if it
    /// verifies.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (digest, len) = self.hasher.finish();
        let tmp = self.file.into_inner().map_err(|e| {
            let (source, writer) = e.into_parts();
            StoreError::Io {
                action: "writing",
                path: writer.get_ref().path().to_path_buf(),
                source,
            }
        })?;
        let dest = self.dest_dir.join(digest.hex());
        if let Err(e) = tmp.persist(&dest)
            && !is_intact(&dest, &digest, len)
        {
            return Err(io_err("renaming into", &dest)(e.error));
        }
        Ok((digest, len))
    }
}

impl Write for AtomicWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A stored object being read; fails with `InvalidData` at the end if its
/// bytes do not match the digest it is stored under.
pub struct BlobReader {
    inner: VerifyingReader<BufReader<File>>,
    digest: Digest,
    path: PathBuf,
    /// Where to record damage found while reading, and the object's kind.
    watch: Option<(Store, &'static str)>,
}

impl BlobReader {
    pub(super) fn open(
        path: PathBuf,
        digest: Digest,
        size: Option<u64>,
        missing: impl FnOnce() -> StoreError,
    ) -> Result<BlobReader> {
        let file = open_or(&path, missing)?;
        if let Some(size) = size {
            let actual = file.metadata().map_err(io_err("reading", &path))?.len();
            if actual != size {
                return Err(StoreError::Corrupt {
                    path,
                    reason: format!("{actual} bytes, expected {size}"),
                });
            }
        }
        Ok(BlobReader {
            inner: VerifyingReader::new(BufReader::with_capacity(IO_BUFFER, file), digest, size),
            digest,
            path,
            watch: None,
        })
    }

    /// Records damage found while reading in `store`'s record.
    pub(super) fn watched(mut self, store: &Store, what: &'static str) -> BlobReader {
        self.watch = Some((store.clone(), what));
        self
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::InvalidData
            && let Some((store, what)) = self.watch.take()
        {
            store.note_damage(what, self.digest, self.path.clone(), e.to_string());
        }
        result
    }
}

/// Whether the file at `path` holds exactly the `len` bytes of `digest`.
pub(super) fn is_intact(path: &Path, digest: &Digest, len: u64) -> bool {
    verify_file(path, digest, Some(len)).is_ok()
}

/// Reads the file at `path` through, checking it holds the bytes of
/// `digest` (and `len` of them, if given); the error says what is wrong.
pub(super) fn verify_file(path: &Path, digest: &Digest, len: Option<u64>) -> io::Result<()> {
    let file = File::open(path)?;
    let mut reader = VerifyingReader::new(BufReader::with_capacity(IO_BUFFER, file), *digest, len);
    io::copy(&mut reader, &mut io::sink()).map(|_| ())
}

/// Removes a file, treating "already gone" as success.
pub(super) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e)),
    }
}
