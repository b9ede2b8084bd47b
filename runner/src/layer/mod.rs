//! Layers: a [`ChangeSet`] in, a deterministic OCI layer blob out.
//!
//! [`write_layer`] makes one streaming pass: tar entries in path order ->
//! sha256 of the tar (the diff_id) -> gzip/zstd -> sha256 of the blob -> a
//! temp file in the store, renamed to its digest. The uncompressed tar is
//! the layer's pack (for a compressed layer, written beside the blob in the
//! same pass), from which later steps read its files at the offsets the
//! index records: a COPY reads each source file exactly once and writes
//! each byte once into the tar.
//!
//! What makes two builds give the same bytes: entries sorted by path, uid/gid
//! and modes from the change (never from the host), mtimes clamped to
//! `SOURCE_DATE_EPOCH` when set, no user/group names, GNU headers with no
//! access/change times, and fixed compressor settings that use every core
//! without the bytes depending on how many there are (gzip level 6 with
//! zlib-rs in 256 KiB chunks, pigz-style, with a fixed header; zstd level 3
//! in libzstd's multithreaded mode, 4 MiB jobs): see `compress.rs`.
//!
//! Read `writer.rs` for the pass itself and `index.rs` for the saved index.

mod compress;
pub mod index;
mod offload;
mod reader;
mod stream;
pub(crate) mod tarfmt;
mod writer;

use std::fmt;
use std::io::{self, Read};

pub use reader::{
    MAX_EXPANSION_RATIO, MAX_HEADER_BYTES, MAX_LAYER_ENTRIES, MIN_EXPANSION_LIMIT, ReadLimits,
    read_layer, read_layer_limited,
};
pub use stream::LayerStream;
pub use writer::{WrittenLayer, write_layer};

use crate::digest::Digest;
use crate::snapshot::{self, FileRef};
use crate::store::StoreError;

/// The media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The media type of a gzip OCI layer.
pub const MEDIA_TYPE_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of a zstd OCI layer.
pub const MEDIA_TYPE_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// gzip level: zlib's default, what `gzip` and Docker use.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level: the zstd CLI's and BuildKit's default.
pub const ZSTD_LEVEL: i32 = 3;

/// How layer blobs are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// gzip (the default; every runtime reads it).
    #[default]
    Gzip,
    /// zstd (smaller and faster; needs a recent runtime).
    Zstd,
    /// None: the blob is the tar.
    Uncompressed,
}

impl Compression {
    /// Parses `gzip`, `zstd` or `uncompressed`.
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "uncompressed" => Some(Compression::Uncompressed),
            _ => None,
        }
    }

    /// What the step cache key says about the blob's format. It names the
    /// encoding, so that a change of the bytes an encoder gives (gzip in
    /// chunks and zstd multithreaded replaced one-thread streams; each gzip
    /// chunk deflated by a new state, where reused states made some blobs
    /// depend on thread timing; zstd jobs of 4 MiB, not libzstd's 8) makes
    /// old entries miss rather than mix two encodings in one history.
    pub fn cache_id(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip chunked 256k, a new state per chunk",
            Compression::Zstd => "zstd multithreaded, 4 MiB jobs",
            Compression::Uncompressed => "Uncompressed",
        }
    }

    /// The layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => MEDIA_TYPE_GZIP,
            Compression::Zstd => MEDIA_TYPE_ZSTD,
            Compression::Uncompressed => MEDIA_TYPE_TAR,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Uncompressed => "uncompressed",
        })
    }
}

/// Opens a file's contents for a read (shared: a plan and the layer
/// written beside it may each hold one).
pub type Opener = std::sync::Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// The contents of a file in a change set being written.
pub enum Content {
    /// Already in the store.
    Stored(FileRef),
    /// Small contents held in memory (here-documents).
    Bytes(Vec<u8>),
    /// Contents held in memory whose digest is known: a COPY source read
    /// and hashed once, for its cache key, and kept for the writer.
    Hashed {
        /// The contents.
        bytes: Vec<u8>,
        /// Their sha256.
        digest: Digest,
    },
    /// Contents read once from a source of known size (a context file).
    Reader {
        /// The size; the source must yield exactly this many bytes.
        size: u64,
        /// Where to read from, and a name for errors.
        open: Opener,
        /// Shown in errors: where the bytes come from.
        origin: String,
        /// The digest of the bytes when the source was hashed beforehand
        /// (a COPY source, for its cache key). The writer checks that it
        /// read the same bytes, so a file changed in between cannot put
        /// other contents under that key.
        digest: Option<Digest>,
    },
}

