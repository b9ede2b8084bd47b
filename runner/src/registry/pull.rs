//! `kiln pull`, and what `FROM`, `COPY --from` and bind mounts of an image
//! reference do when the store lacks it: a manifest (through an index, for
//! the chosen platform), its config and layers, into the store.
//!
//! Everything pulled is untrusted until checked: manifests and the config
//! against their digests (the reference's, or the index's descriptor), each
//! layer against its digest and size as it streams into the store, then
//! read once like any imported layer (the layer reader's limits, and its
//! uncompressed digest against the config's diff_id). Only then is the
//! image named in the store. A blob the store already holds is not
//! fetched again; a `name@sha256:` reference the store can resolve never
//! touches the network. A wasm artifact (a published step program) is
//! stored as an image holding the program ([`super::wasm_artifact`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_spec::image::{ImageIndex, ImageManifest};

use super::progress::{Outcome, Quiet, TransferProgress};
use super::session::{Remote, Session};
use super::{Reference, RegistryError, SOURCE_ANNOTATION, wasm_artifact};
use crate::digest::Digest;
use crate::image::{Image, Platform};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME, Store};

/// Docker's manifest list and manifest media types, which registries still
/// serve for most images.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// See [`DOCKER_LIST`].
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACCEPT: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    DOCKER_MANIFEST,
    DOCKER_LIST,
];

/// Largest manifest or index kiln reads (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
/// Largest image config kiln reads.
pub const MAX_CONFIG: u64 = 32 << 20;

/// What a pull gave.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image's manifest in the store (the chosen platform's).
    pub manifest: Descriptor,
    /// The digest the reference resolved to (an index's, for a
    /// multi-platform image).
    pub digest: Digest,
    /// The platform of the image.
    pub platform: Platform,
    /// Bytes downloaded (0 when everything was in the store).
    pub fetched: u64,
}

/// Pulls `reference` into `store` and names it `names` there (untagged
/// when empty). `platform` picks from an index; without it kiln takes
/// `wasi/wasm`, else the only manifest, else `linux/amd64`.
pub fn pull(
    session: &Session,
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    names: &[String],
    progress: &dyn TransferProgress,
) -> Result<Pulled, RegistryError> {
    if let Some(digest) = reference.digest()
        && let Some(pulled) = from_store(store, digest, platform)
    {
        store.add_image(&pulled.manifest, names)?;
        return Ok(pulled);
    }
    session.block_on(pull_async(
        session, store, reference, platform, names, progress,
    ))
}

/// The image `digest` names, if the store can load it whole: the image
/// itself, or the image a wasm artifact of that digest was pulled as
/// ([`wasm_artifact`]; its manifest keeps its annotations).
pub fn from_store(store: &Store, digest: &Digest, platform: Option<&Platform>) -> Option<Pulled> {
    let loaded = || {
        let size = store.blob_size(digest).ok()?;
        let doc: serde_json::Value = store.read_json(digest).ok()?;
        let media_type = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(MANIFEST_MEDIA_TYPE);
        let descriptor = Descriptor::new(media_type, *digest, size);
        Image::load(store, &descriptor, platform.or(Some(&Platform::wasi())))
            .or_else(|_| Image::load(store, &descriptor, platform))
            .ok()
    };
    let image = match store.has_blob(digest).then(loaded).flatten() {
        Some(image) => image,
        None => {
            let converted = wasm_artifact::find_converted(store, digest)?;
            let mut image = Image::load(store, &converted, None).ok()?;
            image.descriptor = converted;
            image
        }
    };
    image.check_layers_present(store).ok()?;
    Some(Pulled {
        platform: Platform::of(&image.config),
        manifest: image.descriptor,
        digest: *digest,
        fetched: 0,
    })
}

