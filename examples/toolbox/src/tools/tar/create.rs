//! `tar -c`: writes an archive of files and trees, streaming each file's
//! bytes. Entries are in byte order of their names, owners are numeric
//! (no user names: a step has no password database to trust), and under
//! WASI, which has no modes, files are 0644 and directories 0755. A file
//! that changes size while being read stops the archive instead of
//! corrupting it.

use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{Builder, EntryType, Header};

use super::Request;
use crate::cli::{COPY_BUFFER, Error, Io, OrFail, Result, describe, failed, quote, usage};
use crate::fsx::{self, MAX_DEPTH};
use crate::show;
use crate::sys;

/// Writes the archive `request` describes.
pub(super) fn create(request: &Request, io: &mut Io<'_>) -> Result {
    if request.members.is_empty() {
        return Err(usage(
            "refusing to create an empty archive: name the files to put in it",
        ));
    }
    let cwd = || "cannot find the working directory".to_string();
    let to_stdout = request.archive == "-";
    let mut writer = Writer {
        base: request.directory.as_ref().map(PathBuf::from),
        verbose: request.verbose,
        to_stdout,
        archive_path: if to_stdout {
            None
        } else {
            Some(fsx::absolute(Path::new(&request.archive)).or_fail(cwd)?)
        },
        noted_leading: false,
    };
    if let Some(base) = &writer.base {
        let meta =
            fs::metadata(base).or_fail(|| format!("cannot change to directory {}", quote(base)))?;
        if !meta.is_dir() {
            return Err(failed(format!(
                "cannot change to directory {}: Not a directory",
                quote(base)
            )));
        }
    }
    if to_stdout {
        let out = io.take_stdout();
        let result = writer.write(&mut *out, request, io);
        io.put_stdout(out);
        return result;
    }
    let file = File::create(&request.archive)
        .or_fail(|| format!("cannot create archive {}", quote(&request.archive)))?;
    let mut buffered = BufWriter::with_capacity(COPY_BUFFER, file);
    writer.write(&mut buffered, request, io)?;
    buffered
        .flush()
        .map_err(|e| archive_error(&request.archive, &e))
}

fn archive_error(archive: &str, e: &io::Error) -> Error {
    failed(format!(
        "error writing archive {}: {}",
        quote(archive),
        describe(e)
    ))
}

struct Writer {
    /// `-C`: where member names are looked up.
    base: Option<PathBuf>,
    verbose: bool,
    /// The archive is stdout, so `-v` goes to stderr.
    to_stdout: bool,
    /// The archive's own path, never archived into itself.
    archive_path: Option<PathBuf>,
    noted_leading: bool,
}

impl Writer {
    fn write(&mut self, out: &mut dyn Write, request: &Request, io: &mut Io<'_>) -> Result {
        let archive = &request.archive;
        if request.gzip {
            // No file name or time in the gzip header: the same files give
            // the same bytes.
            let gz = GzEncoder::new(out, Compression::default());
            let gz = self.members(Builder::new(gz), request, io)?;
            gz.finish().map_err(|e| archive_error(archive, &e))?;
        } else {
            self.members(Builder::new(out), request, io)?;
        }
        Ok(())
    }

    fn members<W: Write>(
        &mut self,
        mut builder: Builder<W>,
        request: &Request,
        io: &mut Io<'_>,
    ) -> Result<W> {
        for member in &request.members {
            let name = self.member_name(member, io);
            let disk = match &self.base {
                Some(base) => base.join(member),
                None => PathBuf::from(member),
            };
            self.add(&mut builder, &disk, &name, io, 0)?;
        }
        builder
            .into_inner()
            .map_err(|e| archive_error(&request.archive, &e))
    }

