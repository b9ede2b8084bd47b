//! Compiled code, cached in the store: a module is compiled once per machine.
//!
//! The key is the sha256 of the module's digest, its kind (core module or
//! component) and the engine's compatibility fingerprint (wasmtime version,
//! target, settings). The file holds the sha256 of the compiled artifact
//! followed by the artifact; it is checked before wasmtime deserializes it,
//! since deserializing is only sound for artifacts wasmtime itself wrote.
//!
//! A module that failed to compile or link is remembered next to it, in
//! `<key>.failed` (the sha256 of the message, then the message), so a retry
//! fails at once instead of compiling again. A damaged record is ignored
//! (the module is compiled again); deleting one forgets the failure.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
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
        key.extend_from_slice(b"kiln-compiled-v1\0");
        key.extend_from_slice(module.as_bytes());
        key.extend_from_slice(self.fingerprint.as_bytes());
        key.push(kind as u8);
        self.dir.join(Digest::of(&key).hex())
    }

    fn failure_path(&self, module: &Digest, kind: ProgramKind) -> PathBuf {
        self.path(module, kind).with_extension("failed")
    }

    /// The verified compiled artifact for `module`, if cached.
    pub fn get(&self, module: &Digest, kind: ProgramKind) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(module, kind)).ok()?;
        if bytes.len() < 32 {
            return None;
        }
        let (sum, artifact) = bytes.split_at(32);
        (Digest::of(artifact).as_bytes() == sum).then(|| artifact.to_vec())
    }

    /// Saves a compiled artifact (atomically; a failure only costs a
    /// recompile next time).
    pub fn put(&self, store: &Store, module: &Digest, kind: ProgramKind, artifact: &[u8]) {
        let mut bytes = Vec::with_capacity(32 + artifact.len());
        bytes.extend_from_slice(Digest::of(artifact).as_bytes());
        bytes.extend_from_slice(artifact);
        let _ = store.write_file_atomic(&self.path(module, kind), &bytes);
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
        assert_eq!(cache.get(&m, ProgramKind::Module).unwrap(), b"compiled");
        assert!(cache.get(&m, ProgramKind::Component).is_none());
        let path = cache.path(&m, ProgramKind::Module);
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, bytes).unwrap();
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
