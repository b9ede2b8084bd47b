//! `kiln load`: a `docker save` archive or an OCI archive into the store.
//!
//! The archive (a tar, possibly gzip or zstd compressed) is read once, in
//! order, every file hashed and held unnamed ([`archive`]). Then it is
//! understood: an OCI layout (`index.json` and `oci-layout`, which docker
//! 25 and later write beside their own files) is taken as it is
//! ([`oci`]); otherwise docker's `manifest.json` gives each image's config
//! and layer tars, and kiln writes an OCI manifest for them ([`docker`]).
//! Every blob is checked against the digest its name or a descriptor
//! promises before it is named in the store; then each layer is read once
//! like a pulled one (the layer reader's limits, and its uncompressed digest
//! against the config's diff_id) and only then is the image tagged, with
//! the names the archive carries (docker's `RepoTags`, the
//! `io.containerd.image.name` or `org.opencontainers.image.ref.name`
//! annotations). A failure leaves no name behind, and at worst blobs no
//! image uses, which `kiln prune` removes.

mod archive;
mod docker;
mod oci;

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::digest::Digest;
use crate::image::{Image, ImageError, layer_changes};
use crate::layer::LayerError;
use crate::store::{Descriptor, Store, StoreError, normalize_name};

pub use archive::MAX_ARCHIVE_ENTRIES;

/// Errors while loading an archive.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The input is not a (complete) tar.
    #[error("the input is not a tar archive (docker save or OCI archive), or it is truncated: {0}")]
    NotTar(String),
    /// A tar, but not one kiln can load.
    #[error("the archive is not a docker save or OCI archive kiln can load: {0}")]
    Format(String),
    /// The archive contradicts itself: a digest mismatch, a missing blob.
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    /// Reading the input failed.
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image of the archive cannot be used.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A layer of the archive is refused or does not match its diff_id.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
}

/// An image loaded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its id in the store (the manifest's digest, or the index's).
    pub id: Digest,
    /// The names it was given (none: untagged).
    pub names: Vec<String>,
}

/// One image of the archive, checked, and what loading it takes.
#[derive(Debug, Default)]
struct Plan {
    /// What the store's index will point to.
    top: Option<Descriptor>,
    /// Names from the archive, normalized.
    names: Vec<String>,
    /// Blobs of the archive the image needs.
    blobs: Vec<Digest>,
    /// Documents kiln writes (a manifest for a docker-archive image).
    documents: Vec<Vec<u8>>,
    /// Image manifests whose layers are read once loaded.
    images: Vec<Descriptor>,
    /// Their configs' digests (docker's names find OCI images by them).
    configs: Vec<Digest>,
}

/// Loads every image of the archive `input` into `store`.
pub fn load(
    store: &Store,
    input: impl Read,
    cancel: &AtomicBool,
) -> Result<Vec<Loaded>, LoadError> {
    let input = decompressed(input)?;
    let mut entries = archive::Entries::stage(store, input, cancel)?;
    let plans = if entries.has("index.json") && entries.has("oci-layout") {
        let docker_names = if entries.has("manifest.json") {
            docker::names_by_config(&mut entries)?
        } else {
            Default::default()
        };
        oci::plans(&mut entries, &docker_names)?
    } else if entries.has("manifest.json") {
        docker::plans(&mut entries)?
    } else {
        return Err(LoadError::Format(
            "it holds neither manifest.json (docker save) nor index.json and oci-layout (an OCI archive)"
                .into(),
        ));
    };
    if plans.is_empty() {
        return Err(LoadError::Format("it holds no image".into()));
    }
    for plan in &plans {
        for digest in &plan.blobs {
            entries.commit(store, digest)?;
        }
        for doc in &plan.documents {
            store.put_blob(doc)?;
        }
    }
    drop(entries);
    for plan in &plans {
        for manifest in &plan.images {
            let image = Image::load(store, manifest, None)?;
            for (blob, diff_id) in image.layers()? {
                if cancel.load(Ordering::Relaxed) {
                    return Err(LoadError::Cancelled);
                }
                layer_changes(store, &blob, &diff_id)?;
            }
        }
    }
    let mut loaded = Vec::new();
    for plan in plans {
        let top = plan.top.expect("every plan has its top");
        store.add_image(&top, &plan.names)?;
        loaded.push(Loaded {
            id: top.digest,
            names: plan.names,
        });
    }
    Ok(loaded)
}

/// The input, decompressed when it starts like gzip or zstd (docker load
/// takes `docker save | gzip`).
fn decompressed<'r>(input: impl Read + 'r) -> Result<Box<dyn Read + 'r>, LoadError> {
    let mut buffered = BufReader::with_capacity(256 << 10, input);
    let head = buffered.fill_buf().map_err(LoadError::Read)?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(LoadError::Read)?)
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(LoadError::Format(
            "it is compressed with bzip2 or xz, which kiln does not read: decompress it first"
                .into(),
        ));
    } else {
        Box::new(buffered)
    })
}

/// A name from an archive (`RepoTags`, an annotation), in the form kiln
/// tags with: docker's short form, `NAME:TAG`.
fn image_name(raw: &str) -> Result<String, LoadError> {
    let invalid = |why: String| LoadError::Format(format!("image name {raw:?}: {why}"));
    let reference = crate::registry::Reference::parse(raw).map_err(|e| invalid(e.to_string()))?;
    if reference.digest().is_some() {
        return Err(invalid("a name with a digest is not a tag".into()));
    }
    normalize_name(&reference.familiar()).map_err(|e| invalid(e.to_string()))
}

/// Adds `name` to `names` unless it is there.
fn push_name(names: &mut Vec<String>, name: String) {
    if !names.contains(&name) {
        names.push(name);
    }
}

#[cfg(test)]
mod tests;
