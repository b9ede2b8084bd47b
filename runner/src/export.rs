//! Exporters: what `--output` and `kiln export` write.
//!
//! - [`write_oci`]: an OCI image layout, as a tar archive (what `skopeo
//!   copy oci-archive:`, `podman load` and `docker load` read) or as a
//!   directory. Entries sorted, mtimes the build epoch, so the archive of an
//!   image is byte-identical however often it is written.
//! - [`write_fs_tar`]: the image's filesystem flattened into one tar.
//! - [`write_local`]: the filesystem written as files into a directory,
//!   through cap-std so a hostile image cannot write outside it.
//!
//! - [`write_archive`]: several images as one archive, docker's
//!   `manifest.json` beside an OCI layout (`kiln save`).
//!
//! [`OutputSpec`] parses `--output` with buildx's syntax.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use tar::EntryType;

use crate::image::Image;
use crate::layer::tarfmt;
use crate::snapshot::{ImagePath, Node, Snapshot};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, REF_NAME, Store, StoreError};

mod archive;
mod local_case;
mod spec;
pub use archive::{ArchiveFormat, SavedImage, write_archive};
pub use spec::{Dest, NO_DAEMON, OutputKind, OutputSpec};

/// The containerd annotation `docker load` reads an image name from.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Errors while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The output.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Two names of the image a case-insensitive destination cannot hold.
    #[error(
        "{dest} is on a case-insensitive filesystem, and the image has both {first} and {second}, which it would write as one file; export to a case-sensitive directory, or as a tar (type=tar, type=oci)"
    )]
    CaseCollision {
        /// The destination directory.
        dest: String,
        /// The first path, absolute.
        first: String,
        /// The one that differs from it only in case.
        second: String,
    },
}

fn werr(path: &str) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_string(),
        source,
    }
}

fn dest_name(dest: &Dest) -> String {
    match dest {
        Dest::Stdout => "standard output".into(),
        Dest::Path(p) => p.display().to_string(),
    }
}

/// A temp file to rename to its final path once the export is complete.
type Pending = Option<(tempfile::NamedTempFile, PathBuf)>;

/// Opens `dest` for writing through a temp file that is renamed at the end,
/// so a failed export never leaves a half-written file under the name.
fn open_dest(dest: &Dest) -> Result<(Box<dyn Write>, Pending), ExportError> {
    match dest {
        Dest::Stdout => Ok((Box::new(io::BufWriter::new(io::stdout().lock())), None)),
        Dest::Path(p) => {
            let name = p.display().to_string();
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut builder = tempfile::Builder::new();
            builder.prefix(".kiln-export-");
            // The user's file: readable as their umask says (tempfile's
            // own default, 0600, is for private temp files).
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let tmp = builder.tempfile_in(dir).map_err(werr(&name))?;
            let file = tmp.reopen().map_err(werr(&name))?;
            Ok((
                Box::new(io::BufWriter::with_capacity(256 << 10, file)),
                Some((tmp, p.clone())),
            ))
        }
    }
}

fn finish_dest(mut w: Box<dyn Write>, tmp: Pending, name: &str) -> Result<(), ExportError> {
    w.flush().map_err(werr(name))?;
    drop(w);
    if let Some((tmp, path)) = tmp {
        tmp.persist(&path).map_err(|e| werr(name)(e.error))?;
    }
    Ok(())
}

/// The blobs of an image, sorted by digest, deduplicated.
fn image_blobs(image: &Image) -> Result<Vec<crate::digest::Digest>, ExportError> {
    let mut blobs = vec![image.descriptor.digest, image.config_digest];
    for (layer, _) in image.layers().map_err(|e| StoreError::Corrupt {
        path: format!("image {}", image.descriptor.digest).into(),
        reason: e.to_string(),
    })? {
        blobs.push(layer.digest);
    }
    blobs.sort();
    blobs.dedup();
    Ok(blobs)
}

fn index_for(image: &Image, names: &[String]) -> Vec<u8> {
    let mut entries = Vec::new();
    if names.is_empty() {
        entries.push(image.descriptor.clone());
    }
    for name in names {
        let mut d: Descriptor = image.descriptor.clone();
        let a = d.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(REF_NAME.into(), name.clone());
        a.insert(CONTAINERD_NAME.into(), name.clone());
        entries.push(d);
    }
    crate::json::canonical(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": entries,
    }))
}

