//! The build context: the host directory COPY reads from, seen through
//! cap-std so nothing outside it is reachable.
//!
//! Every access goes through a `cap_std::fs::Dir` opened on the context root:
//! `..`, absolute paths and symlinks that lead outside fail instead of
//! reading the host. Paths inside the context are `/`-separated and relative
//! ([`ContextPath`]); `.kilnignore` (or `.dockerignore` when there is no
//! `.kilnignore`) excludes paths the way Docker does (see `ignore.rs`).
//!
//! Host metadata never reaches an image: a file is executable or not, by
//! its contents (never the host's mode bits, which Windows does not have),
//! and timestamps and owners are never read. `portable.rs` holds the rules
//! that make a context read the same on every host (executable files, names
//! that differ only in case, `\` in source paths).

mod ignore;
mod portable;
mod stat_cache;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use globset::GlobBuilder;

pub use ignore::{IgnoreError, IgnoreRules};
pub use portable::{case_fold, source_path};
pub use stat_cache::StatCache;

use crate::digest::{Digest, Hasher};
use crate::file_identity::FileIdentity;

/// The names of the ignore files, in order of preference.
pub const IGNORE_FILES: [&str; 2] = [".kilnignore", ".dockerignore"];

/// Largest ignore file read, a text of patterns written by people.
const MAX_IGNORE_BYTES: u64 = 1 << 20;

/// How many directories a context keeps open (see [`OpenDirs`]).
const OPEN_DIRS: usize = 8;

/// A path inside the context, relative to its root, `/`-separated,
/// normalized (empty for the root itself).
pub type ContextPath = String;

/// Errors reading the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be opened.
    #[error("cannot open the build context {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An ignore file with a bad pattern.
    #[error("{file}: {source}")]
    Ignore {
        /// `.kilnignore` or `.dockerignore`.
        file: &'static str,
        /// The problem.
        #[source]
        source: IgnoreError,
    },
    /// Two names in one directory that differ only in case or Unicode
    /// normalization: one file on Windows and macOS.
    #[error(
        "the build context has both {first:?} and {second:?} in {dir}: names that differ only in case (or in Unicode normalization) are one file on Windows and macOS, so this context cannot give the same image on every host; rename one, or exclude it in .kilnignore"
    )]
    Collision {
        /// The directory, as a context path (`.` for the root).
        dir: String,
        /// The first name, in sorted order.
        first: String,
        /// The name that collides with it.
        second: String,
    },
    /// A source spelled differently from the name in the context.
    #[error(
        "{wanted:?} is not in the build context, but {found:?} is: names are case-sensitive on every host (a case-insensitive filesystem must not make a build copy different files), so write it as the context spells it"
    )]
    Spelling {
        /// The path as written.
        wanted: String,
        /// The path as the context spells it.
        found: String,
    },
    /// An I/O error on a context path.
    #[error("{path}: {source}")]
    Io {
        /// The path in the context.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a context path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of this size; `executable` by its first bytes, the
    /// same on every host (see `portable.rs`).
    File {
        /// Size in bytes.
        size: u64,
        /// Whether it is a script (`#!`), a wasm or an ELF binary.
        executable: bool,
    },
    /// A symlink and its target, as written.
    Symlink(String),
    /// A socket, fifo or device: never copied.
    Special,
}

/// A context file's sha256, and its bytes when they were read and wanted
/// (see [`Context::entry_with_contents`]).
#[derive(Debug)]
pub struct Hashed {
    /// The sha256 of its contents.
    pub digest: Digest,
    /// Its contents.
    pub bytes: Option<Vec<u8>>,
    /// Whether it was read now (not found in the stat cache).
    pub read: bool,
}

/// An open build context.
#[derive(Debug)]
pub struct Context {
    dir: Arc<Dir>,
    root: PathBuf,
    ignore: IgnoreRules,
    ignore_file: Option<&'static str>,
    stat_cache: Option<Arc<StatCache>>,
    open_dirs: OpenDirs,
}

