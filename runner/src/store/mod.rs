//! The content-addressed store: the one part of kiln that owns a directory.
//!
//! Layout (the root is a valid OCI image layout, so `skopeo inspect
//! oci:STORE:NAME` works on it directly):
//!
//! ```text
//! STORE/oci-layout                      {"imageLayoutVersion": "1.0.0"}
//! STORE/index.json                      tagged images (org.opencontainers.image.ref.name)
//! STORE/blobs/sha256/<hex>              manifests, configs, layers, and packs
//! STORE/kiln/version                    kiln's own format version
//! STORE/kiln/files/sha256/<hex>         loose file contents (stores of format 1)
//! STORE/kiln/layers/sha256/<hex>.json   per-layer index of changes, by diff_id
//! STORE/kiln/steps/<key>.json           the step cache: a cache key's layer (`steps.rs`)
//! STORE/kiln/secret-key                 random key of the secret HMACs in cache keys
//! STORE/kiln/cache/<id>/                RUN --mount=type=cache directories
//! STORE/kiln/tmp/<pid>-<nonce>/         one process's temp files (`tmp.rs`); swept when dead
//! STORE/kiln/lock                       builds hold it shared, prune exclusive
//! STORE/kiln/index.lock                 serializes index.json updates
//! ```
//!
//! A file's contents are read from its layer's *pack*: the layer's
//! uncompressed tar, a blob named by its diff_id (for an uncompressed layer
//! the layer blob itself; for a compressed one, written beside it as the
//! layer is written or read), at the offset the layer index records
//! ([`FileRef::at`]). A layer's files thus cost one sequential write, not a
//! file each. Contents that belong to no layer, and those of stores written
//! by kilns before packs (format 1, still read), are *loose*: a file each
//! under `kiln/files`.
//!
//! Every write goes to a temp file (unlinked where the OS allows, else in
//! the process's own directory under `kiln/tmp`), is hashed while written
//! and named into place: a crash leaves at worst a temp file the next start
//! sweeps away, never a partial blob under a real name. Every read of a blob or file content is
//! verified against its digest. Read `blob.rs` for the writers, `index.rs`
//! for tags.
//!
//! The store heals: writing an object again replaces a damaged copy, and a
//! damaged layer index is rebuilt from its blob. A reader that meets a
//! damaged or missing object records it as [`Damage`] in the handle it
//! went through ([`Store::watched`]), so a step whose guest saw only "I/O
//! error" can say what is damaged and how to repair it (`kiln check`,
//! in `check.rs` and `repair.rs`).

mod blob;
mod check;
mod index;
mod lock;
mod prune;
mod repair;
mod steps;
mod tmp;
mod verified;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use blob::{AtomicWriter, BlobReader, Sealed};
pub use check::{CheckCounts, CheckOptions, CheckReport, Finding, Object, Repair};
pub use index::{
    Descriptor, INDEX_MEDIA_TYPE, ImageRef, MANIFEST_MEDIA_TYPE, REF_NAME, RefError, TaggedImage,
    normalize_name,
};
pub use lock::StoreLock;
pub use prune::{PruneOptions, PruneReport};
pub use steps::StepEntry;
pub use tmp::SweepReport;

use crate::digest::Digest;
use crate::snapshot::FileRef;

/// Version of kiln's private part of the store (`kiln/`). Format 2 added
/// packs ([`FileRef::at`]); a format 1 store is read as it is and marked 2
/// when opened, so an older kiln refuses it instead of missing contents.
const FORMAT_VERSION: &str = "2";

/// Formats this kiln reads.
const READABLE_FORMATS: [&str; 2] = ["1", "2"];

/// JSON documents (manifests, configs, indexes) larger than this are refused
/// when read: real ones are kilobytes, and reading is into memory.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Errors from the store, each naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a store path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What kiln was doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A blob or file the store should have is missing.
    #[error("{what} {digest} is missing from the store at {root}")]
    Missing {
        /// What kind of object.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The store root.
        root: PathBuf,
    },
    /// A stored document that does not parse.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A store made by an incompatible kiln.
    #[error("{path} has store format {found:?}; this kiln reads format {FORMAT_VERSION}")]
    Version {
        /// The version file.
        path: PathBuf,
        /// What it says.
        found: String,
    },
    /// An image name that is not in the store.
    #[error(transparent)]
    Ref(#[from] RefError),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An open store: a root path, cheap to clone and share across a build.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// This process's temp directory, removed with the last clone.
    session: Arc<tmp::Session>,
    /// The first damaged object a reader met through this handle (and its
    /// clones); see [`Store::watched`].
    damage: Arc<OnceLock<Damage>>,
}

