//! Build secrets: memory-only values a step can use and no image, log,
//! cache or file ever contains.
//!
//! - [`SecretSpec`]: the `--secret` flag's syntax, buildx's defaults (pure).
//! - [`SecretStore`]: the values, read once into zeroizing, redacting,
//!   RAM-locked buffers ([`Secret`]).
//! - [`LeakScanner`]: finds secrets (raw, hex, base64) in layers, the image
//!   config and step output; [`MaskingWriter`] masks them in output.
//!
//! The step side (a read-only in-memory mount, `crate::vfs::SecretFs`) and
//! the build side (missing secrets, the leak guard) are in `crate::build`.

pub mod mount;
mod scan;
mod spec;
mod store;

pub use scan::{Hit, LeakScanner, MASK, MIN_SCAN_BYTES, MaskingWriter, PATTERN_PREFIX, StreamScan};
pub use spec::{SecretSource, SecretSpec};
pub use store::{DEFAULT_MAX_SECRET_BYTES, Secret, SecretError, SecretStore, WAIT_NOTICE};