async fn pull_async(
    session: &Session,
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    names: &[String],
    progress: &dyn TransferProgress,
) -> Result<Pulled, RegistryError> {
    let remote = session.remote(reference.registry()).await?;
    progress.note(&format!("pulling {reference}"));
    let (bytes, digest) = fetch_manifest(session, &remote, reference, progress).await?;
    let top = digest;
    let mut doc: serde_json::Value = parse_json(&bytes, reference, &remote)?;
    let mut manifest_bytes = bytes;
    let mut manifest_digest = digest;
    if is_index(&doc) {
        store.put_blob(&manifest_bytes)?;
        let index: ImageIndex = serde_json::from_value(doc).map_err(|e| {
            RegistryError::Unsupported(format!("{reference}: not a valid image index: {e}"))
        })?;
        let child = choose(&index, platform, reference)?;
        let child_ref = reference.with_digest(child);
        let (bytes, digest) = fetch_manifest(session, &remote, &child_ref, progress).await?;
        if digest != child {
            return Err(tampered(
                &remote,
                format!("manifest {child}"),
                "its digest differs".into(),
            ));
        }
        doc = parse_json(&bytes, reference, &remote)?;
        if is_index(&doc) {
            return Err(RegistryError::Unsupported(format!(
                "{reference}: an index whose entry for the platform is another index; kiln reads one level"
            )));
        }
        manifest_bytes = bytes;
        manifest_digest = digest;
    }
    let media_type = doc
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(MANIFEST_MEDIA_TYPE)
        .to_string();
    if media_type != MANIFEST_MEDIA_TYPE && media_type != DOCKER_MANIFEST {
        return Err(RegistryError::Unsupported(format!(
            "{reference} is a {media_type}, not an image kiln can use"
        )));
    }
    let manifest: ImageManifest = serde_json::from_value(doc).map_err(|e| {
        RegistryError::Unsupported(format!("{reference}: not a valid image manifest: {e}"))
    })?;

    let artifact = wasm_artifact::is_artifact(&manifest);
    if artifact {
        wasm_artifact::check_shape(&manifest, reference)?;
    }
    let config = descriptor_of(manifest.config(), &remote)?;
    let mut fetched = 0;
    if config.size > MAX_CONFIG {
        return Err(RegistryError::Unsupported(format!(
            "{reference}: its config is {} bytes, more than kiln reads ({MAX_CONFIG})",
            config.size
        )));
    }
    fetched += fetch_blob(
        session, store, &remote, reference, &config, "config", progress,
    )
    .await?;
    let layers: Vec<Descriptor> = manifest
        .layers()
        .iter()
        .map(|l| descriptor_of(l, &remote))
        .collect::<Result<_, _>>()?;
    let jobs = session.options().jobs.max(1);
    let sizes: Vec<u64> = futures_util::stream::iter(layers.iter())
        .map(|layer| fetch_blob(session, store, &remote, reference, layer, "layer", progress))
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    fetched += sizes.iter().sum::<u64>();

    let stored = store.put_blob(&manifest_bytes)?;
    debug_assert_eq!(stored, manifest_digest);
    let size = manifest_bytes.len() as u64;
    let mut descriptor = Descriptor::new(&media_type, manifest_digest, size);
    if artifact {
        // A wasm step: stored as an image holding the program, found by
        // the artifact's digest (or the one it was pulled by).
        let mut image = wasm_artifact::to_image(store, &descriptor)?;
        wasm_artifact::set_source(&mut image, &reference.with_digest(top));
        store.add_image(&image, names)?;
        return Ok(Pulled {
            platform: Platform::wasi(),
            manifest: image,
            digest: top,
            fetched,
        });
    }
    let image = Image::load(store, &descriptor, None)?;
    // Read every new layer once: the reader's checks (paths, sizes, bombs)
    // and the diff_id, and its index for the snapshot.
    for (blob, diff_id) in image.layers()? {
        session.check_cancel()?;
        crate::image::layer_changes(store, &blob, &diff_id)?;
    }
    let source = match reference.tag() {
        Some(_) => reference.to_string(),
        None => reference.with_digest(top).to_string(),
    };
    descriptor
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SOURCE_ANNOTATION.into(), source);
    descriptor.annotations.as_mut().map(|a| a.remove(REF_NAME));
    store.add_image(&descriptor, names)?;
    Ok(Pulled {
        platform: Platform::of(&image.config),
        manifest: descriptor,
        digest: top,
        fetched,
    })
}

fn is_index(doc: &serde_json::Value) -> bool {
    let mt = doc.get("mediaType").and_then(|m| m.as_str());
    mt == Some(INDEX_MEDIA_TYPE)
        || mt == Some(DOCKER_LIST)
        || (mt.is_none() && doc.get("manifests").is_some())
}

fn tampered(remote: &Remote, what: String, why: String) -> RegistryError {
    RegistryError::Tampered {
        what,
        registry: remote.host.clone(),
        why,
    }
}

fn parse_json(
    bytes: &[u8],
    reference: &Reference,
    remote: &Remote,
) -> Result<serde_json::Value, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Protocol {
        what: format!("reading the manifest of {reference}"),
        cause: format!("{} sent something that is not JSON: {e}", remote.host),
    })
}

fn descriptor_of(
    d: &oci_spec::image::Descriptor,
    remote: &Remote,
) -> Result<Descriptor, RegistryError> {
    let digest = Digest::from_oci(d.digest()).map_err(|e| {
        RegistryError::Unsupported(format!(
            "a manifest from {} names a blob kiln cannot check: {e}",
            remote.host
        ))
    })?;
    Ok(Descriptor::new(d.media_type().as_ref(), digest, d.size()))
}

