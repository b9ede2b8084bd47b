//! Where COPY reads from: the build context, or the filesystem of another
//! stage or image (`--from`), behind one [`Source`] trait.

use std::sync::Arc;

use globset::GlobBuilder;

use crate::context::{self, Context, ContextOpener, EntryKind};
use crate::digest::Digest;
use crate::layer::Content;
use crate::snapshot::{ImagePath, Node, Snapshot};

/// What a source path is, with the metadata COPY keeps.
pub(super) enum Kind {
    Dir {
        mode: u32,
    },
    /// A file; `digest` of its contents when the source knows it already,
    /// and the contents themselves when it read them (`read`: it read the
    /// file now, rather than knowing its digest from a cache).
    File {
        size: u64,
        mode: u32,
        digest: Option<Digest>,
        bytes: Option<Vec<u8>>,
        read: bool,
    },
    Symlink(String),
    Special,
}

/// Where COPY reads from: the context or another stage's filesystem.
pub(super) trait Source {
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

pub(super) struct ContextSource<'a> {
    ctx: &'a Context,
    opener: Arc<ContextOpener>,
    /// Bytes kept so far (see [`KEEP_BYTES`]).
    kept: std::cell::Cell<u64>,
}

impl<'a> ContextSource<'a> {
    /// The files of `ctx`.
    pub(super) fn new(ctx: &'a Context) -> Result<Self, context::ContextError> {
        Ok(ContextSource {
            ctx,
            opener: Arc::new(ctx.opener()?),
            kept: std::cell::Cell::new(0),
        })
    }
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
                let (digest, bytes, read) = match hashed {
                    Some(h) => (Some(h.digest), h.bytes, h.read),
                    None => (None, None, false),
                };
                if let Some(b) = &bytes {
                    self.kept.set(self.kept.get() + b.len() as u64);
                }
                Ok(Some(Kind::File {
                    size,
                    mode: if executable { 0o755 } else { 0o644 },
                    digest,
                    bytes,
                    read,
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
            open: Arc::new(move || opener.open(&rel)),
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

pub(super) struct SnapshotSource {
    /// How it is called in errors.
    pub name: String,
    /// The filesystem.
    pub snapshot: Snapshot,
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
                read: false,
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
