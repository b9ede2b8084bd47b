//! COPY: Docker's rules for sources and destinations, turned into changes.
//!
//! - Sources are paths in the build context (cleaned; `..` stops at the
//!   context root; `\` separates components like `/`, on every host; spelled
//!   as the context spells them, even on a case-insensitive host), globs
//!   (`*`, `?`, `[...]`), here-documents, or paths in another stage or image
//!   with `--from`.
//! - A directory source copies its contents, not the directory itself.
//! - The destination is a directory when it ends in `/`, when it already is
//!   one in the image, or when there are several sources (then the `/` is
//!   required, as in Docker). Relative destinations start at WORKDIR;
//!   symlinks in the destination are followed inside the image.
//! - Missing parent directories are created (0755).
//!
//! Metadata never comes from the host: files are 0644, or 0755 when their
//! contents make them executable (`#!`, wasm, ELF: `context/portable.rs`,
//! the same on every host); directories 0755; owner root unless `--chown`;
//! mode from `--chmod` when given; every mtime is the build's epoch. Copies
//! from another stage or image keep their modes.

use super::copy_ahead::Ahead;
use super::copy_source::{ContextSource, Kind, SnapshotSource, Source};
use super::{Build, BuildError, users};
use crate::context;
use crate::frontend::{self, CopySource, Diagnostic, Word};
use crate::image::Image;
use crate::layer::{Content, LayerStream, PendingChanges};
use crate::snapshot::{Change, ImagePath, Meta, Node, Snapshot};

