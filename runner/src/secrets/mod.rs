//! Build secrets. Today: the `--secret` flag's syntax ([`SecretSpec`]).
//! Serving secrets to steps (memory-only mounts, the leak guard, masked
//! output) needs wasm steps and comes with them.

mod spec;

pub use spec::{SecretSource, SecretSpec};
