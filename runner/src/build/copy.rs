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

use std::sync::Arc;

use globset::GlobBuilder;

use super::{Build, BuildError, users};
use crate::context::{self, Context, ContextOpener, EntryKind};
use crate::digest::Digest;
use crate::frontend::{self, CopySource, Diagnostic, Word};
use crate::image::Image;
use crate::layer::{Content, PendingChanges};
use crate::snapshot::{Change, ImagePath, Meta, Node, Snapshot};

/// A planned COPY.
pub(super) struct Planned {
    /// What the layer will contain.
    pub changes: PendingChanges,
    /// The history entry.
    pub created_by: String,
}

/// What a source path is, with the metadata COPY keeps.
enum Kind {
    Dir {
        mode: u32,
    },
    /// A file; `digest` of its contents when the source knows it already,
    /// and the contents themselves when it read them.
    File {
        size: u64,
        mode: u32,
        digest: Option<Digest>,
        bytes: Option<Vec<u8>>,
    },
    Symlink(String),
    Special,
}

/// Where COPY reads from: the context or another stage's filesystem.
trait Source {
    /// How the source is called in errors.
    fn name(&self) -> String;
    /// What `path` is; `follow` resolves a final symlink. `Ok(None)` when it
    /// does not exist (or is excluded).
    fn kind(&self, path: &str, follow: bool) -> Result<Option<Kind>, String>;
    /// Names inside directory `path`, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, String>;
    /// The contents of file `path`, of `size` bytes, with the `digest` and
    /// `bytes` [`Source::kind`] gave.
    fn content(
        &self,
        path: &str,
        size: u64,
        digest: Option<Digest>,
        bytes: Option<Vec<u8>>,
    ) -> Result<Content, String>;
    /// Every path matching `pattern`, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// Whether `path` is hidden by an ignore file.
    fn excluded(&self, _path: &str) -> bool {
        false
    }
    /// A source as written, as a path in this source.
    fn path(&self, raw: &str) -> String {
        context::clean(raw)
    }
    /// Refuses a source named by a spelling the source does not use.
    fn check_spelling(&self, _path: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Bytes of small context files a COPY plan may hold, read while hashing
/// them, so the layer writer does not open and read them again: a file
/// kept costs its size in memory until the layer is written, one read
/// again costs an open, two reads and a close. 256 MiB keeps every file of
/// a context of 50,000 sources and the peak memory of a build well under
/// what a CI runner has.
const KEEP_BYTES: u64 = 256 << 20;

/// Largest file whose bytes are kept.
const KEEP_FILE: u64 = 64 << 10;

struct ContextSource<'a> {
    ctx: &'a Context,
    opener: Arc<ContextOpener>,
    /// Bytes kept so far (see [`KEEP_BYTES`]).
    kept: std::cell::Cell<u64>,
}

impl Source for ContextSource<'_> {
    fn name(&self) -> String {
        "the build context".into()
    }

