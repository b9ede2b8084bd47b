//! `tar -x` and `tar -t`: reads an archive (gzip recognized by its magic
//! bytes), streaming each member. Extraction never leaves the target
//! directory through the archive's names: leading `/` is dropped, a name
//! with `..` is refused, and symlinks are made after everything else, so
//! a member cannot be written through a link the archive itself made
//! (existing links in the target, like a `/lib -> usr/lib`, are followed,
//! as with GNU tar). Modes are restored where the platform has them (never
//! under WASI); times always.
//!
//! Not capped here: the tar crate reads a member's GNU long name or pax
//! header whole. Inside kiln the step's memory limit bounds that.

use std::fs::{self, File, FileTimes};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;
use tar::{Archive, EntryType};

use super::Request;
use crate::cli::{
    COPY_BUFFER, Error, Io, OrFail, Result, StreamError, describe, failed, quote, stream,
};
use crate::show;
use crate::sys;

/// Longest member or link name accepted: Linux's PATH_MAX. Longer names
/// cannot be created anyway, and each deferred symlink keeps its names in
/// memory until the end.
const MAX_NAME: usize = 4096;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Extracts (or with `list_only`, lists) the archive `request` names.
pub(super) fn extract(request: &Request, list_only: bool, io: &mut Io<'_>) -> Result {
    let base = PathBuf::from(request.directory.as_deref().unwrap_or("."));
    if !list_only {
        let meta = fs::metadata(&base)
            .or_fail(|| format!("cannot change to directory {}", quote(&base)))?;
        if !meta.is_dir() {
            return Err(failed(format!(
                "cannot change to directory {}: Not a directory",
                quote(&base)
            )));
        }
    }
    let mut job = Job {
        request,
        list_only,
        base,
        matched: vec![false; request.members.len()],
        symlinks: Vec::new(),
        directories: Vec::new(),
    };
    if request.archive == "-" {
        let stdin = io.take_stdin();
        let result = job.read(&mut *stdin, io);
        io.put_stdin(stdin);
        result?;
    } else {
        let file = File::open(&request.archive)
            .or_fail(|| format!("cannot open {}", quote(&request.archive)))?;
        job.read(file, io)?;
    }
    job.finish(io)
}

struct Job<'r> {
    request: &'r Request,
    list_only: bool,
    base: PathBuf,
    /// Which of the requested members were found.
    matched: Vec<bool>,
    /// Symlinks to make at the end: (path, target).
    symlinks: Vec<(PathBuf, String)>,
    /// Directories made, to give their times and modes at the end (after
    /// their contents changed them): (path, mtime, mode).
    directories: Vec<(PathBuf, u64, u32)>,
}