/// The directories a context looked into last, kept open so that a walk
/// stats each name with one system call relative to its directory instead
/// of resolving its whole path from the root again (cap-std's sandboxed
/// stat of a deep path opens its parent, stats, and closes it).
#[derive(Debug, Default)]
struct OpenDirs(Mutex<Vec<(String, Arc<Dir>)>>);

impl OpenDirs {
    /// Directory `path` (not empty) of `root`, opened now or earlier.
    fn get(&self, root: &Dir, path: &str) -> io::Result<Arc<Dir>> {
        let mut dirs = self.0.lock().expect("open dirs lock");
        if let Some(at) = dirs.iter().position(|(p, _)| p == path) {
            let entry = dirs.remove(at);
            let dir = Arc::clone(&entry.1);
            dirs.push(entry);
            return Ok(dir);
        }
        let dir = Arc::new(root.open_dir(os_path(path))?);
        if dirs.len() == OPEN_DIRS {
            dirs.remove(0);
        }
        dirs.push((path.to_string(), Arc::clone(&dir)));
        Ok(dir)
    }
}

impl Context {
    /// Opens the context at `root` and reads its ignore file.
    pub fn open(root: &Path) -> Result<Context, ContextError> {
        let dir = Dir::open_ambient_dir(root, ambient_authority()).map_err(|source| {
            ContextError::Open {
                path: root.to_path_buf(),
                source,
            }
        })?;
        let mut ignore = IgnoreRules::default();
        let mut ignore_file = None;
        for name in IGNORE_FILES {
            match dir.open(name) {
                Ok(f) => {
                    let mut text = String::new();
                    f.take(MAX_IGNORE_BYTES)
                        .read_to_string(&mut text)
                        .map_err(|source| ContextError::Io {
                            path: name.to_string(),
                            source,
                        })?;
                    ignore = IgnoreRules::parse(&text)
                        .map_err(|source| ContextError::Ignore { file: name, source })?;
                    ignore_file = Some(name);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ContextError::Io {
                        path: name.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(Context {
            dir: Arc::new(dir),
            root: root.to_path_buf(),
            ignore,
            ignore_file,
            stat_cache: None,
            open_dirs: OpenDirs::default(),
        })
    }

    /// Keeps the digests of files hashed through this context's openers
    /// in `cache`, and takes them from it when a file is unchanged.
    pub fn use_stat_cache(&mut self, cache: Arc<StatCache>) {
        self.stat_cache = Some(cache);
    }

    /// The stat cache in use, to save when the build ends.
    pub fn stat_cache(&self) -> Option<&StatCache> {
        self.stat_cache.as_deref()
    }

    /// The host directory (for messages only; never opened by path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore file in use, if any.
    pub fn ignore_file(&self) -> Option<&'static str> {
        self.ignore_file
    }

    /// Whether the ignore file excludes `path`.
    pub fn is_excluded(&self, path: &str) -> bool {
        !path.is_empty() && self.ignore.is_excluded(path)
    }

    fn io(path: &str) -> impl FnOnce(io::Error) -> ContextError + '_ {
        move |source| ContextError::Io {
            path: display(path),
            source,
        }
    }

    /// What `path` is, without following a final symlink.
    pub fn entry(&self, path: &str) -> Result<EntryKind, ContextError> {
        Ok(self.inspect(path, false, None)?.0)
    }

    /// What `path` is, following symlinks (inside the context only).
    pub fn entry_followed(&self, path: &str) -> Result<EntryKind, ContextError> {
        Ok(self.inspect(path, true, None)?.0)
    }

    /// What `path` is (following a final symlink when `follow`), and for a
    /// regular file the sha256 of its contents: from the stat cache when
    /// the file is unchanged since it was hashed, else read, once.
    pub fn entry_with_digest(
        &self,
        path: &str,
        follow: bool,
    ) -> Result<(EntryKind, Option<Digest>), ContextError> {
        let (kind, hashed) = self.inspect(path, follow, Some(0))?;
        Ok((kind, hashed.map(|h| h.digest)))
    }

    /// [`Context::entry_with_digest`], and the file's bytes when it had to
    /// be read and is no larger than `keep`: a COPY then writes them
    /// without opening the file again.
    pub fn entry_with_contents(
        &self,
        path: &str,
        follow: bool,
        keep: u64,
    ) -> Result<(EntryKind, Option<Hashed>), ContextError> {
        self.inspect(path, follow, Some(keep))
    }

    /// `hash`: `None` to learn only the kind, else hash a file and keep its
    /// bytes up to that size.
    fn inspect(
        &self,
        path: &str,
        follow: bool,
        hash: Option<u64>,
    ) -> Result<(EntryKind, Option<Hashed>), ContextError> {
        let (dir, name) = self.parent(path).map_err(Self::io(path))?;
        let meta = if follow {
            dir.metadata(name)
        } else {
            dir.symlink_metadata(name)
        }
        .map_err(Self::io(path))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            return self.file(&dir, name, path, &meta, hash);
        } else if ft.is_symlink() {
            let target = dir.read_link_contents(name).map_err(Self::io(path))?;
            EntryKind::Symlink(target.to_string_lossy().replace('\\', "/"))
        } else {
            EntryKind::Special
        };
        Ok((kind, None))
    }

    /// A regular file: executable or not, and with `hash`, its digest from
    /// the stat cache or read (see [`Context::inspect`]).
    fn file(
        &self,
        dir: &Dir,
        name: &Path,
        path: &str,
        meta: &cap_std::fs::Metadata,
        hash: Option<u64>,
    ) -> Result<(EntryKind, Option<Hashed>), ContextError> {
        let size = meta.len();
        let identity = FileIdentity::of_cap(meta);
        let cache = self.stat_cache.as_deref();
        if let Some((digest, executable)) = cache.and_then(|c| c.get(path, &identity)) {
            let hashed = Hashed {
                digest,
                bytes: None,
                read: false,
            };
            return Ok((EntryKind::File { size, executable }, Some(hashed)));
        }
        let file = dir.open(name).map_err(Self::io(path))?;
        let Some(keep) = hash else {
            let executable = portable::file_is_executable(file).map_err(Self::io(path))?;
            return Ok((EntryKind::File { size, executable }, None));
        };
        let (hashed, len, executable) = if size <= keep {
            let mut bytes = Vec::with_capacity(size as usize);
            file.into_std()
                .take(size + 1)
                .read_to_end(&mut bytes)
                .map_err(Self::io(path))?;
            let executable = portable::is_executable(&bytes[..bytes.len().min(4)]);
            let digest = Digest::of(&bytes);
            let len = bytes.len() as u64;
            let hashed = Hashed {
                digest,
                bytes: Some(bytes),
                read: true,
            };
            (hashed, len, executable)
        } else {
            let (digest, len, executable) = hash_file(file).map_err(Self::io(path))?;
            (
                Hashed {
                    digest,
                    bytes: None,
                    read: true,
                },
                len,
                executable,
            )
        };
        if len != size {
            return Err(ContextError::Io {
                path: display(path),
                source: io::Error::other("it changed while the build read it; run the build again"),
            });
        }
        if let Some(cache) = cache {
            cache.put(path, identity, hashed.digest, executable);
        }
        Ok((EntryKind::File { size, executable }, Some(hashed)))
    }

    /// The directory holding `path` and its last component: the root and
    /// `.` for the root itself.
    fn parent<'p>(&self, path: &'p str) -> io::Result<(Arc<Dir>, &'p Path)> {
        match path.rsplit_once('/') {
            _ if path.is_empty() => Ok((self.root_dir()?, Path::new("."))),
            None => Ok((self.root_dir()?, Path::new(path))),
            Some((parent, name)) => Ok((self.open_dirs.get(&self.dir, parent)?, Path::new(name))),
        }
    }