    fn kind(&self, path: &str, follow: bool) -> Result<Option<Kind>, String> {
        if self.ctx.is_excluded(path) {
            return Ok(None);
        }
        // A file is hashed now, for the step's cache key (or its digest
        // taken from the stat cache); read again only when the layer is
        // written.
        let keep = if self.kept.get() < KEEP_BYTES {
            KEEP_FILE
        } else {
            0
        };
        match self.ctx.entry_with_contents(path, follow, keep) {
            Ok((EntryKind::Dir, _)) => Ok(Some(Kind::Dir { mode: 0o755 })),
            Ok((EntryKind::File { size, executable }, hashed)) => {
                let (digest, bytes) = match hashed {
                    Some(h) => (Some(h.digest), h.bytes),
                    None => (None, None),
                };
                if let Some(b) = &bytes {
                    self.kept.set(self.kept.get() + b.len() as u64);
                }
                Ok(Some(Kind::File {
                    size,
                    mode: if executable { 0o755 } else { 0o644 },
                    digest,
                    bytes,
                }))
            }
            Ok((EntryKind::Symlink(t), _)) => Ok(Some(Kind::Symlink(t))),
            Ok((EntryKind::Special, _)) => Ok(Some(Kind::Special)),
            Err(context::ContextError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) if follow => Err(format!(
                "{e} (a symlink that leads outside the build context cannot be copied)"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn list(&self, path: &str) -> Result<Vec<String>, String> {
        self.ctx.list(path).map_err(|e| e.to_string())
    }

    fn content(
        &self,
        path: &str,
        size: u64,
        digest: Option<Digest>,
        bytes: Option<Vec<u8>>,
    ) -> Result<Content, String> {
        match (bytes, digest) {
            (Some(bytes), Some(digest)) => return Ok(Content::Hashed { bytes, digest }),
            (Some(bytes), None) => return Ok(Content::Bytes(bytes)),
            (None, _) => {}
        }
        let opener = Arc::clone(&self.opener);
        let rel = path.to_string();
        Ok(Content::Reader {
            size,
            open: Box::new(move || opener.open(&rel)),
            origin: format!("{path} in the build context"),
            digest,
        })
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        self.ctx.glob(pattern).map_err(|e| e.to_string())
    }

    fn excluded(&self, path: &str) -> bool {
        self.ctx.is_excluded(path)
    }

    fn path(&self, raw: &str) -> String {
        context::source_path(raw)
    }

    fn check_spelling(&self, path: &str) -> Result<(), String> {
        self.ctx.check_spelling(path).map_err(|e| e.to_string())
    }
}

struct SnapshotSource {
    name: String,
    snapshot: Snapshot,
}

impl SnapshotSource {
    fn path(&self, path: &str) -> Result<ImagePath, String> {
        ImagePath::parse(path).map_err(|e| e.to_string())
    }
}

impl Source for SnapshotSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn kind(&self, path: &str, follow: bool) -> Result<Option<Kind>, String> {
        let p = self.path(path)?;
        let p = self
            .snapshot
            .resolve(&p, follow)
            .map_err(|e| e.to_string())?;
        Ok(self.snapshot.get(&p).map(|n| match n {
            Node::Dir(m) => Kind::Dir { mode: m.mode },
            Node::File(m, f) => Kind::File {
                size: f.size,
                mode: m.mode,
                digest: Some(f.digest),
                bytes: None,
            },
            Node::Symlink(_, t) => Kind::Symlink(t.clone()),
        }))
    }

    fn list(&self, path: &str) -> Result<Vec<String>, String> {
        let p = self.path(path)?;
        let p = self.snapshot.resolve(&p, true).map_err(|e| e.to_string())?;
        Ok(self
            .snapshot
            .children(&p)
            .map(|(c, _)| c.name().to_string())
            .collect())
    }

    fn content(
        &self,
        path: &str,
        _size: u64,
        _digest: Option<Digest>,
        _bytes: Option<Vec<u8>>,
    ) -> Result<Content, String> {
        let p = self.path(path)?;
        let p = self.snapshot.resolve(&p, true).map_err(|e| e.to_string())?;
        match self.snapshot.get(&p) {
            Some(Node::File(_, f)) => Ok(Content::Stored(*f)),
            _ => Err(format!("{p} is not a file")),
        }
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let m = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid pattern {pattern:?}: {}", e.kind()))?
            .compile_matcher();
        Ok(self
            .snapshot
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| !p.is_empty() && m.is_match(p))
            .map(str::to_string)
            .collect())
    }
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
            context_source = ContextSource {
                ctx: b.context,
                opener: Arc::new(b.context.opener()?),
                kept: std::cell::Cell::new(0),
            };
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
        self.changes.insert(path, Change::Put(node));
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

    /// Copies the contents of directory `from` (in `source`) into `to`.
    fn copy_dir(&mut self, source: &dyn Source, from: &str, to: &ImagePath) -> Result<(), String> {
        let mut stack = vec![(from.to_string(), to.clone())];
        while let Some((dir, target)) = stack.pop() {
            for name in source.list(&dir)? {
                let src = context::join(&dir, &name);
                if source.excluded(&src) {
                    continue;
                }
                let dst = target.join(&name);
                match source.kind(&src, false)? {
                    Some(Kind::Dir { mode }) => {
                        let meta = self.meta(mode);
                        self.put(dst.clone(), Node::Dir(meta));
                        stack.push((src, dst));
                    }
                    Some(Kind::File {
                        size,
                        mode,
                        digest,
                        bytes,
                    }) => {
                        let content = source.content(&src, size, digest, bytes)?;
                        let meta = self.meta(mode);
                        self.put(dst, Node::File(meta, content));
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
        }
        Ok(())
    }
}