impl Job<'_> {
    fn read_error(&self, e: &std::io::Error) -> Error {
        failed(format!(
            "{}: cannot read the archive: {}",
            quote(&self.request.archive),
            describe(e)
        ))
    }

    fn read(&mut self, input: impl Read, io: &mut Io<'_>) -> Result {
        let mut input = BufReader::with_capacity(COPY_BUFFER, input);
        let magic = input.fill_buf().map_err(|e| self.read_error(&e))?;
        let gzip = self.request.gzip || magic.starts_with(&GZIP_MAGIC);
        let source: Box<dyn Read + '_> = if gzip {
            Box::new(MultiGzDecoder::new(input))
        } else {
            Box::new(input)
        };
        let mut archive = Archive::new(source);
        let entries = archive.entries().map_err(|e| self.read_error(&e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.read_error(&e))?;
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                continue;
            }
            let raw = entry.path_bytes();
            if raw.len() > MAX_NAME {
                io.error(format!(
                    "a member name is longer than {MAX_NAME} bytes; skipped"
                ));
                continue;
            }
            let Ok(name) = String::from_utf8(raw.into_owned()) else {
                io.error("a member name is not UTF-8; skipped");
                continue;
            };
            if !self.wanted(&name) {
                continue;
            }
            let link = match entry.link_name_bytes() {
                Some(l) if l.len() > MAX_NAME => {
                    io.error(format!(
                        "{name}: link target longer than {MAX_NAME} bytes; skipped"
                    ));
                    continue;
                }
                Some(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                None => None,
            };
            if self.list_only {
                self.list(&entry, &name, link.as_deref(), io)?;
                continue;
            }
            let result = self.extract_one(&mut entry, kind, &name, link, io);
            io.carry_on(result)?;
        }
        Ok(())
    }

    /// Whether `name` is one of the requested members (or below one); all
    /// are when none were named.
    fn wanted(&mut self, name: &str) -> bool {
        if self.request.members.is_empty() {
            return true;
        }
        let clean = |s: &str| match s.trim_end_matches('/').trim_start_matches("./") {
            "." => String::new(),
            rest => rest.to_string(),
        };
        let name = clean(name);
        let mut any = false;
        for (member, matched) in self.request.members.iter().zip(self.matched.iter_mut()) {
            let member = clean(member);
            let below = name
                .strip_prefix(&member)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if below || member.is_empty() {
                *matched = true;
                any = true;
            }
        }
        any
    }

    fn list(
        &self,
        entry: &tar::Entry<'_, impl Read>,
        name: &str,
        link: Option<&str>,
        io: &mut Io<'_>,
    ) -> Result {
        if !self.request.verbose {
            return io.line(name);
        }
        let h = entry.header();
        let kind = h.entry_type();
        let letter = match kind {
            EntryType::Directory => 'd',
            EntryType::Symlink => 'l',
            EntryType::Link => 'h',
            EntryType::Char => 'c',
            EntryType::Block => 'b',
            EntryType::Fifo => 'p',
            _ => '-',
        };
        let suffix = match (kind, link) {
            (EntryType::Symlink, Some(t)) => format!(" -> {t}"),
            (EntryType::Link, Some(t)) => format!(" link to {t}"),
            _ => String::new(),
        };
        io.line(format!(
            "{letter}{} {}/{} {:>8} {} {name}{suffix}",
            show::permissions(h.mode().ok()),
            h.uid().unwrap_or(0),
            h.gid().unwrap_or(0),
            h.size().unwrap_or(0),
            show::date(
                h.mtime()
                    .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX))
            )
        ))
    }

    fn extract_one(
        &mut self,
        entry: &mut tar::Entry<'_, impl Read>,
        kind: EntryType,
        name: &str,
        link: Option<String>,
        io: &mut Io<'_>,
    ) -> Result {
        let Some(dest) = self.destination(name)? else {
            return Ok(()); // nothing left after --strip-components
        };
        if self.request.verbose {
            io.line(name)?;
        }
        let mtime = entry.header().mtime().unwrap_or(0);
        let mode = entry.header().mode().ok();
        match kind {
            EntryType::Directory => {
                make_directory(&dest)?;
                let default = 0o755;
                self.directories
                    .push((dest, mtime, mode.unwrap_or(default)));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                make_parent(&dest)?;
                clear_for_file(&dest)?;
                let mut file = File::create(&dest).or_fail(|| format!("{name}: cannot create"))?;
                match stream(entry, &mut file) {
                    Ok(_) => {}
                    Err(StreamError::Read(e)) => return Err(self.read_error(&e)),
                    Err(StreamError::Write(e)) => {
                        return Err(failed(format!("{name}: cannot write: {}", describe(&e))));
                    }
                }
                let t = UNIX_EPOCH + Duration::from_secs(mtime);
                file.set_times(FileTimes::new().set_modified(t).set_accessed(t))
                    .or_fail(|| format!("{name}: cannot set its time"))?;
                if let Some(mode) = mode {
                    sys::set_mode(&dest, mode & 0o7777)
                        .or_fail(|| format!("{name}: cannot set its mode"))?;
                }
            }
            EntryType::Symlink => {
                let target =
                    link.ok_or_else(|| failed(format!("{name}: symlink without a target")))?;
                make_parent(&dest)?;
                self.symlinks.push((dest, target));
            }
            EntryType::Link => {
                let target =
                    link.ok_or_else(|| failed(format!("{name}: hard link without a target")))?;
                let Some(existing) = self.destination(&target)? else {
                    return Err(failed(format!(
                        "{name}: hard link target {} was stripped away",
                        quote(&target)
                    )));
                };
                make_parent(&dest)?;
                clear_for_file(&dest)?;
                fs::hard_link(&existing, &dest)
                    .or_fail(|| format!("{name}: cannot hard link to {}", quote(&target)))?;
            }
            other => {
                return Err(failed(format!(
                    "{name}: cannot extract a {other:?} entry: only files, directories and links can be made"
                )));
            }
        }
        Ok(())
    }

    /// Where member `name` goes: below the target directory, without a
    /// leading `/` or `.` parts and the first `--strip-components` parts;
    /// `None` when nothing is left; an error for a name with `..`.
    fn destination(&self, name: &str) -> Result<Option<PathBuf>> {
        let mut parts = Vec::new();
        for c in Path::new(name).components() {
            match c {
                Component::Normal(p) => parts.push(p),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(failed(format!(
                        "{name}: member name contains '..'; skipped"
                    )));
                }
            }
        }
        if parts.len() <= self.request.strip {
            return Ok(None);
        }
        let mut dest = self.base.clone();
        dest.extend(&parts[self.request.strip..]);
        Ok(Some(dest))
    }

    /// The symlinks, the directories' times and modes, and members that
    /// were asked for but not found.
    fn finish(self, io: &mut Io<'_>) -> Result {
        for (path, target) in &self.symlinks {
            let result = clear_for_file(path).and_then(|()| {
                sys::symlink(Path::new(target), path)
                    .or_fail(|| format!("cannot create symlink {}", quote(path)))
            });
            io.report(result);
        }
        for (path, mtime, mode) in self.directories.iter().rev() {
            let t = UNIX_EPOCH + Duration::from_secs(*mtime);
            let result = File::open(path)
                .and_then(|f| f.set_times(FileTimes::new().set_modified(t).set_accessed(t)))
                .and_then(|()| sys::set_mode(path, mode & 0o7777))
                .or_fail(|| format!("cannot set the time and mode of {}", quote(path)));
            io.report(result);
        }
        for (member, found) in self.request.members.iter().zip(&self.matched) {
            if !found {
                io.error(format!("{member}: not found in archive"));
            }
        }
        Ok(())
    }
}

/// A directory at `path`: an existing one (or a symlink to one) is kept,
/// a file in the way is replaced.
fn make_directory(path: &Path) -> Result {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_dir() || fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
        fs::remove_file(path).or_fail(|| format!("cannot replace {}", quote(path)))?;
    }
    fs::create_dir_all(path).or_fail(|| format!("cannot create directory {}", quote(path)))
}

/// The parent directories of `path`, made when the archive has no entry
/// for them.
fn make_parent(path: &Path) -> Result {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::create_dir_all(parent)
            .or_fail(|| format!("cannot create directory {}", quote(parent))),
        _ => Ok(()),
    }
}

/// Removes whatever is at `path` so a file or link can be made there; a
/// directory is never replaced by a file.
fn clear_for_file(path: &Path) -> Result {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(failed(format!(
            "cannot overwrite directory {} with a file",
            quote(path)
        ))),
        Ok(_) => fs::remove_file(path).or_fail(|| format!("cannot replace {}", quote(path))),
        Err(_) => Ok(()),
    }
}
