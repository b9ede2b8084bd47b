//! `wasi_snapshot_preview1` for core modules: our own host over the VFS.
//!
//! (Being written: see the contract below. `add_to_linker` defines every
//! preview1 import; the descriptor table lives in [`P1State`].)

use super::{Preopen, StepState};

/// The preview1 layer's state: the descriptor table.
pub struct P1State {
    _preopens: Vec<Preopen>,
}

impl P1State {
    /// A table with stdin, stdout, stderr and then `preopens` as fds 3...
    pub fn new(preopens: &[Preopen]) -> P1State {
        P1State {
            _preopens: preopens.to_vec(),
        }
    }
}

/// Defines every `wasi_snapshot_preview1` import in `linker`.
pub fn add_to_linker(_linker: &mut wasmtime::Linker<StepState>) -> wasmtime::Result<()> {
    Ok(())
}
