//! kiln: build OCI images whose `RUN` steps are WebAssembly programs.
//!
//! The library does the work; the `kiln` binary is a thin shell over
//! [`cli`]. The parts, in data-flow order (see `docs/architecture.md`):
//!
//! - [`frontend`]: Kilnfile text -> typed stages and instructions (pure).
//! - [`build`]: runs a stage's instructions against a [`snapshot::Snapshot`],
//!   producing layers and an image config.
//! - [`layer`]: a set of filesystem changes -> one deterministic tar layer,
//!   compressed and hashed in one streaming pass.
//! - [`store`]: the content-addressed store on disk (an OCI image layout plus
//!   kiln's file contents and layer indexes).
//! - [`export`]: OCI layout/archive, filesystem tar and local directory outputs.
//! - [`cli`]: the commands and the one printer that owns terminal output.

pub mod build;
pub mod cli;
pub mod context;
pub mod digest;
pub mod exec;
pub mod export;
pub mod file_identity;
pub mod frontend;
pub mod image;
pub mod json;
pub mod layer;
pub mod load;
pub mod network;
pub mod registry;
pub mod secrets;
pub mod shell;
pub mod snapshot;
pub mod step;
pub mod store;
pub mod vfs;
pub mod wasi;

#[cfg(test)]
mod proptests;