    fn root_dir(&self) -> io::Result<Arc<Dir>> {
        Ok(Arc::clone(&self.dir))
    }

    /// The names in directory `path`, sorted bytewise, ignored ones dropped.
    pub fn list(&self, path: &str) -> Result<Vec<String>, ContextError> {
        let entries = if path.is_empty() {
            self.dir.entries()
        } else {
            self.dir.read_dir(os_path(path))
        }
        .map_err(Self::io(path))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(path))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(ContextError::Io {
                    path: display(path),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("file name {name:?} is not valid UTF-8"),
                    ),
                });
            };
            let child = join(path, name);
            if !self.is_excluded(&child) {
                names.push(name.to_string());
            }
        }
        names.sort();
        portable::check_collisions(path, &names)?;
        Ok(names)
    }

    /// Checks that `path` is spelled as the context spells it, component by
    /// component, where a case-insensitive filesystem would find it anyway
    /// (or where it is missing but a differently spelled name is there).
    /// A path that is simply missing passes: the caller reports it.
    pub fn check_spelling(&self, path: &str) -> Result<(), ContextError> {
        let mut dir = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let names = match self.list(&dir) {
                Ok(names) => names,
                Err(e @ ContextError::Collision { .. }) => return Err(e),
                // Missing or unreadable: the caller's own read says why.
                Err(_) => return Ok(()),
            };
            if let Some(found) = portable::misspelled(part, &names) {
                return Err(ContextError::Spelling {
                    wanted: path.to_string(),
                    found: join(&dir, found),
                });
            }
            dir = join(&dir, part);
        }
        Ok(())
    }

    /// Opens a regular file for reading (following symlinks inside the context).
    pub fn open_file(&self, path: &str) -> Result<cap_std::fs::File, ContextError> {
        self.dir.open(os_path(path)).map_err(Self::io(path))
    }

    /// A handle that can open files later, on another call stack (the layer
    /// writer reads sources while streaming).
    pub fn opener(&self) -> Result<ContextOpener, ContextError> {
        Ok(ContextOpener {
            dir: self.dir.try_clone().map_err(Self::io(""))?,
        })
    }

    /// Every non-ignored path matching the glob `pattern` (relative, cleaned),
    /// sorted. `*`, `?` and `[...]` do not cross `/`.
    pub fn glob(&self, pattern: &str) -> Result<Vec<ContextPath>, ContextError> {
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| ContextError::Io {
                path: pattern.to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid pattern: {}", e.kind()),
                ),
            })?
            .compile_matcher();
        // Walk only as deep as the pattern has components.
        let depth = pattern.split('/').count();
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), 0usize)];
        while let Some((dir, level)) = stack.pop() {
            for name in self.list(&dir)? {
                let child = join(&dir, &name);
                if level + 1 == depth {
                    if matcher.is_match(&child) {
                        out.push(child);
                    }
                } else if matches!(self.entry_followed(&child), Ok(EntryKind::Dir)) {
                    stack.push((child, level + 1));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Opens context files by path after the [`Context`] borrow has ended.
#[derive(Debug)]
pub struct ContextOpener {
    dir: Dir,
}

impl ContextOpener {
    /// Opens `path` for reading.
    pub fn open(&self, path: &str) -> io::Result<Box<dyn Read + Send>> {
        let f = self.dir.open(os_path(path))?;
        Ok(Box::new(io::BufReader::with_capacity(
            256 << 10,
            f.into_std(),
        )))
    }

    /// A second handle to the same directory.
    pub fn try_clone(&self) -> io::Result<ContextOpener> {
        Ok(ContextOpener {
            dir: self.dir.try_clone()?,
        })
    }
}

/// The sha256 of `file`'s contents, their length, and whether they make it
/// executable.
fn hash_file(file: cap_std::fs::File) -> io::Result<(Digest, u64, bool)> {
    let mut file = file.into_std();
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut head = Vec::with_capacity(4);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let more = (4 - head.len()).min(n);
        head.extend_from_slice(&buf[..more]);
        hasher.update(&buf[..n]);
    }
    let (digest, len) = hasher.finish();
    Ok((digest, len, portable::is_executable(&head)))
}

/// Joins a context dir path and a name.
pub fn join(dir: &str, name: &str) -> ContextPath {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Cleans a COPY source path to a context path: leading `/` and `.` dropped,
/// `..` stops at the context root (as Docker does).
pub fn clean(path: &str) -> ContextPath {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn display(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.to_string()
    }
}

fn os_path(path: &str) -> PathBuf {
    if path.is_empty() {
        PathBuf::from(".")
    } else {
        path.split('/').collect()
    }
}

#[cfg(test)]
mod tests;