    /// A member's name in the archive: relative, without `.` parts and
    /// without anything up to a `..` (as GNU tar, which says so once).
    fn member_name(&mut self, member: &str, io: &mut Io<'_>) -> String {
        let path = Path::new(member);
        let mut parts: Vec<String> = Vec::new();
        let mut dropped = false;
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    parts.clear();
                    dropped = true;
                }
                Component::RootDir | Component::Prefix(_) => dropped = true,
            }
        }
        if dropped && !self.noted_leading {
            self.noted_leading = true;
            io.note("removing leading '/' and '..' parts from member names");
        }
        if parts.is_empty() {
            ".".into()
        } else {
            parts.join("/")
        }
    }

    fn add<W: Write>(
        &mut self,
        builder: &mut Builder<W>,
        disk: &Path,
        name: &str,
        io: &mut Io<'_>,
        depth: usize,
    ) -> Result {
        let meta = match fs::symlink_metadata(disk) {
            Ok(m) => m,
            Err(e) => {
                io.error(format!("{}: cannot stat: {}", disk.display(), describe(&e)));
                return Ok(());
            }
        };
        if self.archive_path.is_some() && fsx::absolute(disk).ok() == self.archive_path {
            io.note(format!("{name}: file is the archive; not dumped"));
            return Ok(());
        }
        let kind = meta.file_type();
        let werr = |e: io::Error| failed(format!("error writing the archive: {}", describe(&e)));
        if kind.is_dir() {
            if depth >= MAX_DEPTH {
                io.error(fsx::too_deep(disk));
                return Ok(());
            }
            let mut header = header(&meta, EntryType::Directory, 0o755);
            builder
                .append_data(
                    &mut header,
                    format!("{}/", name.trim_end_matches('/')),
                    io::empty(),
                )
                .map_err(werr)?;
            self.verbose_line(io, name)?;
            let children = match fsx::sorted_names(disk) {
                Ok(c) => c,
                Err(e) => {
                    io.error(format!("{}: cannot open: {}", disk.display(), describe(&e)));
                    return Ok(());
                }
            };
            for child in children {
                let child_name = match name {
                    "." => format!("./{}", child.to_string_lossy()),
                    _ => format!("{}/{}", name.trim_end_matches('/'), child.to_string_lossy()),
                };
                self.add(builder, &disk.join(&child), &child_name, io, depth + 1)?;
            }
        } else if kind.is_symlink() {
            let target = match fs::read_link(disk) {
                Ok(t) => t,
                Err(e) => {
                    io.error(format!(
                        "{}: cannot read link: {}",
                        disk.display(),
                        describe(&e)
                    ));
                    return Ok(());
                }
            };
            let mut header = header(&meta, EntryType::Symlink, 0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, name, &target)
                .map_err(werr)?;
            self.verbose_line(io, name)?;
        } else if kind.is_file() {
            let file = match File::open(disk) {
                Ok(f) => f,
                Err(e) => {
                    io.error(format!("{}: cannot open: {}", disk.display(), describe(&e)));
                    return Ok(());
                }
            };
            let mut header = header(&meta, EntryType::Regular, 0o644);
            let size = meta.len();
            header.set_size(size);
            let body = Exact {
                inner: file,
                left: size,
            };
            builder.append_data(&mut header, name, body).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    failed(format!(
                        "{}: file shrank while being read; the archive is incomplete",
                        disk.display()
                    ))
                } else {
                    werr(e)
                }
            })?;
            self.verbose_line(io, name)?;
        } else {
            io.error(format!(
                "{}: not archived: only files, directories and symlinks are",
                disk.display()
            ));
        }
        Ok(())
    }

    fn verbose_line(&self, io: &mut Io<'_>, name: &str) -> Result {
        if !self.verbose {
            return Ok(());
        }
        if self.to_stdout {
            writeln!(io.stderr, "{name}").map_err(crate::cli::write_error)
        } else {
            io.line(name)
        }
    }
}

/// A header with the metadata kiln can carry: numeric owner, mode where
/// the platform has one (else `default_mode`), modification time.
fn header(meta: &Metadata, kind: EntryType, default_mode: u32) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(sys::mode(meta).unwrap_or(default_mode));
    let (uid, gid) = sys::owner(meta).unwrap_or((0, 0));
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(u64::try_from(show::mtime(meta)).unwrap_or(0));
    header.set_size(0);
    header
}

/// A file's bytes, exactly as many as its header says: a file that grew is
/// cut at its size, one that shrank is an error (the header is already
/// written, and padding would silently corrupt the archive).
struct Exact {
    inner: File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
