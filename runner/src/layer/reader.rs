//! Reading a layer blob back into a [`ChangeSet`], for images kiln did not
//! build (copied into the store by skopeo, say), layers imported from a
//! `--cache-from` directory, or layers whose index was lost.
//!
//! The blob is verified (digest), decompressed by media type, and its tar
//! entries become changes: `.wh.NAME` a whiteout, `.wh..wh..opq` an opaque
//! directory, a file a reference into the layer's pack (its uncompressed
//! tar, by diff_id: for a compressed blob, written as it is read). The
//! uncompressed stream is hashed on the way and must equal the diff_id the
//! image config promises; only then is the pack named.
//!
//! Such layers are untrusted input, so what a step sees is what kiln would
//! ship: an entry whose name has a `..` component, a hard link to anything
//! but a file earlier in the same layer, a symbolic link whose relative
//! target climbs above the root, a device node, a FIFO or any other entry
//! type kiln cannot represent (sparse files) is refused with an error naming
//! the entry ([`LayerError::Untrusted`]). A leading `/` or `./`
//! is read as the layer root, as every runtime does. Reading stops past
//! [`ReadLimits`]: a number of entries and a number of uncompressed bytes
//! derived from the blob's size, so a decompression bomb is refused
//! ([`LayerError::Bomb`]) instead of filling the disk; and the headers of
//! one entry (long names and pax records, which the tar crate holds in
//! memory) stop at [`MAX_HEADER_BYTES`].

use std::cell::Cell;
use std::io::{self, Read, Write};

use tar::EntryType;

use super::{LayerError, MEDIA_TYPE_GZIP, MEDIA_TYPE_TAR, MEDIA_TYPE_ZSTD};
use crate::digest::{Digest, Hasher, HashingWriter};
use crate::snapshot::{Change, ChangeSet, FileRef, ImagePath, MAX_PATH_BYTES, Meta, Node, Packed};
use crate::store::{AtomicWriter, Descriptor, Store, StoreError};

/// Docker's media types, found in images converted by skopeo and friends.
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How many times its blob's size a layer may expand to. Real layers
/// compress 2:1 to 10:1 (text and binaries), files of zeros a few hundred
/// to one; 100 keeps every real layer above 10 MiB, while a 14 MB gzip bomb
/// that would expand to 3 GiB stops at 1.4 GB.
pub const MAX_EXPANSION_RATIO: u64 = 100;

/// Bytes any layer may expand to whatever its blob's size, so small layers
/// holding a large sparse or zero-filled file still read.
pub const MIN_EXPANSION_LIMIT: u64 = 1 << 30;

/// Most entries one layer may hold: twice the default `--step-max-files`,
/// so every layer kiln writes reads back, while the change set held in
/// memory stays a few hundred MiB at worst.
pub const MAX_LAYER_ENTRIES: usize = 2_000_000;

/// What reading one layer may produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Uncompressed bytes (the tar stream, headers included).
    pub max_bytes: u64,
    /// Tar entries.
    pub max_entries: usize,
}

impl ReadLimits {
    /// The limits for a blob of `compressed` bytes:
    /// `max(compressed * MAX_EXPANSION_RATIO, MIN_EXPANSION_LIMIT)` bytes
    /// and [`MAX_LAYER_ENTRIES`] entries.
    pub fn for_blob(compressed: u64) -> ReadLimits {
        ReadLimits {
            max_bytes: compressed
                .saturating_mul(MAX_EXPANSION_RATIO)
                .max(MIN_EXPANSION_LIMIT),
            max_entries: MAX_LAYER_ENTRIES,
        }
    }
}

/// Reads the layer `blob` (whose uncompressed digest must be `diff_id`) into
/// a change set, storing its pack, under [`ReadLimits::for_blob`].
pub fn read_layer(
    store: &Store,
    blob: &Descriptor,
    diff_id: &Digest,
) -> Result<ChangeSet, LayerError> {
    let path = store.blob_path(&blob.digest);
    // The size on disk, not the descriptor's: the descriptor is as untrusted
    // as the blob, and the blob is verified against its digest as it is read.
    let compressed = std::fs::metadata(&path).map_or(0, |m| m.len());
    read_layer_limited(store, blob, diff_id, ReadLimits::for_blob(compressed))
}

