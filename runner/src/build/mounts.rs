//! `RUN --mount`: attaching each mount to the step's VFS. Mounts are
//! separate backends in the same view; none of their content and none of
//! their mountpoints ever reach the layer (see `vfs/commit.rs`).
//!
//! - `tmpfs`: an empty filesystem in memory only (`size`, default
//!   [`crate::vfs::DEFAULT_TMPFS_SIZE`], caps what it holds).
//! - `bind` with `from=` a stage or image: that filesystem (or its `source`
//!   subtree), its files read from the store; read-only unless `rw`, and `rw`
//!   writes are dropped with the step.
//! - `bind` from the context: that directory of the context, read-only
//!   through cap-std; with `rw`, a scratch copy whose writes are dropped. When
//!   the context has ignore rules, the mount is a filtered copy, so a file
//!   `.kilnignore` hides can never be reached through a mount either.
//! - `cache`: a directory in the store by id (`kiln/cache/`), kept across
//!   builds, never part of a layer.
//! - `secret`: attached by `crate::secrets::mount`; `ssh`: refused (no agent,
//!   no network).
//!
//! What a step writes into any of them counts against its write limits: the
//! namespace shares one budget with every backend (`vfs/budget.rs`).

use std::sync::Arc;

use super::{Build, BuildError};
use crate::context::{self, Context, EntryKind};
use crate::frontend::{Mount, MountType, Span};
use crate::image::Image;
use crate::snapshot::{ImagePath, Snapshot};
use crate::vfs::{HostFs, OverlayFs, Vfs};