/// A planned COPY.
pub(super) struct Planned {
    /// What the layer will contain.
    pub changes: PendingChanges,
    /// The history entry.
    pub created_by: String,
    /// The layer of `changes`, written while they were planned
    /// (`copy_ahead.rs`): finish it on a miss.
    pub ahead: Option<LayerStream>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Plans a COPY against the current `snapshot`.
pub(super) fn plan(
    b: &Build<'_>,
    step: usize,
    copy: &frontend::Copy,
    expand: &dyn Fn(&Word) -> Result<String, Diagnostic>,
    snapshot: &Snapshot,
    workdir: &ImagePath,
    current_stage: usize,
) -> Result<Planned, BuildError> {
    let kf = b.kilnfile;
    let mut flags = Vec::new();

    // --from
    let from_source: Option<(Word, SnapshotSource)> = match &copy.from {
        Some(w) => {
            let name = expand(w)?;
            flags.push(format!("--from={name}"));
            let source = match kf.stage(&name).filter(|s| s.index < current_stage) {
                Some(stage) => SnapshotSource {
                    name: format!("stage {name}"),
                    snapshot: b.stage_result(stage.index)?.snapshot,
                },
                None => {
                    let platform = b.opts.platform.as_ref();
                    let desc = b.image(&name, platform, step).map_err(|e| {
                        b.image_error(
                            w.span.clone(),
                            format!("--from={name}: not an earlier stage, and {e}"),
                        )
                    })?;
                    let image = Image::load(b.store, &desc, platform)?;
                    SnapshotSource {
                        name: format!("image {name}"),
                        snapshot: image.snapshot(b.store)?,
                    }
                }
            };
            Some((w.clone(), source))
        }
        None => None,
    };

    // --chown and --chmod
    let (uid, gid) = match &copy.chown {
        Some(w) => {
            let spec = expand(w)?;
            flags.push(format!("--chown={spec}"));
            users::resolve(b.store, snapshot, &spec).map_err(|e| kf.error(w.span.clone(), e))?
        }
        None => (0, 0),
    };
    let chmod = match &copy.chmod {
        Some(w) => {
            let text = expand(w)?;
            flags.push(format!("--chmod={text}"));
            Some(frontend::parse_chmod(&text).map_err(|e| kf.error(w.span.clone(), e))?)
        }
        None => None,
    };

    let context_source;
    let source: &dyn Source = match &from_source {
        Some((_, s)) => s,
        None => {
            context_source = ContextSource::new(b.context)?;
            &context_source
        }
    };

    // Destination.
    let dest_raw = expand(&copy.dest)?;
    if dest_raw.is_empty() {
        return Err(kf
            .error(copy.dest.span.clone(), "COPY needs a destination")
            .into());
    }
    let dest_says_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
    let dest = ImagePath::resolve(workdir, &dest_raw)
        .map_err(|e| kf.error(copy.dest.span.clone(), e.to_string()))?;
    let dest = snapshot
        .resolve(&dest, true)
        .map_err(|e| kf.error(copy.dest.span.clone(), e.to_string()))?;

    // Expand sources: globs to their matches.
    enum Src {
        Path(String, Word),
        Doc { name: String, body: Vec<u8> },
    }
    let mut sources = Vec::new();
    let mut shown = Vec::new();
    for s in &copy.sources {
        match s {
            CopySource::Path(w) => {
                let raw = expand(w)?;
                shown.push(raw.clone());
                let cleaned = source.path(&raw);
                if has_glob(&cleaned) {
                    let matches = source
                        .glob(&cleaned)
                        .map_err(|e| kf.error(w.span.clone(), e))?;
                    if matches.is_empty() {
                        return Err(kf
                            .error(
                                w.span.clone(),
                                format!("no files in {} match {raw:?}", source.name()),
                            )
                            .into());
                    }
                    sources.extend(matches.into_iter().map(|m| Src::Path(m, w.clone())));
                } else {
                    source
                        .check_spelling(&cleaned)
                        .map_err(|e| kf.error(w.span.clone(), e))?;
                    sources.push(Src::Path(cleaned, w.clone()));
                }
            }
            CopySource::HereDoc {
                name,
                body,
                expand: exp,
            } => {
                shown.push(format!("<<{name}"));
                let text = if *exp {
                    expand(body)?
                } else {
                    body.raw.clone()
                };
                sources.push(Src::Doc {
                    name: name.clone(),
                    body: text.into_bytes(),
                });
            }
        }
    }
    let multiple = sources.len() > 1;
    if multiple && !dest_says_dir {
        return Err(kf
            .error(
                copy.dest.span.clone(),
                format!("COPY with more than one source needs a directory destination ending in /, like {dest_raw}/"),
            )
            .into());
    }
    let dest_is_dir = dest_says_dir || multiple || snapshot.get(&dest).is_some_and(Node::is_dir);

    let mut plan = Plan {
        snapshot,
        changes: PendingChanges::new(),
        dir_meta: Meta {
            mode: 0o755,
            uid,
            gid,
            mtime: b.epoch,
        },
        uid,
        gid,
        chmod,
        epoch: b.epoch,
        skipped: 0,
        ahead: match from_source {
            None => Ahead::new(b),
            Some(_) => Ahead::off(),
        },
    };
    for src in sources {
        match src {
            Src::Doc { name, body } => {
                let target = if dest_is_dir {
                    dest.join(&name)
                } else {
                    dest.clone()
                };
                let at = copy.dest.span.clone();
                plan.parents(&target).map_err(|e| kf.error(at, e))?;
                let meta = plan.meta(0o644);
                plan.put(target, Node::File(meta, Content::Bytes(body)));
            }
            Src::Path(path, word) => {
                let err = |m: String| kf.error(word.span.clone(), m);
                let kind = match source.kind(&path, true).map_err(err)? {
                    Some(k) => k,
                    None if source.excluded(&path) => {
                        return Err(err(format!(
                            "{:?} is excluded from the build context by {}",
                            display(&path),
                            b.context.ignore_file().unwrap_or(".kilnignore")
                        ))
                        .into());
                    }
                    None => {
                        return Err(err(format!(
                            "{:?} is not in {}",
                            display(&path),
                            source.name()
                        ))
                        .into());
                    }
                };
                match kind {
                    Kind::Dir { .. } => {
                        plan.parents(&dest).map_err(err)?;
                        if !snapshot.get(&dest).is_some_and(Node::is_dir) && !dest.is_root() {
                            let meta = plan.dir_meta_with_chmod();
                            plan.put(dest.clone(), Node::Dir(meta));
                        }
                        plan.copy_dir(source, &path, &dest).map_err(err)?;
                    }
                    Kind::File {
                        size,
                        mode,
                        digest,
                        bytes,
                        ..
                    } => {
                        let name = path.rsplit('/').next().unwrap_or(&path);
                        let target = if dest_is_dir {
                            dest.join(name)
                        } else {
                            dest.clone()
                        };
                        if target.is_root() {
                            return Err(err("cannot copy a file onto /".into()).into());
                        }
                        plan.parents(&target).map_err(err)?;
                        let content = source.content(&path, size, digest, bytes).map_err(err)?;
                        let meta = plan.meta(mode);
                        plan.put(target, Node::File(meta, content));
                    }
                    Kind::Symlink(_) | Kind::Special => {
                        return Err(err(format!(
                            "{:?} is not a regular file or directory",
                            display(&path)
                        ))
                        .into());
                    }
                }
            }
        }
    }
    if plan.skipped > 0 {
        b.steps.warn(&format!(
            "COPY skipped {} socket(s), fifo(s) or device(s): they cannot be part of an image",
            plan.skipped
        ));
    }
    let mut created_by = String::from("COPY ");
    for f in flags {
        created_by.push_str(&f);
        created_by.push(' ');
    }
    created_by.push_str(&shown.join(" "));
    created_by.push(' ');
    created_by.push_str(&dest_raw);
    created_by.push_str(" # kiln");
    Ok(Planned {
        changes: plan.changes,
        created_by,
        ahead: plan.ahead.into_stream(),
    })
}

fn display(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

struct Plan<'s> {
    snapshot: &'s Snapshot,
    changes: PendingChanges,
    dir_meta: Meta,
    uid: u32,
    gid: u32,
    chmod: Option<u32>,
    epoch: i64,
    skipped: usize,
    /// The layer written while planning.
    ahead: Ahead,
}

impl Plan<'_> {
    fn meta(&self, mode: u32) -> Meta {
        Meta {
            mode: self.chmod.unwrap_or(mode),
            uid: self.uid,
            gid: self.gid,
            mtime: self.epoch,
        }
    }

