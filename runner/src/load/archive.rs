//! An archive's entries, staged: every regular file is hashed as it
//! streams past and held unnamed (small ones in memory, the rest in an
//! unlinked temp file through [`Store::blob_writer`]'s
//! [`crate::store::Sealed`]), so nothing reaches the store before the
//! archive has been read whole and checked. Symbolic and hard links (old
//! `docker save` links shared `layer.tar` files) are kept as aliases.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tar::EntryType;

use super::LoadError;
use crate::digest::Digest;
use crate::store::{Sealed, Store};

/// Entries up to this size are held in memory.
const SMALL: u64 = 1 << 20;
/// At most this much is held in memory in all; later small entries spool.
const MAX_SMALL_TOTAL: u64 = 64 << 20;
/// Most entries an archive may have: real ones have a few per layer.
pub const MAX_ARCHIVE_ENTRIES: usize = 100_000;
/// Links followed from one name before giving up (a loop).
const MAX_LINK_HOPS: usize = 16;
/// Copy buffer.
const CHUNK: usize = 256 << 10;

enum Body {
    Small(Vec<u8>),
    Spooled(Sealed),
}

/// One regular file of the archive.
pub(super) struct Staged {
    /// Its sha256.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its first bytes (zero-padded), to tell compressed layers apart.
    pub magic: [u8; 4],
    body: Option<Body>,
}

/// The files and links of an archive, by normalized path.
#[derive(Default)]
pub(super) struct Entries {
    files: BTreeMap<String, Staged>,
    links: BTreeMap<String, String>,
    committed: BTreeSet<Digest>,
}

impl Entries {
    /// Reads a tar stream to its end.
    pub(super) fn stage(
        store: &Store,
        input: impl Read,
        cancel: &AtomicBool,
    ) -> Result<Entries, LoadError> {
        let not_tar = |e: io::Error| LoadError::NotTar(printable(&e.to_string()));
        let mut entries = Entries::default();
        let mut small_total = 0u64;
        let mut archive = tar::Archive::new(input);
        for (n, entry) in archive.entries().map_err(not_tar)?.enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(LoadError::Cancelled);
            }
            if n >= MAX_ARCHIVE_ENTRIES {
                return Err(LoadError::Format(format!(
                    "more than {MAX_ARCHIVE_ENTRIES} entries"
                )));
            }
            let mut entry = entry.map_err(not_tar)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize("", &raw);
            match entry.header().entry_type() {
                EntryType::Regular | EntryType::Continuous => {
                    let size = entry.header().size().map_err(not_tar)?;
                    let in_memory = size <= SMALL && small_total + size <= MAX_SMALL_TOTAL;
                    let staged = if in_memory {
                        small_total += size;
                        read_small(&mut entry, size)
                    } else {
                        spool(store, &mut entry, cancel)
                    }
                    .map_err(|e| match e {
                        LoadError::Read(e) => LoadError::NotTar(format!("{raw}: {e}")),
                        other => other,
                    })?;
                    if staged.size != size {
                        return Err(LoadError::NotTar(format!(
                            "{raw}: the archive ends inside it ({} of {size} bytes)",
                            staged.size
                        )));
                    }
                    check_blob_name(&path, &staged.digest)?;
                    entries.links.remove(&path);
                    entries.files.insert(path, staged);
                }
                kind @ (EntryType::Symlink | EntryType::Link) => {
                    let Some(target) = entry.link_name_bytes() else {
                        continue;
                    };
                    let target = String::from_utf8_lossy(&target).into_owned();
                    // A hard link names a path from the archive's root, a
                    // symbolic link one from its own directory.
                    let base = match kind {
                        EntryType::Symlink => path.rsplit_once('/').map_or("", |(d, _)| d),
                        _ => "",
                    };
                    let target = normalize(base, &target);
                    entries.files.remove(&path);
                    entries.links.insert(path, target);
                }
                _ => {}
            }
        }
        Ok(entries)
    }

    /// Whether the archive has a file (or a link to one) at `path`.
    pub(super) fn has(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The file at `path`, following links.
    pub(super) fn get(&self, path: &str) -> Option<&Staged> {
        self.files.get(&self.resolve(path)?)
    }

    fn resolve(&self, path: &str) -> Option<String> {
        let mut path = normalize("", path);
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => return self.files.contains_key(&path).then_some(path),
            }
        }
        None
    }

    /// The contents of the file at `path` (a JSON document), refused above
    /// `max` bytes.
    pub(super) fn read(&mut self, path: &str, max: u64) -> Result<Vec<u8>, LoadError> {
        let missing = || LoadError::Damaged(format!("it has no {path}"));
        let real = self.resolve(path).ok_or_else(missing)?;
        let staged = self.files.get_mut(&real).ok_or_else(missing)?;
        if staged.size > max {
            return Err(LoadError::Format(format!(
                "{path} is {} bytes, more than kiln reads ({max})",
                staged.size
            )));
        }
        match &mut staged.body {
            Some(Body::Small(bytes)) => Ok(bytes.clone()),
            Some(Body::Spooled(sealed)) => sealed.read_to_vec(max).map_err(LoadError::Read),
            None => Err(missing()),
        }
    }

    /// Parses the JSON document at `path`.
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        max: u64,
    ) -> Result<T, LoadError> {
        let bytes = self.read(path, max)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LoadError::Format(format!("{path} is not what it should be: {e}")))
    }

    /// The path of a file holding `digest`: its OCI blob path, else any.
    pub(super) fn path_of(&self, digest: &Digest) -> Option<String> {
        let blob = blob_path(digest);
        if self.files.contains_key(&blob) {
            return Some(blob);
        }
        self.files
            .iter()
            .find(|(_, s)| s.digest == *digest)
            .map(|(p, _)| p.clone())
    }

    /// Puts the file holding `digest` into the store as a blob.
    pub(super) fn commit(&mut self, store: &Store, digest: &Digest) -> Result<(), LoadError> {
        if self.committed.contains(digest) {
            return Ok(());
        }
        let path = self
            .path_of(digest)
            .ok_or_else(|| LoadError::Damaged(format!("it lacks blob {digest}")))?;
        let staged = self.files.get_mut(&path).expect("found above");
        match staged.body.take() {
            Some(Body::Small(bytes)) => {
                store.put_blob(&bytes)?;
            }
            Some(Body::Spooled(sealed)) => {
                sealed.commit()?;
            }
            None => {}
        }
        self.committed.insert(*digest);
        Ok(())
    }
}

