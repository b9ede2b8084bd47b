//! Compiled code, cached in the store: a module is compiled once per machine.
//!
//! The key is the sha256 of the module's digest, its kind (core module or
//! component) and the engine's compatibility fingerprint (wasmtime version,
//! target, settings). The file `<key>` is the artifact as wasmtime wrote
//! it, so wasmtime maps it into memory instead of reading and copying it
//! (a big module's artifact is hundreds of megabytes); `<key>.sum` holds
//! its sha256 and the identity ([`FileIdentity`]) the file had when its
//! bytes last matched. Deserializing is only sound for artifacts wasmtime
//! itself wrote, so an artifact is read whole and checked against the sum
//! before its first use and whenever its identity changed; the artifact is
//! written (and synced) before its sum, and never changed in place.
//!
//! A module that failed to compile or link is remembered next to it, in
//! `<key>.failed` (the sha256 of the message, then the message), so a retry
//! fails at once instead of compiling again. A damaged record is ignored
//! (the module is compiled again); deleting one forgets the failure.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, HashingWriter};
use crate::file_identity::FileIdentity;
use crate::store::Store;

/// Kinds of program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// A core wasm module (WASI preview1).
    Module,
    /// A component (WASI 0.2).
    Component,
}

impl ProgramKind {
    /// Reads the kind from a binary's header.
    pub fn detect(bytes: &[u8]) -> Option<ProgramKind> {
        match bytes.get(..8)? {
            [0, b'a', b's', b'm', 1, 0, 0, 0] => Some(ProgramKind::Module),
            [0, b'a', b's', b'm', _, _, 1, 0] => Some(ProgramKind::Component),
            _ => None,
        }
    }
}

/// The compile cache of one store and engine.
pub struct CompileCache {
    dir: PathBuf,
    fingerprint: Digest,
}

impl CompileCache {
    /// The cache in `store` for an engine with `fingerprint`.
    pub fn new(store: &Store, fingerprint: Digest) -> io::Result<CompileCache> {
        let dir = store.root().join("kiln/compiled");
        fs::create_dir_all(&dir)?;
        Ok(CompileCache { dir, fingerprint })
    }

    fn path(&self, module: &Digest, kind: ProgramKind) -> PathBuf {
        let mut key = Vec::new();
        key.extend_from_slice(b"kiln-compiled-v2\0");
        key.extend_from_slice(module.as_bytes());
        key.extend_from_slice(self.fingerprint.as_bytes());
        key.push(kind as u8);
        self.dir.join(Digest::of(&key).hex())
    }

    fn failure_path(&self, module: &Digest, kind: ProgramKind) -> PathBuf {
        self.path(module, kind).with_extension("failed")
    }

    fn sum_path(&self, module: &Digest, kind: ProgramKind) -> PathBuf {
        self.path(module, kind).with_extension("sum")
    }

    /// The file of the compiled artifact for `module`, if cached and its
    /// bytes are the ones its sum names (checked when its identity is not
    /// the one noted at the last check, and then noted).
    pub fn get(&self, module: &Digest, kind: ProgramKind) -> Option<PathBuf> {
        let path = self.path(module, kind);
        let identity = FileIdentity::of(&fs::metadata(&path).ok()?);
        let sum_path = self.sum_path(module, kind);
        let text = fs::read_to_string(&sum_path).ok()?;
        let (sum, noted) = text
            .trim_end()
            .split_once(' ')
            .unwrap_or((text.trim_end(), ""));
        let sum = Digest::from_hex(sum).ok()?;
        if FileIdentity::decode(noted) == Some(identity) {
            return Some(path);
        }
        let (actual, _) = hash_file(&path).ok()?;
        if actual != sum {
            return None;
        }
        // Best effort: a note not written costs the next use a check.
        let _ = fs::write(&sum_path, format!("{} {}\n", sum.hex(), identity.encode()));
        Some(path)
    }

    /// Saves a compiled artifact (atomically; a failure only costs a
    /// recompile next time).
    pub fn put(&self, store: &Store, module: &Digest, kind: ProgramKind, artifact: &[u8]) {
        let path = self.path(module, kind);
        if store.write_file_atomic(&path, artifact).is_err() {
            return;
        }
        let Ok(meta) = fs::metadata(&path) else {
            return;
        };
        let note = format!(
            "{} {}\n",
            Digest::of(artifact).hex(),
            FileIdentity::of(&meta).encode()
        );
        let _ = store.write_file_atomic(&self.sum_path(module, kind), note.as_bytes());
    }

