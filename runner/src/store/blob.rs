//! Writing and reading content-addressed objects.
//!
//! [`AtomicWriter`] streams into a temp file, hashing as it goes, and
//! `commit` names it by its digest: a reader can never observe a partial
//! object under a real name. Objects are not fsynced one by one (a layer of
//! 100,000 files would pay 100,000 syncs); instead every read goes through
//! [`BlobReader`], which verifies the digest, so an object torn by a power
//! loss is detected as corrupt, never trusted. `index.json`, the root
//! everything else hangs from, is synced.
//!
//! The temp file has no name while it is written. On Linux it is an
//! `O_TMPFILE` file, linked into place at `commit` through
//! `/proc/self/fd`: a process killed mid-write leaves nothing on disk, and
//! a layer the leak guard refuses is never named at all. Where that is not
//! available, a *private* writer (for layers, which hold what steps wrote)
//! still writes into an unlinked file and copies it to a named temp file
//! only at `commit`, after the scan passed; a plain writer (manifests,
//! configs, imports) writes a named temp file in the process's own temp
//! directory, which the next start sweeps if the process dies.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Result, Store, StoreError, io_err, open_or};
use crate::digest::{Digest, Hasher, VerifyingReader};

/// Buffer size for store I/O: large enough that syscalls are not the cost.
const IO_BUFFER: usize = 256 << 10;

/// Where an object's bytes go until it is committed.
enum Spool {
    /// A file with no name (see the module docs).
    Unnamed(File),
    /// A named temp file in the process's temp directory.
    Named(NamedTempFile),
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Spool::Unnamed(f) => f.write(buf),
            Spool::Named(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Spool::Unnamed(f) => f.write_all(buf),
            Spool::Named(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Spool::Unnamed(f) => f.flush(),
            Spool::Named(f) => f.flush(),
        }
    }
}

/// A new object being written; see the module docs.
pub struct AtomicWriter {
    file: BufWriter<Spool>,
    /// `None` once the caller took over hashing ([`AtomicWriter::hashed_by_caller`]).
    hasher: Option<Hasher>,
    len: u64,
    tmp_dir: PathBuf,
    dest_dir: PathBuf,
}

impl AtomicWriter {
    pub(super) fn new(tmp_dir: &Path, dest_dir: PathBuf, private: bool) -> Result<AtomicWriter> {
        let spool = if cfg!(target_os = "linux") || private {
            // On Linux `tempfile` opens with O_TMPFILE (falling back to
            // create-and-unlink on filesystems without it). macOS has no
            // O_TMPFILE: there the file is created and unlinked at once, so
            // it has no name either, only no way to link it back (`commit`
            // copies). On Windows it is a delete-on-close file.
            Spool::Unnamed(
                tempfile::tempfile_in(tmp_dir)
                    .map_err(io_err("creating a temp file in", tmp_dir))?,
            )
        } else {
            Spool::Named(named_temp(tmp_dir)?)
        };
        Ok(AtomicWriter {
            file: BufWriter::with_capacity(IO_BUFFER, spool),
            hasher: Some(Hasher::new()),
            len: 0,
            tmp_dir: tmp_dir.to_path_buf(),
            dest_dir,
        })
    }

    /// Writes all of `bytes`.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_dir.clone();
        self.write_all(bytes)
            .map_err(io_err("writing a temp file in", &tmp))
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stops hashing, for a caller that hashes the very same bytes on
    /// their way in (an uncompressed layer: the blob is the tar, whose
    /// digest the layer writer computes anyway) and names the object with
    /// [`AtomicWriter::commit_as`]. Saves hashing every byte twice.
    pub fn hashed_by_caller(mut self) -> AtomicWriter {
        debug_assert_eq!(self.len, 0, "before anything is written");
        self.hasher = None;
        self
    }

    /// Names the object by `digest`, which the caller computed over
    /// exactly the bytes written (see [`AtomicWriter::hashed_by_caller`]).
    pub fn commit_as(mut self, digest: Digest) -> Result<(Digest, u64)> {
        if let Some(hasher) = self.hasher.take() {
            let (own, _) = hasher.finish();
            assert_eq!(own, digest, "the caller's digest is the bytes' digest");
        }
        self.seal_with(digest)?.commit()
    }

    /// Names the object by its digest, replacing whatever had that name:
    /// an existing copy may be damaged (a flipped byte, a torn write), and
    /// the bytes just hashed are known good, so producing an object again
    /// heals it. Where the rename cannot replace a file (Windows, while
    /// another process has it open), the existing copy is kept if it
    /// verifies.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.seal()?.commit()
    }

    /// Finishes writing without naming the object: the caller learns its
    /// digest and decides whether to [`Sealed::commit`] it (dropping it
    /// leaves nothing behind). `kiln load` holds every object of an
    /// archive this way until the archive has been checked whole.
    pub fn seal(mut self) -> Result<Sealed> {
        let (digest, _) = self
            .hasher
            .take()
            .expect("an AtomicWriter hashed by its caller is committed with commit_as")
            .finish();
        self.seal_with(digest)
    }

    fn seal_with(self, digest: Digest) -> Result<Sealed> {
        let len = self.len;
        let tmp_dir = self.tmp_dir;
        let spool = self.file.into_inner().map_err(|e| StoreError::Io {
            action: "writing a temp file in",
            path: tmp_dir.clone(),
            source: e.into_error(),
        })?;
        Ok(Sealed {
            spool,
            digest,
            len,
            tmp_dir,
            dest_dir: self.dest_dir,
        })
    }
}

