//! What a transfer reports as it goes: a blob started, bytes moved, a blob
//! done (and how), a retry. The command line draws it (a bar per blob on a
//! terminal, a line per event otherwise); the library only reports.

use crate::digest::Digest;

/// How a blob got where it needed to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded into the store.
    Pulled,
    /// Uploaded to the registry.
    Pushed,
    /// Already there (in the store, or on the registry).
    Present,
    /// Mounted on the registry from another repository.
    Mounted(String),
}

/// Receives transfer events. Every method has an empty default.
pub trait TransferProgress: Sync {
    /// A blob (`what`: `layer`, `config`, `manifest`) of `size` bytes starts.
    fn begin(&self, _digest: &Digest, _size: u64, _what: &str) {}
    /// `done` bytes of it have moved so far.
    fn advance(&self, _digest: &Digest, _done: u64) {}
    /// It is where it needs to be.
    fn finish(&self, _digest: &Digest, _outcome: &Outcome) {}
    /// A request failed and is tried again (`attempt` is the one that failed).
    fn retrying(&self, _what: &str, _attempt: u32, _error: &str) {}
    /// A line to show (`pulling docker.io/library/alpine:3.20`...).
    fn note(&self, _text: &str) {}
}

/// Reports nothing.
pub struct Quiet;

impl TransferProgress for Quiet {}