/// Keeps scratch directories of a step alive until it ends.
pub(super) struct Scratch(#[allow(dead_code)] Vec<tempfile::TempDir>);

/// Attaches every mount; `workdir` anchors relative targets.
pub(super) fn attach_all(
    b: &Build<'_>,
    vfs: &mut Vfs,
    mounts: &[(Mount, Span)],
    workdir: &ImagePath,
    clock: &crate::vfs::Clock,
    step: usize,
) -> Result<Scratch, BuildError> {
    let kf = b.kilnfile;
    let mut scratch = Vec::new();
    let mut attached: Vec<ImagePath> = Vec::new();
    for (i, (m, span)) in mounts.iter().enumerate() {
        let err = |msg: String| -> BuildError { kf.error(span.clone(), msg).into() };
        let target = m.target.as_deref().unwrap_or("/");
        let target = ImagePath::resolve(workdir, target).map_err(|e| err(e.to_string()))?;
        // Secret mounts are attached by `crate::secrets::mount`, beside
        // these.
        if m.kind == MountType::Secret {
            continue;
        }
        if let Some(other) = attached
            .iter()
            .find(|a| target.starts_with(a) || a.starts_with(&target))
        {
            let why = if *other == target {
                "another mount of this step is there".to_string()
            } else {
                let (inner, outer) = if target.starts_with(other) {
                    (&target, other)
                } else {
                    (other, &target)
                };
                format!(
                    "{inner} would be inside the mount at {outer}, and kiln does not mount \
                     inside another mount yet; mount them side by side, or put the inner one's \
                     files into the outer source"
                )
            };
            return Err(err(format!("cannot mount at {target}: {why}")));
        }
        attached.push(target.clone());
        let dev = 2 + i as u64;
        let clock = clock.clone();
        match m.kind {
            MountType::Tmpfs => {
                let fs = crate::vfs::tmpfs(b.store.clone(), dev, clock, m.size);
                vfs.mount(&target, Box::new(fs), true)
                    .map_err(|e| err(format!("cannot mount at {target}: {e}")))?;
            }
            MountType::Bind if m.from.is_some() => {
                let from = m.from.as_deref().expect("checked");
                let snapshot = source_snapshot(b, from, step).map_err(|e| {
                    if b.opts.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                        BuildError::Cancelled
                    } else {
                        err(e)
                    }
                })?;
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
            MountType::Bind => {
                let source = context::source_path(m.source.as_deref().unwrap_or("."));
                match b.context.entry_followed(&source) {
                    Ok(EntryKind::Dir) => {}
                    Ok(_) => {
                        return Err(err(format!(
                            "bind source {source:?} is not a directory (kiln binds directories)"
                        )));
                    }
                    Err(e) => return Err(err(format!("bind source {source:?}: {e}"))),
                }
                let dir = if m.is_readonly() && b.context.ignore_file().is_none() {
                    b.context.root().join(&source)
                } else {
                    // A copy: writes are dropped with it, and ignored files
                    // are left out.
                    let copy = tempfile::Builder::new()
                        .prefix(".bind-")
                        .tempdir_in(b.store.tmp_dir())
                        .map_err(|e| err(format!("making a scratch copy: {e}")))?;
                    copy_context_tree(b.context, &source, copy.path()).map_err(&err)?;
                    let path = copy.path().to_path_buf();
                    scratch.push(copy);
                    path
                };
                let fs = HostFs::open(&dir, m.is_readonly(), dev)
                    .map_err(|e| err(format!("bind source {source:?}: {e}")))?;
                vfs.mount(&target, Box::new(fs), true)
                    .map_err(|e| err(format!("cannot mount at {target}: {e}")))?;
            }
            MountType::Cache => {
                if m.from.is_some() || m.source.is_some() {
                    return Err(err(
                        "cache mounts seeded from= a stage are not supported yet".into(),
                    ));
                }
                let id = m.id.clone().unwrap_or_else(|| target.absolute());
                let dir = b.store.cache_dir(&id).map_err(|e| err(e.to_string()))?;
                let fs = HostFs::open(&dir, m.is_readonly(), dev)
                    .map_err(|e| err(format!("cache {id:?}: {e}")))?;
                vfs.mount(&target, Box::new(fs), true)
                    .map_err(|e| err(format!("cannot mount at {target}: {e}")))?;
            }
            // Attached by `crate::secrets::mount` (see `run.rs`).
            MountType::Secret => {}
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

/// The filesystem of a stage (earlier in the Kilnfile) or an image (from
/// the store, or pulled into it).
fn source_snapshot(b: &Build<'_>, from: &str, step: usize) -> Result<Snapshot, String> {
    if let Some(stage) = b.kilnfile.stage(from) {
        return b
            .stage_result(stage.index)
            .map(|r| r.snapshot)
            .map_err(|e| e.to_string());
    }
    let platform = b.opts.platform.as_ref();
    let desc = b
        .image(from, platform, step)
        .map_err(|e| format!("from={from}: not a stage, and {e}"))?;
    let image = Image::load(b.store, &desc, platform).map_err(|e| e.to_string())?;
    image.snapshot(b.store).map_err(|e| e.to_string())
}

/// Copies directory `source` of the context (ignored paths left out) into
/// `dest`, symlinks as symlinks.
fn copy_context_tree(ctx: &Context, source: &str, dest: &std::path::Path) -> Result<(), String> {
    let mut stack = vec![(source.to_string(), dest.to_path_buf())];
    while let Some((dir, to)) = stack.pop() {
        for name in ctx.list(&dir).map_err(|e| e.to_string())? {
            let from = context::join(&dir, &name);
            let target = to.join(&name);
            match ctx.entry(&from).map_err(|e| e.to_string())? {
                EntryKind::Dir => {
                    std::fs::create_dir(&target).map_err(|e| e.to_string())?;
                    stack.push((from, target));
                }
                EntryKind::File { .. } => {
                    let mut src = ctx
                        .opener()
                        .map_err(|e| e.to_string())?
                        .open(&from)
                        .map_err(|e| e.to_string())?;
                    let mut out = std::fs::File::create(&target).map_err(|e| e.to_string())?;
                    std::io::copy(&mut src, &mut out).map_err(|e| e.to_string())?;
                }
                EntryKind::Symlink(link) => symlink(&link, &target).map_err(|e| e.to_string())?,
                EntryKind::Special => {}
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &str, link: &std::path::Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &str, link: &std::path::Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}