/// Writes `image` as an OCI layout (archive or directory), named `names`.
pub fn write_oci(
    store: &Store,
    image: &Image,
    names: &[String],
    dest: &Dest,
    as_tar: bool,
    epoch: i64,
) -> Result<(), ExportError> {
    let index = index_for(image, names);
    let blobs = image_blobs(image)?;
    if !as_tar {
        let Dest::Path(dir) = dest else {
            unreachable!("checked by OutputSpec::parse")
        };
        return write_oci_dir(store, dir, &blobs, image, names);
    }
    write_layout_tar(store, dest, &blobs, &index, None, epoch)
}

/// Writes an OCI layout as a tar to `dest`: `blobs` from the store, then
/// `index.json`, then `extra` (a file name and its bytes: docker's
/// `manifest.json`), then `oci-layout`; every entry timestamped `epoch`.
pub(crate) fn write_layout_tar(
    store: &Store,
    dest: &Dest,
    blobs: &[crate::digest::Digest],
    index: &[u8],
    extra: Option<(&str, &[u8])>,
    epoch: i64,
) -> Result<(), ExportError> {
    let name = dest_name(dest);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let (w, tmp) = open_dest(dest)?;
    let mut tar = tar::Builder::new(w);
    let mtime = u64::try_from(epoch).unwrap_or(0);
    let meta = crate::snapshot::Meta::root(0o644, epoch);
    let dir_meta = crate::snapshot::Meta::root(0o755, epoch);
    let add =
        |tar: &mut tar::Builder<Box<dyn Write>>, path: &str, size: u64, data: &mut dyn Read| {
            let mut h = tarfmt::header(EntryType::Regular, &meta, mtime, size);
            tar.append_data(&mut h, path, data)
        };
    (|| -> io::Result<()> {
        for dir in ["blobs", "blobs/sha256"] {
            tarfmt::append_dir(
                &mut tar,
                &ImagePath::parse(dir).expect("constant"),
                &dir_meta,
                mtime,
            )?;
        }
        for digest in blobs {
            let size = store.blob_size(digest).map_err(io::Error::other)?;
            let mut r = store.open_blob(digest).map_err(io::Error::other)?;
            add(
                &mut tar,
                &format!("blobs/sha256/{}", digest.hex()),
                size,
                &mut r,
            )?;
        }
        add(&mut tar, "index.json", index.len() as u64, &mut &index[..])?;
        if let Some((path, bytes)) = extra {
            add(&mut tar, path, bytes.len() as u64, &mut &bytes[..])?;
        }
        add(
            &mut tar,
            "oci-layout",
            layout.len() as u64,
            &mut &layout[..],
        )?;
        Ok(())
    })()
    .map_err(werr(&name))?;
    let w = tar.into_inner().map_err(werr(&name))?;
    finish_dest(w, tmp, &name)
}

fn write_oci_dir(
    store: &Store,
    dir: &Path,
    blobs: &[crate::digest::Digest],
    image: &Image,
    names: &[String],
) -> Result<(), ExportError> {
    let name = dir.display().to_string();
    // A layout directory is a store without kiln's private part: open it as
    // one (an existing layout gains the image), then drop that part unless
    // the directory already was a kiln store.
    let private = dir.join("kiln");
    let was_store = private.exists();
    let target = Store::open(dir).map_err(|e| match e {
        StoreError::Io { source, .. } => werr(&name)(source),
        other => ExportError::Store(other),
    })?;
    for digest in blobs {
        if !target.has_blob(digest) {
            let mut w = target.blob_writer()?;
            io::copy(&mut store.open_blob(digest)?, &mut w).map_err(werr(&name))?;
            w.commit()?;
        }
    }
    target.add_image(&image.descriptor, names)?;
    if !was_store {
        fs::remove_dir_all(&private).map_err(werr(&name))?;
        // A layout for the user: its files get their umask, like any file
        // they create (the store writes its own files private).
        #[cfg(unix)]
        user_modes(dir).map_err(werr(&name))?;
    }
    Ok(())
}

