//! Unpacking npm tarballs, shared by both steps.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use kiln_guest::{Context, Error, Result};

/// Unpacks an npm tarball into `dest`, refusing entries that would land
/// outside it.
pub(crate) fn unpack(tarball: &[u8], dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel: PathBuf = path
            .components()
            .skip_while(|c| *c == Component::Normal("package".as_ref()))
            .collect();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::new(format!(
                "unsafe path in tarball: {}",
                path.display()
            )));
        }
        if rel.as_os_str().is_empty() || !entry.header().entry_type().is_file() {
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        fs::write(&target, data).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}