impl Content {
    /// A second handle on the same contents that copies no bytes: `None`
    /// for contents held in memory.
    pub fn share(&self) -> Option<Content> {
        match self {
            Content::Stored(f) => Some(Content::Stored(*f)),
            Content::Reader {
                size,
                open,
                origin,
                digest,
            } => Some(Content::Reader {
                size: *size,
                open: std::sync::Arc::clone(open),
                origin: origin.clone(),
                digest: *digest,
            }),
            Content::Bytes(_) | Content::Hashed { .. } => None,
        }
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Content::Stored(f) => f.size,
            Content::Bytes(b) | Content::Hashed { bytes: b, .. } => b.len() as u64,
            Content::Reader { size, .. } => *size,
        }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Stored(r) => write!(f, "Stored({})", r.digest),
            Content::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Content::Hashed { bytes, digest } => {
                write!(f, "Hashed({digest}, {} bytes)", bytes.len())
            }
            Content::Reader { size, origin, .. } => write!(f, "Reader({origin}, {size} bytes)"),
        }
    }
}

/// A change set ready to be written.
pub type PendingChanges = snapshot::ChangeSet<Content>;

/// Options for writing a layer.
#[derive(Clone, Debug, Default)]
pub struct LayerOptions {
    /// Blob compression.
    pub compression: Compression,
    /// Clamp every mtime to at most this (`SOURCE_DATE_EPOCH`).
    pub clamp_mtime: Option<i64>,
    /// The leak guard: search every name, link target and file for the
    /// build's secrets as the layer streams.
    pub guard: Option<LeakGuard>,
    /// Set by Ctrl-C or SIGTERM: the write stops between two reads and
    /// nothing is committed.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Threads that compress (0: one per core). The blob's bytes are the
    /// same for any number.
    pub threads: usize,
}

/// What the layer writer does with secrets it finds. See
/// [`crate::secrets::LeakScanner`].
#[derive(Clone, Debug)]
pub struct LeakGuard {
    /// The search.
    pub scanner: std::sync::Arc<crate::secrets::LeakScanner>,
    /// Fail the layer at the first hit (`true`), or record hits and go on.
    pub fail: bool,
}

/// Errors while writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a source failed.
    #[error("reading {origin}: {source}")]
    Read {
        /// The source.
        origin: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the blob failed.
    #[error("writing a layer: {0}")]
    Write(#[source] io::Error),
    /// A file, name or link target of the layer contains a secret.
    #[error(
        "{path} contains secret {id:?} ({encoding}): a step or COPY put it in the image; the build stops so it is never published (--secret-scan=warn|off to override)"
    )]
    SecretLeak {
        /// Where.
        path: snapshot::ImagePath,
        /// The secret's id.
        id: String,
        /// How it was encoded.
        encoding: &'static str,
    },
    /// A source changed between being hashed and being read.
    #[error("{origin} changed while the build read it; run the build again")]
    Changed {
        /// The source.
        origin: String,
    },
    /// Ctrl-C or SIGTERM arrived while the layer was written.
    #[error("cancelled")]
    Cancelled,
    /// A hard link to a path that is not in the layer.
    #[error("hard link {link} points to {target}, which is not part of the same layer")]
    DanglingHardlink {
        /// The link.
        link: snapshot::ImagePath,
        /// Its target.
        target: snapshot::ImagePath,
    },
    /// A layer read back (from the store or a cache directory) holds an
    /// entry kiln refuses: see `reader.rs`.
    #[error("layer {layer}: entry {entry:?} is refused: {reason}")]
    Untrusted {
        /// The layer blob.
        layer: Digest,
        /// The entry's name as the tar has it.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer read back expands past its limit (a decompression bomb).
    #[error(
        "layer {layer} expands to more than {limit} bytes, more than its size allows: refused as a decompression bomb"
    )]
    Bomb {
        /// The layer blob.
        layer: Digest,
        /// The limit it passed.
        limit: u64,
    },
}
