//! The single streaming pass that turns changes into a layer blob.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

use super::compress::Encoder;
use super::offload::Offload;
use super::tarfmt::{append_dir, append_marker, header};
use super::{Compression, Content, LayerError, LayerOptions, PendingChanges};
use crate::digest::{Digest, Hasher};
use crate::secrets::{Hit, StreamScan};
use crate::snapshot::{Change, ChangeSet, FileRef, ImagePath, Meta, Node, Packed};
use crate::store::{AtomicWriter, Descriptor, Store};

/// A layer written to the store.
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    /// The blob's descriptor (media type, digest, size).
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// The changes with every file's contents in the store.
    pub changes: ChangeSet,
    /// Secrets the leak guard found, when it records instead of failing.
    pub leaks: Vec<(ImagePath, Hit)>,
}

/// Where the tar goes: to a thread of its own (`offload.rs`) that hashes it
/// (the diff_id) and writes it into the encoder (the blob) and, for a
/// compressed layer, into the layer's pack as it is.
type TarSink = Offload<Layered>;

/// The layer blob's encoder and the pack beside it (`None`: the blob is
/// uncompressed, so it is the pack).
struct Layered {
    encoder: Encoder<AtomicWriter>,
    pack: Option<AtomicWriter>,
}

impl Write for Layered {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        if let Some(pack) = &mut self.pack {
            pack.write_all(&buf[..n])?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// The pack of a layer whose diff_id is not known yet: filled in once the
/// tar is complete.
const PENDING: Digest = Digest::from_bytes([0; 32]);

/// Whether Ctrl-C or SIGTERM asked the build to stop.
fn cancelled(opts: &LayerOptions) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

/// Writes `changes` as one layer into `store`. See the module docs of
/// [`crate::layer`] for what makes the output deterministic.
pub fn write_layer(
    store: &Store,
    changes: PendingChanges,
    opts: &LayerOptions,
) -> Result<WrittenLayer, LayerError> {
    let changes = order_hardlinks(changes)?;
    write_entries(store, changes.into_iter().map(Ok), opts)
}

/// Writes a layer of the entries `entries` yields, in path order, with no
/// hard links (see [`super::stream`]); an `Err` entry ends it, nothing
/// committed.
pub(super) fn write_entries(
    store: &Store,
    entries: impl Iterator<Item = Result<Entry, LayerError>>,
    opts: &LayerOptions,
) -> Result<WrittenLayer, LayerError> {
    // Whatever failed once the flag is set, the cause is the interrupt.
    write(store, entries, opts).map_err(|e| {
        if cancelled(opts) {
            LayerError::Cancelled
        } else {
            e
        }
    })
}

/// One entry of a layer being written.
pub(super) type Entry = (ImagePath, Change<Content>);

fn write(
    store: &Store,
    entries: impl Iterator<Item = Result<Entry, LayerError>>,
    opts: &LayerOptions,
) -> Result<WrittenLayer, LayerError> {
    let blob = store.private_blob_writer()?;
    // Uncompressed, the blob is the tar: its digest is the diff_id.
    let plain = opts.compression == Compression::Uncompressed;
    let blob = if plain { blob.hashed_by_caller() } else { blob };
    let pack = match plain {
        true => None,
        false => Some(store.private_blob_writer()?.hashed_by_caller()),
    };
    let sink: TarSink = Offload::new(Layered {
        encoder: Encoder::new(opts.compression, blob, opts.threads).map_err(LayerError::Write)?,
        pack,
    })
    .map_err(LayerError::Write)?;
    let mut tar = tar::Builder::new(sink);
    // In path order, as the entries come: made into the map at the end in
    // one pass, not searched 100,000 times.
    let mut index = Vec::new();
    // The tar and the index carry the same, clamped times: a snapshot read
    // back from either is the image's filesystem.
    let clamp = |m: Meta| -> Meta {
        let t = opts.clamp_mtime.map_or(m.mtime, |epoch| m.mtime.min(epoch));
        Meta {
            mtime: t.max(0),
            ..m
        }
    };
    let secs = |m: &Meta| u64::try_from(m.mtime).unwrap_or(0);
    let mut leaks = Vec::new();
    let fail = opts.guard.as_ref().is_some_and(|g| g.fail);
    // A hit fails the layer at once, or is recorded for a warning.
    let found = |leaks: &mut Vec<(ImagePath, Hit)>, path: &ImagePath, hit: Hit| {
        if fail {
            return Err(LayerError::SecretLeak {
                path: path.clone(),
                id: hit.id,
                encoding: hit.encoding,
            });
        }
        leaks.push((path.clone(), hit));
        Ok(())
    };
    let marker_mtime = u64::try_from(opts.clamp_mtime.unwrap_or(0)).unwrap_or(0);

    for entry in entries {
        let (path, change) = entry?;
        if cancelled(opts) {
            return Err(LayerError::Cancelled);
        }
        let indexed = match change {
            Change::Put(Node::Dir(meta)) => {
                let meta = clamp(meta);
                append_dir(&mut tar, &path, &meta, secs(&meta)).map_err(LayerError::Write)?;
                Change::Put(Node::Dir(meta))
            }
            Change::Opaque(meta) => {
                let meta = clamp(meta);
                append_dir(&mut tar, &path, &meta, secs(&meta)).map_err(LayerError::Write)?;
                append_marker(&mut tar, &path.join(".wh..wh..opq"), marker_mtime)
                    .map_err(LayerError::Write)?;
                Change::Opaque(meta)
            }
            Change::Whiteout => {
                let marker = path.parent().join(&format!(".wh.{}", path.name()));
                append_marker(&mut tar, &marker, marker_mtime).map_err(LayerError::Write)?;
                Change::Whiteout
            }
            Change::Put(Node::Symlink(meta, target)) => {
                let meta = clamp(meta);
                let mut h = header(EntryType::Symlink, &meta, secs(&meta), 0);
                tar.append_link(&mut h, path.as_str(), &target)
                    .map_err(LayerError::Write)?;
                Change::Put(Node::Symlink(meta, target))
            }
            Change::Hardlink(target) => {
                let mut h = header(EntryType::Link, &Meta::root(0, 0), marker_mtime, 0);
                tar.append_link(&mut h, path.as_str(), target.as_str())
                    .map_err(LayerError::Write)?;
                Change::Hardlink(target)
            }
            Change::Put(Node::File(meta, content)) => {
                let meta = clamp(meta);
                let (file, hit) =
                    append_file(store, &mut tar, &path, &meta, secs(&meta), content, opts)?;
                if let Some(hit) = hit {
                    found(&mut leaks, &path, hit)?;
                }
                Change::Put(Node::File(meta, file))
            }
        };
        if let Some(guard) = &opts.guard {
            let mut texts = vec![path.as_str()];
            if let Change::Put(Node::Symlink(_, target)) = &indexed {
                texts.push(target.as_str());
            }
            for text in texts {
                if let Some(hit) = guard.scanner.find(text.as_bytes()) {
                    found(&mut leaks, &path, hit)?;
                }
            }
        }
        index.push((path, indexed));
    }

    let sink = tar.into_inner().map_err(LayerError::Write)?;
    let (layered, diff_id, tar_size) = sink.finish().map_err(LayerError::Write)?;
    let blob = layered.encoder.finish().map_err(LayerError::Write)?;
    if let Some(pack) = layered.pack {
        pack.commit_as(diff_id)?;
    }
    let (digest, size) = if plain {
        blob.commit_as(diff_id)?
    } else {
        blob.commit()?
    };
    for (_, change) in &mut index {
        if let Change::Put(Node::File(_, FileRef { at: Some(p), .. })) = change {
            p.layer = diff_id;
        }
    }
    Ok(WrittenLayer {
        descriptor: Descriptor::new(opts.compression.media_type(), digest, size),
        diff_id,
        tar_size,
        changes: ChangeSet::from_iter(index),
        leaks,
    })
}

fn append_file(
    store: &Store,
    tar: &mut tar::Builder<TarSink>,
    path: &ImagePath,
    meta: &Meta,
    mtime: u64,
    content: Content,
    opts: &LayerOptions,
) -> Result<(FileRef, Option<Hit>), LayerError> {
    let (guard, cancel) = (opts.guard.as_ref(), opts.cancel.as_deref());
    let size = content.size();
    let mut h = header(EntryType::Regular, meta, mtime, size);
    let mut scan = guard.map(|g| StreamScan::new(&g.scanner));
    let fail = guard.is_some_and(|g| g.fail);
    // With a failing guard, a hit ends the layer before anything of the
    // file is committed to the store.
    let leak = |hit: &Hit| LayerError::SecretLeak {
        path: path.clone(),
        id: hit.id.clone(),
        encoding: hit.encoding,
    };
    // The file's digest: known already where the bytes were checked on
    // the way (the store verifies what it gives) or hashed before (a COPY
    // source kept in memory); else hashed here, and, for a source hashed
    // earlier for the cache key, compared with that.
    let mut hasher = Hasher::new();
    let (known, expected, origin) = match content {
        Content::Stored(file) => {
            let reader = Scanning {
                inner: store.open_content(&file)?,
                scan: scan.as_mut(),
                cancel,
            };
            let origin = format!("stored contents of {path}");
            append_exact(tar, &mut h, path, reader, size, &origin)?;
            (Some(file.digest), None, origin)
        }
        Content::Bytes(bytes) => {
            hasher.update(&bytes);
            append_bytes(tar, &mut h, path, &bytes, scan.as_mut())?;
            (None, None, String::new())
        }
        Content::Hashed { bytes, digest } => {
            append_bytes(tar, &mut h, path, &bytes, scan.as_mut())?;
            (Some(digest), None, String::new())
        }
        Content::Reader {
            open,
            origin,
            digest,
            ..
        } => {
            let source = open().map_err(|source| LayerError::Read {
                origin: origin.clone(),
                source,
            })?;
            let reader = Scanning {
                inner: source,
                scan: scan.as_mut(),
                cancel,
            };
            let reader = Hashed(reader, &mut hasher);
            append_exact(tar, &mut h, path, reader, size, &origin)?;
            (None, digest, origin)
        }
    };
    let hit = scan.and_then(|s| s.hit().cloned());
    if let Some(hit) = &hit
        && fail
    {
        // Nothing is committed: the blob and the pack go away unnamed.
        return Err(leak(hit));
    }
    let digest = match known {
        Some(digest) => digest,
        None => hasher.finish().0,
    };
    if expected.is_some_and(|e| e != digest) {
        return Err(LayerError::Changed { origin });
    }
    // The bytes end where the tar's padding to a whole block begins.
    let padding = (512 - size % 512) % 512;
    let offset = tar.get_ref().len() - padding - size;
    let at = Some(Packed {
        layer: PENDING,
        offset,
    });
    Ok((FileRef { digest, size, at }, hit))
}

/// Appends contents held in memory, feeding them to the leak guard's scan.
fn append_bytes(
    tar: &mut tar::Builder<TarSink>,
    h: &mut Header,
    path: &ImagePath,
    bytes: &[u8],
    scan: Option<&mut StreamScan<'_>>,
) -> Result<(), LayerError> {
    if let Some(scan) = scan {
        scan.feed(bytes);
    }
    tar.append_data(h, path.as_str(), bytes)
        .map_err(LayerError::Write)
}

/// Hashes what is read.
struct Hashed<'h, R>(R, &'h mut Hasher);

impl<R: Read> Read for Hashed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }
}