/// A damaged or missing object in the store, as a reader met it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the store is damaged: {what} {digest} ({}): {reason}; run `kiln check --repair` to repair it",
    path.display()
)]
pub struct Damage {
    /// What kind of object (`file content`, `blob`).
    pub what: &'static str,
    /// Its digest.
    pub digest: Digest,
    /// Its path.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl Store {
    /// Opens the store at `root`, creating an empty one if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let tmp_root = root.join("kiln/tmp");
        for dir in [
            root.join("blobs/sha256"),
            root.join("kiln/files/sha256"),
            root.join("kiln/layers/sha256"),
            tmp_root.clone(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        // What killed processes left is removed before anything else runs.
        let idle = StoreLock::try_exclusive(&root.join("kiln/lock"));
        tmp::sweep(&tmp_root, idle.is_some());
        drop(idle);
        let store = Store {
            session: Arc::new(tmp::Session::create(&tmp_root)?),
            root,
            damage: Arc::default(),
        };
        let version = store.kiln_dir().join("version");
        match fs::read_to_string(&version) {
            Ok(v) if v.trim() == FORMAT_VERSION => {}
            Ok(v) if READABLE_FORMATS.contains(&v.trim()) => {
                store.write_file_atomic(&version, format!("{FORMAT_VERSION}\n").as_bytes())?;
            }
            Ok(v) => {
                return Err(StoreError::Version {
                    path: version,
                    found: v.trim().to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                store.write_file_atomic(&version, format!("{FORMAT_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(io_err("reading", &version)(e)),
        }
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_file_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.index_path().exists() {
            let _guard = store.lock_index()?;
            if !store.index_path().exists() {
                store.write_index(&index::Index::default())?;
            }
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A handle on the same store with its own record of [`Damage`]: give
    /// one to a step, then ask it [`Store::damage`] when the step ends.
    pub fn watched(&self) -> Store {
        Store {
            root: self.root.clone(),
            session: Arc::clone(&self.session),
            damage: Arc::default(),
        }
    }

    /// The first damaged or missing object a reader met through this
    /// handle or its clones.
    pub fn damage(&self) -> Option<Damage> {
        self.damage.get().cloned()
    }

    fn note_damage(&self, what: &'static str, digest: Digest, path: PathBuf, reason: String) {
        let _ = self.damage.set(Damage {
            what,
            digest,
            path,
            reason,
        });
    }

    /// Records the damage a failed open reports, and passes the error on.
    fn noting(
        &self,
        what: &'static str,
        digest: Digest,
        path: PathBuf,
        err: StoreError,
    ) -> StoreError {
        let reason = match &err {
            StoreError::Missing { .. } => Some("missing".to_string()),
            StoreError::Corrupt { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        if let Some(reason) = reason {
            self.note_damage(what, digest, path, reason);
        }
        err
    }

    fn kiln_dir(&self) -> PathBuf {
        self.root.join("kiln")
    }

    /// Where this process's named temp files go (its own directory, swept
    /// when the process is gone; see `tmp.rs`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.session.dir().to_path_buf()
    }

    /// Removes the temp files of dead kiln processes; with `idle` (the
    /// caller holds the store lock exclusively) loose ones of older kilns
    /// too. Opening a store already does this.
    pub(crate) fn sweep_temps(&self, idle: bool) -> SweepReport {
        tmp::sweep(&self.kiln_dir().join("tmp"), idle)
    }

    /// Path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Path of loose file contents (which may not exist).
    pub fn content_path(&self, digest: &Digest) -> PathBuf {
        self.kiln_dir().join("files/sha256").join(digest.hex())
    }

    /// Where a file's bytes are: the file holding them and the offset of
    /// the first (see the module docs on packs).
    pub fn content_at(&self, file: &FileRef) -> (PathBuf, u64) {
        match file.at {
            Some(packed) => (self.blob_path(&packed.layer), packed.offset),
            None => (self.content_path(&file.digest), 0),
        }
    }

    fn layer_index_path(&self, diff_id: &Digest) -> PathBuf {
        self.kiln_dir()
            .join("layers/sha256")
            .join(format!("{}.json", diff_id.hex()))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Deletes a blob found corrupt, so it can be written again.
    pub fn discard_blob(&self, digest: &Digest) -> Result<()> {
        self.forget_blob_good(digest);
        blob::remove_if_exists(&self.blob_path(digest))
    }

    /// Whether the blob exists.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob; `commit` names it by its digest.
    pub fn blob_writer(&self) -> Result<AtomicWriter> {
        AtomicWriter::new(&self.tmp_dir(), self.root.join("blobs/sha256"), false)
    }

    /// A writer for new loose file contents, as format 1 stores hold them
    /// (kiln itself writes packs now); `commit` names them by their digest.
    #[cfg(test)]
    pub fn content_writer(&self) -> Result<AtomicWriter> {
        AtomicWriter::new(&self.tmp_dir(), self.kiln_dir().join("files/sha256"), false)
    }

    /// A writer for a blob that may hold what a step wrote (a layer): its
    /// bytes never sit in a named file until `commit`, even on hosts
    /// without unlinked files that can be named later. See `blob.rs`.
    pub fn private_blob_writer(&self) -> Result<AtomicWriter> {
        AtomicWriter::new(&self.tmp_dir(), self.root.join("blobs/sha256"), true)
    }

    /// Stores `bytes` as a blob and returns its digest. A damaged copy
    /// already there is replaced.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !holds(&self.blob_path(&digest), bytes) {
            let mut w = self.blob_writer()?;
            w.write_bytes(bytes)?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// Stores `bytes` as loose file contents (see
    /// [`Store::content_writer`]) and returns their digest. A damaged copy
    /// already there is replaced.
    #[cfg(test)]
    pub fn put_content(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !holds(&self.content_path(&digest), bytes) {
            let mut w = self.content_writer()?;
            w.write_bytes(bytes)?;
            w.commit()?;
        }
        Ok(digest)
    }

    /// Opens a blob for reading; the reader fails at the end if the bytes do
    /// not match the digest.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.blob_path(digest);
        BlobReader::open(path.clone(), *digest, None, || StoreError::Missing {
            what: "blob",
            digest: *digest,
            root: self.root.clone(),
        })
        .map(|r| r.watched(self, "blob", *digest))
        .map_err(|e| self.noting("blob", *digest, path, e))
    }

    /// Reads a whole blob (a JSON document) into memory, verified.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let mut out = Vec::new();
        self.open_blob(digest)?
            .take(MAX_JSON_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(io_err("reading", &path))?;
        if out.len() as u64 > MAX_JSON_BYTES {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("larger than {MAX_JSON_BYTES} bytes"),
            });
        }
        Ok(out)
    }

    /// Reads and parses a JSON blob.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: self.blob_path(digest),
            reason: e.to_string(),
        })
    }

    /// Opens a file's contents, verified against the digest and size.
    pub fn open_content(&self, file: &FileRef) -> Result<BlobReader> {
        let (path, offset) = self.content_at(file);
        let (what, digest) = match file.at {
            Some(packed) => ("layer pack", packed.layer),
            None => ("file content", file.digest),
        };
        let missing = || StoreError::Missing {
            what,
            digest,
            root: self.root.clone(),
        };
        let reader = match file.at {
            Some(_) => {
                BlobReader::open_range(path.clone(), file.digest, offset, file.size, missing)
            }
            None => BlobReader::open(path.clone(), file.digest, Some(file.size), missing),
        };
        // Damage is recorded against the object holding the bytes, which
        // is what `kiln check --repair` rebuilds.
        reader
            .map(|r| r.watched(self, what, digest))
            .map_err(|e| self.noting(what, digest, path, e))
    }

    /// Where the digests of context directory `root`'s files are kept
    /// (see [`crate::context::StatCache`]).
    pub fn context_cache_file(&self, root: &Path) -> PathBuf {
        crate::context::StatCache::file_for(&self.kiln_dir().join("contexts"), root)
    }

    /// Whether file contents with this digest are stored.
    pub fn has_content(&self, digest: &Digest) -> bool {
        self.content_path(digest).is_file()
    }

    /// Saves the change index of a layer, by its diff_id, replacing a
    /// damaged one.
    pub fn put_layer_index(
        &self,
        diff_id: &Digest,
        changes: &crate::snapshot::ChangeSet,
    ) -> Result<()> {
        let path = self.layer_index_path(diff_id);
        let json = crate::layer::index::to_json(diff_id, changes);
        if holds(&path, &json) {
            return Ok(());
        }
        self.write_file_unsynced(&path, &json)
    }

    /// Loads the change index of a layer, if kiln has one.
    pub fn layer_index(&self, diff_id: &Digest) -> Result<Option<crate::snapshot::ChangeSet>> {
        let path = self.layer_index_path(diff_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        crate::layer::index::from_json(diff_id, &bytes)
            .map(Some)
            .map_err(|reason| StoreError::Corrupt { path, reason })
    }

    /// Writes `bytes` to `path` through a temp file, a sync and a rename:
    /// for what must survive a power loss whole (`index.json`, the root of
    /// every image, and the store's own settings).
    pub(crate) fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.replace_file(path, bytes, true)
    }

    /// Writes `bytes` to `path` through a temp file and a rename, without
    /// a sync: for records kiln checks when it reads them and rebuilds when
    /// they are damaged or gone (step cache entries, layer change indexes).
    /// A crash can lose or tear one, which costs a cache miss, never a
    /// wrong result; a sync each would cost a cached 20-step rebuild
    /// 20 disk flushes.
    pub(crate) fn write_file_unsynced(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.replace_file(path, bytes, false)
    }

    fn replace_file(&self, path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.tmp_dir())
            .map_err(io_err("creating a temp file in", &self.tmp_dir()))?;
        io::Write::write_all(&mut tmp, bytes).map_err(io_err("writing", tmp.path()))?;
        // fdatasync on Linux; on macOS std makes it fcntl(F_FULLFSYNC), as it
        // must be there (a plain fsync leaves the bytes in the drive's
        // cache); FlushFileBuffers on Windows.
        if sync {
            tmp.as_file().sync_data().map_err(io_err("syncing", path))?;
        }
        // rename(2) replaces atomically on Linux and macOS. On Windows
        // tempfile calls MoveFileExW(MOVEFILE_REPLACE_EXISTING): atomic too,
        // but it fails (an error, never a torn file) while another process
        // holds the target open without FILE_SHARE_DELETE (kiln's own
        // handles share it), or on a path over 260 characters.
        tmp.persist(path)
            .map_err(|e| io_err("renaming into", path)(e.error))?;
        Ok(())
    }

    /// Takes the store lock shared: builds hold it so that `prune` (which
    /// takes it exclusively) never deletes what a running build is writing.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        StoreLock::acquire(&self.kiln_dir().join("lock"), false)
    }

    /// Takes the store lock exclusively (prune).
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        StoreLock::acquire(&self.kiln_dir().join("lock"), true)
    }

    fn lock_index(&self) -> Result<StoreLock> {
        StoreLock::acquire(&self.kiln_dir().join("index.lock"), true)
    }

    /// The directory of cache mount `id` (created if missing). Ids are
    /// hashed into names, so any id is a valid, collision-free directory.
    pub fn cache_dir(&self, id: &str) -> Result<PathBuf> {
        let dir = self
            .kiln_dir()
            .join("cache")
            .join(Digest::of(id.as_bytes()).hex());
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(dir)
    }

    /// Size of a blob on disk.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        Ok(fs::metadata(&path).map_err(io_err("reading", &path))?.len())
    }
}

/// Whether `path` already holds exactly `bytes`: a small object kiln is
/// about to write again needs no write unless its copy is damaged.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64)
        && fs::read(path).is_ok_and(|b| b == bytes)
}

/// Opens `path` for reading, mapping "not found" to `missing()`.
fn open_or(path: &Path, missing: impl FnOnce() -> StoreError) -> Result<File> {
    match File::open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(io_err("opening", path)(e)),
    }
}

#[cfg(test)]
mod heal_tests;
#[cfg(test)]
mod tests;
