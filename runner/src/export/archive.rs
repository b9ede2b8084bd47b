//! `kiln save`: several images in one archive. The default is what docker
//! 25 and later write: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`) and, beside it, docker's `manifest.json` naming each
//! image's config, `RepoTags` and layers by their blob paths, so `docker
//! load` (any version: it decompresses layers itself), `skopeo copy
//! docker-archive:` and OCI tools all read it. Blobs are written once, as
//! the store holds them. `--format oci` leaves `manifest.json` out.
//! Entries are sorted and their mtimes the newest image's creation time,
//! so saving the same images gives the same bytes.

use std::collections::BTreeMap;

use super::{CONTAINERD_NAME, Dest, ExportError, image_blobs, write_layout_tar};
use crate::digest::Digest;
use crate::image::Image;
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, REF_NAME, Store, StoreError};

/// What `kiln save` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    /// docker's manifest.json beside an OCI layout (what docker 25+ saves)
    #[default]
    Docker,
    /// An OCI layout only (an OCI archive)
    Oci,
}

/// One image to save, with the names it is saved under (none: by id).
pub struct SavedImage {
    /// The image (one platform's manifest).
    pub image: Image,
    /// `NAME:TAG`s.
    pub names: Vec<String>,
}

/// Writes `images` as one archive to `dest`.
pub fn write_archive(
    store: &Store,
    images: &[SavedImage],
    dest: &Dest,
    format: ArchiveFormat,
) -> Result<(), ExportError> {
    let mut blobs: Vec<Digest> = Vec::new();
    let mut index_entries = Vec::new();
    let mut docker_entries = Vec::new();
    let mut epoch = 0;
    for saved in images {
        let image = &saved.image;
        blobs.extend(image_blobs(image)?);
        epoch = epoch.max(
            image
                .config
                .created()
                .as_deref()
                .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                .map_or(0, |t| t.as_second()),
        );
        let plain = Descriptor::new(
            &image.descriptor.media_type,
            image.descriptor.digest,
            image.descriptor.size,
        );
        if saved.names.is_empty() {
            index_entries.push(plain.clone());
        }
        for n in &saved.names {
            let mut d = plain.clone();
            let a = d.annotations.get_or_insert_with(BTreeMap::new);
            a.insert(REF_NAME.into(), n.clone());
            a.insert(CONTAINERD_NAME.into(), n.clone());
            index_entries.push(d);
        }
        let layers: Vec<String> = image
            .layers()
            .map_err(|e| StoreError::Corrupt {
                path: format!("image {}", image.descriptor.digest).into(),
                reason: e.to_string(),
            })?
            .iter()
            .map(|(l, _)| path_of(&l.digest))
            .collect();
        docker_entries.push(serde_json::json!({
            "Config": path_of(&image.config_digest),
            "RepoTags": saved.names,
            "Layers": layers,
        }));
    }
    blobs.sort();
    blobs.dedup();
    let index = crate::json::canonical(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": index_entries,
    }));
    let manifest = serde_json::to_vec(&docker_entries).expect("JSON values serialize");
    let extra = (format == ArchiveFormat::Docker).then_some(("manifest.json", &manifest[..]));
    write_layout_tar(store, dest, &blobs, &index, extra, epoch)
}

fn path_of(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