/// Gives the files under `dir` the mode a new file of the user's gets
/// (0666 less their umask), found by creating one.
#[cfg(unix)]
fn user_modes(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let probe = tempfile::Builder::new()
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    let mode = probe.as_file().metadata()?.permissions().mode() & 0o777;
    drop(probe);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

/// Writes the flattened filesystem as an uncompressed tar.
pub fn write_fs_tar(store: &Store, snapshot: &Snapshot, dest: &Dest) -> Result<(), ExportError> {
    let name = dest_name(dest);
    let (w, tmp) = open_dest(dest)?;
    let mut tar = tar::Builder::new(w);
    // Snapshot mtimes are already what the layers say (clamped when built).
    let clamp = |m: &crate::snapshot::Meta| u64::try_from(m.mtime).unwrap_or(0);
    for (path, node) in snapshot.iter() {
        if path.is_root() {
            continue;
        }
        let result: Result<(), ExportError> = match node {
            Node::Dir(m) => tarfmt::append_dir(&mut tar, path, m, clamp(m)).map_err(werr(&name)),
            Node::Symlink(m, target) => {
                let mut h = tarfmt::header(EntryType::Symlink, m, clamp(m), 0);
                tar.append_link(&mut h, path.as_str(), target)
                    .map_err(werr(&name))
            }
            Node::File(m, f) => {
                let mut h = tarfmt::header(EntryType::Regular, m, clamp(m), f.size);
                let r = store.open_content(f)?;
                tar.append_data(&mut h, path.as_str(), r)
                    .map_err(werr(&name))
            }
        };
        result?;
    }
    let w = tar.into_inner().map_err(werr(&name))?;
    finish_dest(w, tmp, &name)
}

/// Writes the filesystem into directory `dest` (created if missing).
/// Ownership is not applied (that needs root); modes are, where the host
/// has them. An image with names that differ only in case is refused when
/// `dest` is case-insensitive (`export/local_case.rs`).
pub fn write_local(store: &Store, snapshot: &Snapshot, dest: &Path) -> Result<(), ExportError> {
    let name = dest.display().to_string();
    fs::create_dir_all(dest).map_err(werr(&name))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(dest, ambient_authority()).map_err(werr(&name))?;
    if local_case::is_case_insensitive(&dir).map_err(werr(&name))?
        && let Some((first, second)) = local_case::first_collision(snapshot)
    {
        return Err(ExportError::CaseCollision {
            dest: name,
            first,
            second,
        });
    }
    for (path, node) in snapshot.iter() {
        if path.is_root() {
            continue;
        }
        let shown = format!("{}{}", name, path.absolute());
        let rel: PathBuf = path.components().collect();
        match node {
            Node::Dir(m) => {
                if !dir.is_dir(&rel) {
                    if dir.symlink_metadata(&rel).is_ok() {
                        dir.remove_file(&rel).map_err(werr(&shown))?;
                    }
                    dir.create_dir(&rel).map_err(werr(&shown))?;
                }
                set_mode(&dir, &rel, m.mode).map_err(werr(&shown))?;
            }
            Node::File(m, f) => {
                if dir.symlink_metadata(&rel).is_ok_and(|md| !md.is_file()) {
                    remove_any(&dir, &rel).map_err(werr(&shown))?;
                }
                let mut out = dir.create(&rel).map_err(werr(&shown))?;
                io::copy(&mut store.open_content(f)?, &mut out).map_err(werr(&shown))?;
                drop(out);
                set_mode(&dir, &rel, m.mode).map_err(werr(&shown))?;
            }
            Node::Symlink(_, target) => {
                if dir.symlink_metadata(&rel).is_ok() {
                    remove_any(&dir, &rel).map_err(werr(&shown))?;
                }
                make_symlink(&dir, target, &rel).map_err(werr(&shown))?;
            }
        }
    }
    Ok(())
}

fn remove_any(dir: &cap_std::fs::Dir, rel: &Path) -> io::Result<()> {
    if dir.symlink_metadata(rel)?.is_dir() {
        dir.remove_dir_all(rel)
    } else {
        dir.remove_file(rel)
    }
}

#[cfg(unix)]
fn set_mode(dir: &cap_std::fs::Dir, rel: &Path, mode: u32) -> io::Result<()> {
    use cap_std::fs::PermissionsExt;
    dir.set_permissions(rel, cap_std::fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(not(unix))]
fn set_mode(_dir: &cap_std::fs::Dir, _rel: &Path, _mode: u32) -> io::Result<()> {
    // Windows has no mode bits; the files are written with its defaults.
    Ok(())
}

#[cfg(unix)]
fn make_symlink(dir: &cap_std::fs::Dir, target: &str, rel: &Path) -> io::Result<()> {
    dir.symlink(target, rel)
}

#[cfg(windows)]
fn make_symlink(dir: &cap_std::fs::Dir, target: &str, rel: &Path) -> io::Result<()> {
    // Windows needs to know the kind of target; most links in images are
    // to files. Creating links may need Developer Mode.
    dir.symlink_file(target, rel)
}