/// The manifest (or index) `reference` names, checked against its digest.
async fn fetch_manifest(
    session: &Session,
    remote: &Remote,
    reference: &Reference,
    progress: &dyn TransferProgress,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let oci = reference.to_oci();
    let what = format!("pulling {reference}");
    let (bytes, _) = session
        .retry(
            || remote.client.pull_manifest_raw(&oci, &remote.auth, ACCEPT),
            |attempt, error| progress.retrying(&what, attempt, error),
        )
        .await
        .map_err(|e| RegistryError::from_oci(e, &what, &remote.host, remote.has_credentials))?;
    if bytes.len() > MAX_MANIFEST {
        return Err(RegistryError::Unsupported(format!(
            "{reference}: a manifest of {} bytes, more than kiln reads ({MAX_MANIFEST})",
            bytes.len()
        )));
    }
    let digest = Digest::of(&bytes);
    if let Some(want) = reference.digest()
        && *want != digest
    {
        return Err(tampered(
            remote,
            format!("the manifest of {reference}"),
            format!("its digest is {digest}"),
        ));
    }
    Ok((bytes.to_vec(), digest))
}

/// The manifest of `index` for the platform: the one asked for, else
/// `wasi/wasm`, else the only one, else `linux/amd64`.
fn choose(
    index: &ImageIndex,
    platform: Option<&Platform>,
    reference: &Reference,
) -> Result<Digest, RegistryError> {
    let of = |m: &oci_spec::image::Descriptor| {
        m.platform().as_ref().map(|p| Platform {
            os: p.os().to_string(),
            arch: p.architecture().to_string(),
            variant: p.variant().clone(),
        })
    };
    let matches = |m: &oci_spec::image::Descriptor, want: &Platform| {
        of(m).is_some_and(|p| {
            p.os == want.os
                && p.arch == want.arch
                && (want.variant.is_none() || p.variant == want.variant)
        })
    };
    let manifests = index.manifests();
    let chosen = match platform {
        Some(want) => manifests.iter().find(|m| matches(m, want)),
        None => manifests
            .iter()
            .find(|m| matches(m, &Platform::wasi()))
            .or(if manifests.len() == 1 {
                manifests.first()
            } else {
                None
            })
            .or_else(|| {
                let amd64 = Platform::parse("linux/amd64").expect("a valid platform");
                manifests.iter().find(|m| matches(m, &amd64))
            }),
    };
    let Some(chosen) = chosen else {
        let offered: Vec<String> = manifests
            .iter()
            .filter_map(|m| of(m).map(|p| p.to_string()))
            .collect();
        return Err(RegistryError::Unsupported(format!(
            "{reference} has no image for {}; it has: {} (choose one with --platform)",
            platform.map_or("wasi/wasm".into(), ToString::to_string),
            if offered.is_empty() {
                "none with a platform".into()
            } else {
                offered.join(", ")
            }
        )));
    };
    Digest::from_oci(chosen.digest()).map_err(|e| {
        RegistryError::Unsupported(format!(
            "{reference}: an index entry kiln cannot check: {e}"
        ))
    })
}

/// Streams blob `d` into the store unless it is there; returns the bytes
/// downloaded. The blob is checked against its digest and size as it is
/// written: a registry that sends more bytes than the descriptor says is
/// cut off, and a blob that hashes differently is never given its name.
async fn fetch_blob(
    session: &Session,
    store: &Store,
    remote: &Remote,
    reference: &Reference,
    d: &Descriptor,
    what: &str,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    progress.begin(&d.digest, d.size, what);
    if store.has_blob(&d.digest) && store.blob_size(&d.digest).is_ok_and(|s| s == d.size) {
        progress.finish(&d.digest, &Outcome::Present);
        return Ok(0);
    }
    let oci = &reference.to_oci();
    let doing = format!("pulling {what} {} of {reference}", d.digest);
    let attempt = || async move {
        let mut w = store
            .blob_writer()
            .map_err(|e| OciDistributionError::IoError(io::Error::other(e)))?;
        if let Err(tampered) = stream_blob(session, remote, oci, d, &mut w, progress).await? {
            return Ok(Err(tampered));
        }
        let (digest, size) = w
            .commit()
            .map_err(|e| OciDistributionError::IoError(io::Error::other(e)))?;
        if digest != d.digest || size != d.size {
            // What it sent is stored under its own digest (harmless: it
            // is what it is, and prune removes it); never under `d`'s.
            return Ok(Err(tampered(
                remote,
                format!("blob {}", d.digest),
                format!("got {size} bytes hashing to {digest}"),
            )));
        }
        Ok(Ok(size))
    };
    let result = session
        .retry(attempt, |n, error| progress.retrying(&doing, n, error))
        .await;
    if session.cancelled() {
        return Err(RegistryError::Cancelled);
    }
    let size = result
        .map_err(|e| RegistryError::from_oci(e, &doing, &remote.host, remote.has_credentials))??;
    progress.finish(&d.digest, &Outcome::Pulled);
    Ok(size)
}