    fn dir_meta_with_chmod(&self) -> Meta {
        self.meta(0o755)
    }

    fn put(&mut self, path: ImagePath, node: Node<Content>) {
        self.put_read(path, node, None);
    }

    /// [`Plan::put`] of a file read just now, whose contents `fresh` go to
    /// the layer written ahead (`node` refers to them without the bytes).
    fn put_read(&mut self, path: ImagePath, node: Node<Content>, fresh: Option<Content>) {
        let change = Change::Put(node);
        self.ahead.follow(&self.changes, &path, &change, fresh);
        self.changes.insert(path, change);
    }

    /// Whether `path` is a directory after the changes planned so far.
    fn is_dir(&self, path: &ImagePath) -> Option<bool> {
        match self.changes.get(path) {
            Some(Change::Put(n)) => Some(n.is_dir()),
            Some(_) => Some(false),
            None => self.snapshot.get(path).map(Node::is_dir),
        }
    }

    /// Creates the missing parent directories of `target`.
    fn parents(&mut self, target: &ImagePath) -> Result<(), String> {
        for p in target.ancestors() {
            match self.is_dir(&p) {
                Some(true) => {}
                Some(false) => {
                    return Err(format!(
                        "cannot copy to {target}: {p} exists and is not a directory"
                    ));
                }
                None => {
                    let meta = self.dir_meta;
                    self.put(p, Node::Dir(meta));
                }
            }
        }
        Ok(())
    }

    /// Copies the contents of directory `from` (in `source`) into `to`:
    /// depth first, a directory's contents right after it, each
    /// directory's entries in order, so that the changes come in path order
    /// (which the layer written ahead needs).
    fn copy_dir(&mut self, source: &dyn Source, from: &str, to: &ImagePath) -> Result<(), String> {
        let mut stack = vec![(from.to_string(), to.clone(), source.list(from)?.into_iter())];
        while let Some((dir, target, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let src = context::join(dir, &name);
            if source.excluded(&src) {
                continue;
            }
            let dst = target.join(&name);
            match source.kind(&src, false)? {
                Some(Kind::Dir { mode }) => {
                    let meta = self.meta(mode);
                    self.put(dst.clone(), Node::Dir(meta));
                    let names = source.list(&src)?.into_iter();
                    stack.push((src, dst, names));
                }
                Some(Kind::File {
                    size,
                    mode,
                    digest,
                    bytes,
                    read,
                }) => {
                    let meta = self.meta(mode);
                    if read && self.ahead.wants() {
                        let fresh = source.content(&src, size, digest, bytes)?;
                        let kept = source.content(&src, size, digest, None)?;
                        self.put_read(dst, Node::File(meta, kept), Some(fresh));
                    } else {
                        let content = source.content(&src, size, digest, bytes)?;
                        self.put(dst, Node::File(meta, content));
                    }
                }
                Some(Kind::Symlink(t)) => {
                    let meta = Meta {
                        mode: 0o777,
                        ..self.meta(0o777)
                    };
                    self.put(dst, Node::Symlink(meta, t));
                }
                Some(Kind::Special) => self.skipped += 1,
                None => {}
            }
        }
        Ok(())
    }
}