/// [`read_layer`] with explicit limits.
pub fn read_layer_limited(
    store: &Store,
    blob: &Descriptor,
    diff_id: &Digest,
    limits: ReadLimits,
) -> Result<ChangeSet, LayerError> {
    let raw = store.open_blob(&blob.digest)?;
    let decompressed: Box<dyn Read> = match blob.media_type.as_str() {
        MEDIA_TYPE_GZIP | DOCKER_GZIP => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        MEDIA_TYPE_ZSTD => {
            Box::new(zstd::stream::read::Decoder::new(raw).map_err(LayerError::Write)?)
        }
        MEDIA_TYPE_TAR => Box::new(raw),
        other => {
            return Err(bad(blob, format!("unsupported layer media type {other:?}")));
        }
    };
    // An uncompressed blob is its own pack; a compressed one's is written
    // as it is decompressed (and replaces a damaged copy when committed).
    let pack = match blob.media_type.as_str() {
        MEDIA_TYPE_TAR => None,
        _ => Some(store.blob_writer()?.hashed_by_caller()),
    };
    let headers = HeaderBudget::default();
    let mut hashing = HashingReader {
        inner: decompressed,
        hasher: Hasher::new(),
        read: 0,
        limit: limits.max_bytes,
        headers: &headers,
        pack,
    };
    let over = |hashing: &HashingReader<'_, _>| hashing.read > hashing.limit;
    let read = read_entries(blob, diff_id, &mut hashing, limits.max_entries, &headers);
    let changes = match read {
        Err(_) if over(&hashing) => return Err(bomb(blob, limits.max_bytes)),
        other => other?,
    };
    // Hash whatever follows the end-of-archive marker too: diff_id covers it.
    if let Err(e) = io::copy(&mut hashing, &mut io::sink()) {
        if over(&hashing) {
            return Err(bomb(blob, limits.max_bytes));
        }
        return Err(bad(blob, e.to_string()));
    }
    let (actual, _) = hashing.hasher.finish();
    if actual != *diff_id {
        return Err(bad(
            blob,
            format!("its uncompressed digest is {actual}, but the image config says {diff_id}"),
        ));
    }
    if let Some(pack) = hashing.pack {
        pack.commit_as(actual)?;
    }
    Ok(changes)
}

fn read_entries(
    blob: &Descriptor,
    diff_id: &Digest,
    stream: &mut dyn Read,
    max_entries: usize,
    headers: &HeaderBudget,
) -> Result<ChangeSet, LayerError> {
    let mut changes = ChangeSet::new();
    let mut archive = tar::Archive::new(stream);
    let mut entries = archive.entries().map_err(|e| bad(blob, e.to_string()))?;
    for n in 0.. {
        // Only headers (long names and pax records included) are read while
        // the tar crate finds the next entry: the budget bounds them.
        headers.remaining.set(Some(MAX_HEADER_BYTES));
        let next = entries.next();
        headers.remaining.set(None);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| {
            if headers.exceeded.get() {
                untrusted(
                    blob,
                    "(a header)",
                    format!(
                        "an entry's headers (long name, pax records) pass {MAX_HEADER_BYTES} bytes"
                    ),
                )
            } else {
                bad(blob, e.to_string())
            }
        })?;
        read_entry(blob, diff_id, &mut entry, n, max_entries, &mut changes)?;
        // Whatever the entry holds that was not read is read here, under
        // the layer's byte limit, not the header budget.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| bad(blob, e.to_string()))?;
    }
    Ok(changes)
}

