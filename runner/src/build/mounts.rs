//! `RUN --mount`: attaching each mount to the step's VFS. Mounts are
//! separate backends in the same view; none of their content and none of
//! their mountpoints ever reach the layer (see `vfs/commit.rs`).
//!
//! - `tmpfs`: an empty in-memory filesystem (its `size` caps what it holds).
//! - `bind` with `from=` a stage or image: that filesystem (or its `source`
//!   subtree) in memory; read-only unless `rw`, and `rw` writes are dropped
//!   with the step.
//! - `bind` from the context, and `cache`: host directories (coming with the
//!   host backend).
//! - `secret`, `ssh`: not available yet.

use std::sync::Arc;

use super::{Build, BuildError};
use crate::frontend::{Mount, MountType, Span};
use crate::image::Image;
use crate::snapshot::{ImagePath, Snapshot};
use crate::vfs::{OverlayFs, Vfs, WriteLimits};

/// Keeps scratch directories of a step alive until it ends.
pub(super) struct Scratch(#[allow(dead_code)] Vec<tempfile::TempDir>);

/// Attaches every mount; `workdir` anchors relative targets.
pub(super) fn attach_all(
    b: &Build<'_>,
    vfs: &mut Vfs,
    mounts: &[(Mount, Span)],
    workdir: &ImagePath,
) -> Result<Scratch, BuildError> {
    let kf = b.kilnfile;
    let scratch = Vec::new();
    for (i, (m, span)) in mounts.iter().enumerate() {
        let err = |msg: String| -> BuildError { kf.error(span.clone(), msg).into() };
        let target = m.target.as_deref().unwrap_or("/");
        let target = ImagePath::resolve(workdir, target).map_err(|e| err(e.to_string()))?;
        let dev = 2 + i as u64;
        let clock = crate::vfs::system_clock();
        match m.kind {
            MountType::Tmpfs => {
                let mut fs =
                    OverlayFs::new(Arc::new(Snapshot::empty()), b.store.clone(), dev, clock);
                if let Some(size) = m.size {
                    fs.set_limits(WriteLimits {
                        max_bytes: size,
                        max_files: u64::MAX,
                    });
                }
                vfs.mount(&target, Box::new(fs), true)
                    .map_err(|e| err(format!("cannot mount at {target}: {e}")))?;
            }
            MountType::Bind if m.from.is_some() => {
                let from = m.from.as_deref().expect("checked");
                let snapshot = source_snapshot(b, from).map_err(&err)?;
                let source = ImagePath::parse(m.source.as_deref().unwrap_or("/"))
                    .map_err(|e| err(e.to_string()))?;
                let sub = snapshot
                    .subtree(&source)
                    .ok_or_else(|| err(format!("{source} is not a directory in {from}")))?;
                let mut fs = OverlayFs::new(Arc::new(sub), b.store.clone(), dev, clock);
                fs.set_readonly(m.is_readonly());
                vfs.mount(&target, Box::new(fs), true)
                    .map_err(|e| err(format!("cannot mount at {target}: {e}")))?;
            }
            MountType::Bind | MountType::Cache => {
                return Err(err(format!(
                    "type={} mounts of host directories are not available in this kiln yet",
                    m.kind
                )));
            }
            MountType::Secret => {
                return Err(err(
                    "secret mounts are not available in this kiln yet".into()
                ));
            }
            MountType::Ssh => {
                return Err(err(
                    "type=ssh mounts need an SSH agent and the network; kiln steps have neither"
                        .into(),
                ));
            }
        }
    }
    Ok(Scratch(scratch))
}

/// The filesystem of a stage (earlier in the Kilnfile) or a stored image.
fn source_snapshot(b: &Build<'_>, from: &str) -> Result<Snapshot, String> {
    if let Some(stage) = b.kilnfile.stage(from) {
        return b
            .stage_result(stage.index)
            .map(|r| r.snapshot)
            .map_err(|e| e.to_string());
    }
    let desc = b
        .store
        .resolve(from)
        .map_err(|e| format!("from={from}: not a stage, and {e}"))?;
    let image = Image::load(b.store, &desc, None).map_err(|e| e.to_string())?;
    image.snapshot(b.store).map_err(|e| e.to_string())
}