/// A complete object not yet named (see [`AtomicWriter::seal`]).
pub struct Sealed {
    spool: Spool,
    digest: Digest,
    len: u64,
    tmp_dir: PathBuf,
    dest_dir: PathBuf,
}

impl Sealed {
    /// The object's digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the object back from the start (to parse a small document).
    pub fn read_to_vec(&mut self, max: u64) -> io::Result<Vec<u8>> {
        let file: &mut File = match &mut self.spool {
            Spool::Unnamed(f) => f,
            Spool::Named(f) => f.as_file_mut(),
        };
        file.seek(SeekFrom::Start(0))?;
        let mut out = Vec::new();
        (&mut *file).take(max).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Names the object by its digest; see [`AtomicWriter::commit`].
    pub fn commit(self) -> Result<(Digest, u64)> {
        let Sealed {
            spool,
            digest,
            len,
            tmp_dir,
            dest_dir,
        } = self;
        let dest = dest_dir.join(digest.hex());
        // An unnamed file is linked straight into place: one system call,
        // the common case for a new object. When the name is taken (the
        // object exists, perhaps damaged) it is linked under a temp name
        // and renamed over it: a link cannot replace a file, a rename can.
        #[cfg(target_os = "linux")]
        if let Spool::Unnamed(file) = &spool
            && link_unnamed(file, &dest).is_ok()
        {
            return Ok((digest, len));
        }
        let tmp = match spool {
            Spool::Named(tmp) => tmp,
            Spool::Unnamed(file) => name_unnamed(file, &tmp_dir)?,
        };
        if let Err(e) = tmp.persist(&dest)
            && !is_intact(&dest, &digest, len)
        {
            return Err(io_err("renaming into", &dest)(e.error));
        }
        Ok((digest, len))
    }
}

fn named_temp(tmp_dir: &Path) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(tmp_dir)
        .map_err(io_err("creating a temp file in", tmp_dir))
}

/// Gives a complete, unnamed temp file a name in `tmp_dir`: a link where
/// the OS can make one, else a copy.
fn name_unnamed(mut file: File, tmp_dir: &Path) -> Result<NamedTempFile> {
    #[cfg(target_os = "linux")]
    if let Some(named) = link_unnamed_in(&file, tmp_dir) {
        return Ok(named);
    }
    let mut named = named_temp(tmp_dir)?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| io::copy(&mut file, named.as_file_mut()))
        .map_err(io_err("copying into", named.path()))?;
    Ok(named)
}

/// Links an `O_TMPFILE` file at `path` through `/proc/self/fd`; fails when
/// `path` exists, or when the file cannot be linked (no `/proc`, or it was
/// created and unlinked, as on filesystems without `O_TMPFILE`).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        source.as_str(),
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )?;
    Ok(())
}

/// Links an `O_TMPFILE` file under a free temp name in `tmp_dir`; `None`
/// when it cannot be linked (the caller copies instead).
#[cfg(target_os = "linux")]
fn link_unnamed_in(file: &File, tmp_dir: &Path) -> Option<NamedTempFile> {
    // `tempfile` picks a free name and hands it back as a `TempPath`, which
    // deletes it if the commit fails before the rename.
    let placeholder = named_temp(tmp_dir).ok()?;
    let (_, path) = placeholder.into_parts();
    let _ = fs::remove_file(&path);
    link_unnamed(file, &path).ok()?;
    let file = File::open(&path).ok()?;
    Some(NamedTempFile::from_parts(file, path))
}

impl Write for AtomicWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(buf);
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A stored object being read; fails with `InvalidData` at the end if its
/// bytes do not match the digest it is stored under.
pub struct BlobReader {
    inner: VerifyingReader<BufReader<io::Take<File>>>,
    path: PathBuf,
    /// Where to record damage found while reading: the store, the kind and
    /// digest of the object that holds the bytes.
    watch: Option<(Store, &'static str, Digest)>,
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
        let file = file.take(u64::MAX);
        Ok(BlobReader {
            inner: VerifyingReader::new(BufReader::with_capacity(IO_BUFFER, file), digest, size),
            path,
            watch: None,
        })
    }

    /// Reads the `len` bytes at `offset` of the file at `path` (a file in
    /// a pack), verified against `digest`.
    pub(super) fn open_range(
        path: PathBuf,
        digest: Digest,
        offset: u64,
        len: u64,
        missing: impl FnOnce() -> StoreError,
    ) -> Result<BlobReader> {
        let mut file = open_or(&path, missing)?;
        let actual = file.metadata().map_err(io_err("reading", &path))?.len();
        if offset.checked_add(len).is_none_or(|end| end > actual) {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("{actual} bytes, too short for {len} bytes at offset {offset}"),
            });
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(io_err("reading", &path))?;
        let file = file.take(len);
        Ok(BlobReader {
            inner: VerifyingReader::new(
                BufReader::with_capacity(IO_BUFFER, file),
                digest,
                Some(len),
            ),
            path,
            watch: None,
        })
    }

    /// Records damage found while reading in `store`'s record, against
    /// the object `what` `digest` (the pack, for a file in one).
    pub(super) fn watched(
        mut self,
        store: &Store,
        what: &'static str,
        digest: Digest,
    ) -> BlobReader {
        self.watch = Some((store.clone(), what, digest));
        self
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::InvalidData
            && let Some((store, what, digest)) = self.watch.take()
        {
            store.note_damage(what, digest, self.path.clone(), e.to_string());
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