/// The tar reader's message, unless it quotes the input's bytes (as it
/// does for a header that is not one): those are no use on a terminal.
fn printable(message: &str) -> String {
    if message.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        message.to_string()
    } else {
        "a block where a tar header belongs is not one".into()
    }
}

/// `blobs/sha256/<hex>`.
pub(super) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A file named `blobs/sha256/<hex>` must hold the bytes of that digest.
fn check_blob_name(path: &str, digest: &Digest) -> Result<(), LoadError> {
    if let Some(hex) = path.strip_prefix("blobs/sha256/")
        && hex != digest.hex()
    {
        return Err(LoadError::Damaged(format!(
            "{path} holds bytes whose digest is {digest}: a digest mismatch"
        )));
    }
    Ok(())
}

fn read_small(entry: &mut impl Read, size: u64) -> Result<Staged, LoadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(LoadError::Read)?;
    Ok(Staged {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        magic: magic(&bytes),
        body: Some(Body::Small(bytes)),
    })
}

fn spool(store: &Store, entry: &mut impl Read, cancel: &AtomicBool) -> Result<Staged, LoadError> {
    let mut w = store.blob_writer()?;
    let mut first = None;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(LoadError::Cancelled);
        }
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LoadError::Read(e)),
        };
        first.get_or_insert_with(|| magic(&buf[..n]));
        w.write_all(&buf[..n]).map_err(LoadError::Read)?;
    }
    // The writer hashed what it wrote.
    let sealed = w.seal()?;
    Ok(Staged {
        digest: sealed.digest(),
        size: sealed.len(),
        magic: first.unwrap_or_default(),
        body: Some(Body::Spooled(sealed)),
    })
}

fn magic(bytes: &[u8]) -> [u8; 4] {
    let mut m = [0u8; 4];
    let n = bytes.len().min(4);
    m[..n].copy_from_slice(&bytes[..n]);
    m
}

/// `path` (relative to directory `base`) with `.` and `..` resolved, no
/// leading `/` or `./`: archive names are compared in this form (the
/// context's own cleaning, from `base`).
pub(super) fn normalize(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        crate::context::clean(path)
    } else {
        crate::context::clean(&format!("{base}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_archive_paths() {
        assert_eq!(normalize("", "./manifest.json"), "manifest.json");
        assert_eq!(normalize("", "/blobs//sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("a", "../b/layer.tar"), "b/layer.tar");
        assert_eq!(normalize("a", "/x"), "x");
        assert_eq!(normalize("", "../../x"), "x");
    }
}