/// Streams blob `d` into `sink`, reporting progress: cut off past the
/// descriptor's size, stopped by Ctrl-C. The outer error is one to retry
/// (a dropped connection); the inner one is the registry's content being
/// wrong, which another try would fetch again.
async fn stream_blob(
    session: &Session,
    remote: &Remote,
    oci: &oci_client::Reference,
    d: &Descriptor,
    sink: &mut impl Write,
    progress: &dyn TransferProgress,
) -> Result<Result<(), RegistryError>, OciDistributionError> {
    let digest_text = d.digest.to_string();
    let mut stream = remote
        .client
        .pull_blob_stream(oci, digest_text.as_str())
        .await?
        .stream;
    let mut done = 0u64;
    while let Some(chunk) = stream.next().await {
        if session.cancelled() {
            return Err(OciDistributionError::IoError(io::Error::new(
                io::ErrorKind::Interrupted,
                "interrupted",
            )));
        }
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => match digest_mismatch(&e) {
                // Not retried: the registry serves these bytes.
                Some(why) => return Ok(Err(tampered(remote, format!("blob {}", d.digest), why))),
                None => return Err(e.into()),
            },
        };
        done += chunk.len() as u64;
        if done > d.size {
            return Ok(Err(tampered(
                remote,
                format!("blob {}", d.digest),
                format!("more than the {} bytes its descriptor says", d.size),
            )));
        }
        sink.write_all(&chunk)?;
        progress.advance(&d.digest, done);
    }
    Ok(Ok(()))
}

/// The client's own digest check failing mid-stream (it reports it as an
/// I/O error, which would otherwise be retried): the text, if it is one.
fn digest_mismatch(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
        .map(ToString::to_string)
}

/// The manifest `reference` names, as bytes, with its digest: checked
/// against the reference's digest when it has one, refused above
/// [`MAX_MANIFEST`]. A missing one is [`RegistryError::NotFound`].
pub(crate) fn fetch_manifest_bytes(
    session: &Session,
    reference: &Reference,
    progress: &dyn TransferProgress,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    session.block_on(async {
        let remote = session.remote(reference.registry()).await?;
        fetch_manifest(session, &remote, reference, progress).await
    })
}

/// A small blob (a JSON document) of `reference`'s repository, into
/// memory: refused when its descriptor says more than `max` bytes, cut off
/// past the descriptor's size, checked against its digest.
pub(crate) fn fetch_small_blob(
    session: &Session,
    reference: &Reference,
    d: &Descriptor,
    max: u64,
    progress: &dyn TransferProgress,
) -> Result<Vec<u8>, RegistryError> {
    if d.size > max {
        return Err(RegistryError::Unsupported(format!(
            "{reference}: blob {} is {} bytes, more than kiln reads ({max})",
            d.digest, d.size
        )));
    }
    session.block_on(async {
        let remote = session.remote(reference.registry()).await?;
        let remote = &remote;
        let oci = &reference.to_oci();
        let doing = format!("pulling blob {} of {reference}", d.digest);
        let attempt = || async move {
            let mut bytes = Vec::new();
            if let Err(tampered) = stream_blob(session, remote, oci, d, &mut bytes, &Quiet).await? {
                return Ok(Err(tampered));
            }
            let got = Digest::of(&bytes);
            if got != d.digest || bytes.len() as u64 != d.size {
                return Ok(Err(tampered(
                    remote,
                    format!("blob {}", d.digest),
                    format!("got {} bytes hashing to {got}", bytes.len()),
                )));
            }
            Ok(Ok(bytes))
        };
        session
            .retry(attempt, |n, error| progress.retrying(&doing, n, error))
            .await
            .map_err(|e| RegistryError::from_oci(e, &doing, &remote.host, remote.has_credentials))?
    })
}

/// Streams blob `d` of `reference`'s repository into `store` unless it is
/// there, checked against its digest and size as it is written; returns
/// the bytes downloaded. `what` names it in progress (`layer`...).
pub(crate) fn fetch_blob_into_store(
    session: &Session,
    store: &Store,
    reference: &Reference,
    d: &Descriptor,
    what: &str,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    session.block_on(async {
        let remote = session.remote(reference.registry()).await?;
        fetch_blob(session, store, &remote, reference, d, what, progress).await
    })
}
