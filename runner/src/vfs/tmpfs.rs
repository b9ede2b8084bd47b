//! `--mount=type=tmpfs`: an empty directory whose files live in kiln's
//! memory only and vanish with the step.
//!
//! A tmpfs is an [`OverlayFs`] over an empty snapshot that never spills
//! file contents to disk (unlike the root overlay, which moves large files
//! to an anonymous temp file in the store). So nothing a step puts in a tmpfs
//! ever reaches a disk, and its size cap is a cap on memory: `size=` when
//! given, else [`DEFAULT_TMPFS_SIZE`]. What it holds also counts against the
//! step's `--step-max-write` and `--step-max-files`, like every mount.

use std::sync::Arc;

use super::budget::WriteLimits;
use super::{Clock, OverlayFs};
use crate::snapshot::Snapshot;
use crate::store::Store;

/// Bytes a tmpfs without `size=` may hold. Docker and BuildKit set none (a
/// kernel tmpfs defaults to half the RAM); kiln holds a tmpfs in its own
/// memory, outside the step's `--step-memory`, for every step running in
/// parallel, so it needs a bound that cannot exhaust a small machine: 512 MiB
/// is room for compilers' and test runners' scratch files, and a step per
/// core on a 4-core laptop stays at 2 GiB. A larger `size=` is honoured.
pub const DEFAULT_TMPFS_SIZE: u64 = 512 << 20;

/// A tmpfs backend: memory only, capped at `size` bytes (default
/// [`DEFAULT_TMPFS_SIZE`]). `store` is only where its (empty) lower snapshot
/// would read contents from; none of its bytes go there.
pub fn tmpfs(store: Store, dev: u64, clock: Clock, size: Option<u64>) -> OverlayFs {
    let mut fs = OverlayFs::new(Arc::new(Snapshot::empty()), store, dev, clock);
    fs.memory_only();
    fs.set_limits(WriteLimits {
        max_bytes: size.unwrap_or(DEFAULT_TMPFS_SIZE),
        max_files: u64::MAX,
    });
    fs
}
