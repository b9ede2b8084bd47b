//! WASI 0.2 for components: our `wasi:filesystem` over the VFS, the rest
//! from wasmtime-wasi.
//!
//! (Being written: see the contract below.)

use super::StepState;

/// The component layer's state.
pub struct P2State {}

impl P2State {
    /// State for a step that does not run a component.
    pub fn unused() -> P2State {
        P2State {}
    }
}

/// Defines the WASI 0.2 imports kiln offers in `linker`.
pub fn add_to_linker(_linker: &mut wasmtime::component::Linker<StepState>) -> wasmtime::Result<()> {
    Ok(())
}