/// Feeds what is read to the leak guard's scan, and stops the read when
/// the build is cancelled.
struct Scanning<'s, 'g, R> {
    inner: R,
    scan: Option<&'s mut StreamScan<'g>>,
    cancel: Option<&'s std::sync::atomic::AtomicBool>,
}

impl<R: Read> Read for Scanning<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        if let Some(scan) = self.scan.as_mut() {
            scan.feed(&buf[..n]);
        }
        Ok(n)
    }
}

/// Appends exactly `size` bytes from `reader`; a source that ends early
/// (a file truncated while the build read it) is an error, not a torn tar.
fn append_exact(
    tar: &mut tar::Builder<TarSink>,
    h: &mut Header,
    path: &ImagePath,
    reader: impl Read,
    size: u64,
    origin: &str,
) -> Result<(), LayerError> {
    let mut exact = Exact {
        inner: reader.take(size),
        remaining: size,
    };
    tar.append_data(h, path.as_str(), &mut exact).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::InvalidData {
            LayerError::Read {
                origin: origin.to_string(),
                source: e,
            }
        } else {
            LayerError::Write(e)
        }
    })
}

struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "it ended {} bytes early (did it change during the build?)",
                    self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Makes every hard link point to a path written before it: within a group
/// of names for one file, the first in tar order holds the contents.
fn order_hardlinks(mut changes: PendingChanges) -> Result<PendingChanges, LayerError> {
    let mut groups: std::collections::BTreeMap<ImagePath, Vec<ImagePath>> = Default::default();
    for (path, change) in &changes {
        if let Change::Hardlink(target) = change {
            if !matches!(changes.get(target), Some(Change::Put(Node::File(..)))) {
                return Err(LayerError::DanglingHardlink {
                    link: path.clone(),
                    target: target.clone(),
                });
            }
            groups.entry(target.clone()).or_default().push(path.clone());
        }
    }
    for (file, links) in groups {
        let primary = links.iter().min().expect("groups are never empty");
        if *primary > file {
            continue;
        }
        let primary = primary.clone();
        let contents = changes.remove(&file).expect("checked above");
        changes.insert(primary.clone(), contents);
        changes.insert(file, Change::Hardlink(primary.clone()));
        for link in links.into_iter().filter(|l| *l != primary) {
            changes.insert(link, Change::Hardlink(primary.clone()));
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests;