    /// The error an earlier attempt to compile or link `module` with this
    /// engine ended with, and the record's path, if one is remembered.
    pub fn failure(&self, module: &Digest, kind: ProgramKind) -> Option<(String, PathBuf)> {
        let path = self.failure_path(module, kind);
        let bytes = fs::read(&path).ok()?;
        if bytes.len() < 32 {
            return None;
        }
        let (sum, message) = bytes.split_at(32);
        if Digest::of(message).as_bytes() != sum {
            return None;
        }
        Some((String::from_utf8_lossy(message).into_owned(), path))
    }

    /// Remembers that compiling or linking `module` failed with `message`
    /// (atomically; a failure to write only costs a compile next time).
    pub fn remember_failure(
        &self,
        store: &Store,
        module: &Digest,
        kind: ProgramKind,
        message: &str,
    ) {
        let mut bytes = Vec::with_capacity(32 + message.len());
        bytes.extend_from_slice(Digest::of(message.as_bytes()).as_bytes());
        bytes.extend_from_slice(message.as_bytes());
        let _ = store.write_file_atomic(&self.failure_path(module, kind), &bytes);
    }
}

/// The sha256 of the file at `path`, and its length.
fn hash_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    let mut hashed = HashingWriter::new(io::sink());
    io::copy(&mut fs::File::open(path)?, &mut hashed)?;
    let (_, digest, len) = hashed.finish();
    Ok((digest, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_modules_and_components() {
        assert_eq!(
            ProgramKind::detect(b"\0asm\x01\0\0\0rest"),
            Some(ProgramKind::Module)
        );
        assert_eq!(
            ProgramKind::detect(b"\0asm\x0d\0\x01\0rest"),
            Some(ProgramKind::Component)
        );
        assert_eq!(ProgramKind::detect(b"#!/bin/sh\n"), None);
        assert_eq!(ProgramKind::detect(b"\0asm"), None);
    }

    #[test]
    fn corrupt_artifacts_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = CompileCache::new(&store, Digest::of(b"engine")).unwrap();
        let m = Digest::of(b"module");
        assert!(cache.get(&m, ProgramKind::Module).is_none());
        cache.put(&store, &m, ProgramKind::Module, b"compiled");
        let path = cache.get(&m, ProgramKind::Module).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"compiled");
        assert!(cache.get(&m, ProgramKind::Component).is_none());
        // Damaged (a new identity): checked, refused.
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.get(&m, ProgramKind::Module).is_none());
        // Put back (another new identity): checked again, and noted.
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get(&m, ProgramKind::Module), Some(path.clone()));
        let note = fs::read_to_string(cache.sum_path(&m, ProgramKind::Module)).unwrap();
        let identity = FileIdentity::of(&fs::metadata(&path).unwrap());
        assert!(note.trim_end().ends_with(&identity.encode()), "{note}");
        // A sum that does not parse, or is gone: not trusted.
        fs::write(cache.sum_path(&m, ProgramKind::Module), "garbage").unwrap();
        assert!(cache.get(&m, ProgramKind::Module).is_none());
        fs::remove_file(cache.sum_path(&m, ProgramKind::Module)).unwrap();
        assert!(cache.get(&m, ProgramKind::Module).is_none());
    }

    #[test]
    fn failures_are_remembered_per_kind_and_damaged_records_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = CompileCache::new(&store, Digest::of(b"engine")).unwrap();
        let m = Digest::of(b"module");
        assert!(cache.failure(&m, ProgramKind::Module).is_none());
        cache.remember_failure(&store, &m, ProgramKind::Module, "compiling: bad");
        let (message, path) = cache.failure(&m, ProgramKind::Module).unwrap();
        assert_eq!(message, "compiling: bad");
        assert!(cache.failure(&m, ProgramKind::Component).is_none());
        // Another engine (another fingerprint) compiles it again.
        let other = CompileCache::new(&store, Digest::of(b"other engine")).unwrap();
        assert!(other.failure(&m, ProgramKind::Module).is_none());
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(cache.failure(&m, ProgramKind::Module).is_none());
    }
}
