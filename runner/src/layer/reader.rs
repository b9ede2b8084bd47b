//! Reading a layer blob back into a [`ChangeSet`], for images kiln did not
//! build (copied into the store by skopeo, say) or whose index was lost.
//!
//! The blob is verified (digest), decompressed by media type, and its tar
//! entries become changes: `.wh.NAME` a whiteout, `.wh..wh..opq` an opaque
//! directory, file contents copied into the store's content area. The
//! uncompressed stream is hashed on the way and must equal the diff_id the
//! image config promises. Devices and fifos are skipped: a wasm step cannot
//! use them, and they cannot be represented on every host.

use std::io::{self, Read};

use tar::EntryType;

use super::{LayerError, MEDIA_TYPE_GZIP, MEDIA_TYPE_TAR, MEDIA_TYPE_ZSTD};
use crate::digest::{Digest, Hasher};
use crate::snapshot::{Change, ChangeSet, FileRef, ImagePath, Meta, Node};
use crate::store::{Descriptor, Store, StoreError};

/// Docker's media types, found in images converted by skopeo and friends.
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Reads the layer `blob` (whose uncompressed digest must be `diff_id`) into
/// a change set, storing file contents.
pub fn read_layer(
    store: &Store,
    blob: &Descriptor,
    diff_id: &Digest,
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
    let mut hashing = HashingReader {
        inner: decompressed,
        hasher: Hasher::new(),
    };
    let mut changes = ChangeSet::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| bad(blob, e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(blob, e.to_string()))?;
            let raw_path = entry.path().map_err(|e| bad(blob, e.to_string()))?;
            let path_text = raw_path.to_string_lossy().replace('\\', "/");
            let path =
                ImagePath::parse(&path_text).map_err(|e| bad(blob, format!("{path_text}: {e}")))?;
            if path.is_root() {
                continue;
            }
            let h = entry.header();
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
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                changes.insert(path.parent().join(hidden), Change::Whiteout);
                continue;
            }
            let link_target = || -> Result<String, LayerError> {
                let l = entry
                    .link_name()
                    .map_err(|e| bad(blob, e.to_string()))?
                    .ok_or_else(|| bad(blob, format!("{path}: link without a target")))?;
                Ok(l.to_string_lossy().replace('\\', "/"))
            };
            let change = match h.entry_type() {
                EntryType::Directory => match changes.get(&path) {
                    Some(Change::Opaque(_)) => Change::Opaque(meta),
                    _ => Change::Put(Node::Dir(meta)),
                },
                EntryType::Symlink => Change::Put(Node::Symlink(meta, link_target()?)),
                EntryType::Link => {
                    let target = link_target()?;
                    Change::Hardlink(
                        ImagePath::parse(&target)
                            .map_err(|e| bad(blob, format!("{target}: {e}")))?,
                    )
                }
                EntryType::Regular | EntryType::Continuous => {
                    let mut w = store.content_writer()?;
                    io::copy(&mut entry, &mut w).map_err(|e| bad(blob, format!("{path}: {e}")))?;
                    let (digest, size) = w.commit()?;
                    Change::Put(Node::File(meta, FileRef { digest, size }))
                }
                // Devices, fifos, sparse files: not representable for wasm steps.
                _ => continue,
            };
            changes.insert(path, change);
        }
    }
    // Hash whatever follows the end-of-archive marker too: diff_id covers it.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| bad(blob, e.to_string()))?;
    let (actual, _) = hashing.hasher.finish();
    if actual != *diff_id {
        return Err(bad(
            blob,
            format!("its uncompressed digest is {actual}, but the image config says {diff_id}"),
        ));
    }
    Ok(changes)
}

fn bad(blob: &Descriptor, reason: String) -> LayerError {
    LayerError::Store(StoreError::Corrupt {
        path: format!("layer {}", blob.digest).into(),
        reason,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