/// Turns one tar entry into a change in `changes`, or refuses it.
fn read_entry(
    blob: &Descriptor,
    diff_id: &Digest,
    entry: &mut tar::Entry<'_, &mut dyn Read>,
    n: usize,
    max_entries: usize,
    changes: &mut ChangeSet,
) -> Result<(), LayerError> {
    let raw_path = entry.path().map_err(|e| bad(blob, e.to_string()))?;
    let path_text = raw_path.to_string_lossy().replace('\\', "/");
    if n >= max_entries {
        return Err(untrusted(
            blob,
            &path_text,
            format!("the layer has more than {max_entries} entries"),
        ));
    }
    let path = entry_path(&path_text).map_err(|why| untrusted(blob, &path_text, why))?;
    let h = entry.header();
    // Old (v7) tars mark a directory by a trailing slash alone.
    let is_dir = h.entry_type() == EntryType::Directory
        || (h.entry_type() == EntryType::Regular && path_text.ends_with('/'));
    if path.is_root() {
        if !is_dir {
            return Err(untrusted(
                blob,
                &path_text,
                "the layer's root is not a directory".into(),
            ));
        }
        return Ok(());
    }
    let meta = Meta {
        mode: h.mode().unwrap_or(0o644) & 0o7777,
        uid: h
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0),
        gid: h
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0),
        mtime: h
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
    };
    let name = path.name().to_string();
    if name == ".wh..wh..opq" {
        let dir = path.parent();
        let meta = match changes.get(&dir) {
            Some(Change::Put(Node::Dir(m))) => *m,
            _ => Meta::root(0o755, meta.mtime),
        };
        changes.insert(dir, Change::Opaque(meta));
        return Ok(());
    }
    if let Some(hidden) = name.strip_prefix(".wh.") {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(untrusted(
                blob,
                &path_text,
                "a whiteout with no name".into(),
            ));
        }
        changes.insert(path.parent().join(hidden), Change::Whiteout);
        return Ok(());
    }
    let link_target = || -> Result<String, LayerError> {
        let l = entry
            .link_name()
            .map_err(|e| bad(blob, e.to_string()))?
            .ok_or_else(|| untrusted(blob, &path_text, "a link without a target".into()))?;
        Ok(l.to_string_lossy().replace('\\', "/"))
    };
    let change = match h.entry_type() {
        _ if is_dir => match changes.get(&path) {
            Some(Change::Opaque(_)) => Change::Opaque(meta),
            _ => Change::Put(Node::Dir(meta)),
        },
        EntryType::Symlink => {
            let target = link_target()?;
            symlink_check(&path, &target).map_err(|why| untrusted(blob, &path_text, why))?;
            Change::Put(Node::Symlink(meta, target))
        }
        EntryType::Link => {
            let target_text = link_target()?;
            let target = entry_path(&target_text)
                .map_err(|why| untrusted(blob, &path_text, format!("hard link: {why}")))?;
            // Only to a file this layer already holds: what the link
            // means then never depends on the layers below.
            let target = match changes.get(&target) {
                Some(Change::Put(Node::File(..))) => target,
                Some(Change::Hardlink(first)) => first.clone(),
                _ => {
                    return Err(untrusted(
                        blob,
                        &path_text,
                        format!(
                            "a hard link to {target_text:?}, which is not a file earlier in the layer"
                        ),
                    ));
                }
            };
            if target == path {
                return Err(untrusted(blob, &path_text, "a hard link to itself".into()));
            }
            Change::Hardlink(target)
        }
        EntryType::Regular | EntryType::Continuous => {
            let offset = entry.raw_file_position();
            let mut contents = HashingWriter::new(io::sink());
            io::copy(entry, &mut contents).map_err(|e| bad(blob, format!("{path}: {e}")))?;
            let (_, digest, size) = contents.finish();
            let at = Some(Packed {
                layer: *diff_id,
                offset,
            });
            Change::Put(Node::File(meta, FileRef { digest, size, at }))
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            return Err(untrusted(
                blob,
                &path_text,
                "a device node or FIFO: a wasm step cannot use one, and no image kiln builds holds one"
                    .into(),
            ));
        }
        // A pax global header only carries defaults, which runtimes ignore.
        EntryType::XGlobalHeader => return Ok(()),
        // Sparse files, tape volumes, unknown types: a runtime would make
        // something of them that a step here never saw.
        other => {
            return Err(untrusted(
                blob,
                &path_text,
                format!("an entry of type {other:?}, which kiln cannot represent"),
            ));
        }
    };
    changes.insert(path, change);
    Ok(())
}

/// The image path of a tar entry name: `/` and `./` prefixes are the layer
/// root; a `..` component is refused (no tool writes one; it exists only to
/// climb out of wherever the layer is extracted).
fn entry_path(name: &str) -> Result<ImagePath, String> {
    if name.split('/').any(|c| c == "..") {
        return Err("a name with a \"..\" component".into());
    }
    ImagePath::parse(name).map_err(|e| e.to_string())
}

/// A symbolic link's target must stay inside the image: absolute targets
/// resolve from the image root (as in a container); relative ones may not
/// climb above it from the link's directory.
fn symlink_check(link: &ImagePath, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("a symbolic link with an empty target".into());
    }
    if target.contains('\0') || target.len() > MAX_PATH_BYTES {
        return Err(format!(
            "a symbolic link target that no image can hold (NUL, or over {MAX_PATH_BYTES} bytes)"
        ));
    }
    if target.starts_with('/') {
        return Ok(());
    }
    let mut depth = link.components().count().saturating_sub(1);
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => {
                return Err(format!(
                    "a symbolic link to {target:?}, which climbs out of the layer"
                ));
            }
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    Ok(())
}

fn bad(blob: &Descriptor, reason: String) -> LayerError {
    LayerError::Store(StoreError::Corrupt {
        path: format!("layer {}", blob.digest).into(),
        reason,
    })
}

fn untrusted(blob: &Descriptor, entry: &str, reason: String) -> LayerError {
    LayerError::Untrusted {
        layer: blob.digest,
        entry: entry.to_string(),
        reason,
    }
}

fn bomb(blob: &Descriptor, limit: u64) -> LayerError {
    LayerError::Bomb {
        layer: blob.digest,
        limit,
    }
}

/// Most bytes the tar crate may read while it finds one entry: the 512-byte
/// header, a GNU long name and long link, pax records, the padding of the
/// entry before. It holds long names and pax records in memory, so without
/// this one entry's "name" could be gigabytes; a path is at most
/// `MAX_PATH_BYTES`, so 1 MiB leaves ample room for pax records.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The bytes left for headers while the tar crate finds the next entry
/// (`None` while kiln reads an entry's contents).
#[derive(Default)]
struct HeaderBudget {
    remaining: Cell<Option<u64>>,
    exceeded: Cell<bool>,
}

/// Hashes what passes through (and copies it into the pack, if any), and
/// fails once more than `limit` bytes have, or more than the header budget
/// while headers are read.
struct HashingReader<'b, R> {
    inner: R,
    hasher: Hasher,
    read: u64,
    limit: u64,
    headers: &'b HeaderBudget,
    pack: Option<AtomicWriter>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read > self.limit {
            return Err(io::Error::other("the layer expands past its limit"));
        }
        // Never read more than one byte past a limit: that byte proves it.
        let mut room = (self.limit - self.read).saturating_add(1);
        let headers = self.headers.remaining.get();
        if let Some(left) = headers {
            room = room.min(left.saturating_add(1));
        }
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other("the layer expands past its limit"));
        }
        if let Some(left) = headers {
            if n as u64 > left {
                self.headers.exceeded.set(true);
                return Err(io::Error::other("an entry's headers pass their limit"));
            }
            self.headers.remaining.set(Some(left - n as u64));
        }
        self.hasher.update(&buf[..n]);
        if let Some(pack) = &mut self.pack {
            pack.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
