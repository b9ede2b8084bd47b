//! `kiln push`, `kiln build --push`: an image (or a multi-platform index)
//! from the store to a registry.
//!
//! Blobs first, manifests last, so a reference never names content the
//! registry lacks. Each blob is, in order: skipped when the registry has it
//! (`HEAD`), mounted from another repository of the same registry when the
//! store knows one that holds it (images pulled from there), or uploaded,
//! streaming from the store: in one request, or in chunks when it is larger
//! than `--push-chunked-above` ([`CHUNKED_ABOVE`] by default). A push killed halfway leaves complete blobs
//! behind; run again, it finds them and sends only the rest.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use reqwest::header::HeaderValue;

use super::progress::{Outcome, TransferProgress};
use super::pull::{DOCKER_LIST, DOCKER_MANIFEST};
use super::session::{Remote, Session, api_host};
use super::{Reference, RegistryError, SOURCE_ANNOTATION};
use crate::digest::Digest;
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

/// Blobs larger than this are uploaded in chunks by default (`PATCH`
/// requests of [`CHUNK`] bytes), which registries and proxies with
/// request-size limits accept.
pub const CHUNKED_ABOVE: u64 = 512 << 20;
/// The size of an upload chunk: oci-client's (it splits what it is given
/// into pieces of at most 4 MiB), so each read from the store is one
/// `PATCH`.
pub const CHUNK: usize = 4 << 20;
/// Bytes read from the store per piece of a one-request upload.
const READ_CHUNK: usize = 1 << 20;

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The digest of the pushed manifest (or index).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Bytes uploaded (blobs the registry had, or mounted, excluded).
    pub uploaded: u64,
}

/// Pushes the image `image` (a manifest or index in `store`) to `target`.
pub fn push(
    session: &Session,
    store: &Store,
    image: &Descriptor,
    target: &Reference,
    progress: &dyn TransferProgress,
) -> Result<Pushed, RegistryError> {
    session.block_on(push_async(session, store, image, target, progress))
}

async fn push_async(
    session: &Session,
    store: &Store,
    image: &Descriptor,
    target: &Reference,
    progress: &dyn TransferProgress,
) -> Result<Pushed, RegistryError> {
    let remote = session.remote(target.registry()).await?;
    progress.note(&format!("pushing {target}"));
    let sources = mount_sources(store, target);
    let token = mount_token(&remote, target, &sources).await;
    let mounts = Mounts {
        sources: &sources,
        token: token.as_deref(),
    };
    let bytes = store.read_blob(&image.digest)?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        RegistryError::Unsupported(format!("image {}: not JSON: {e}", image.digest))
    })?;
    let media_type = media_type_of(&doc, image);
    let mut uploaded = 0;
    if media_type == INDEX_MEDIA_TYPE || media_type == DOCKER_LIST {
        for child in children(&doc, image)? {
            let child_bytes = store.read_blob(&child.digest)?;
            let child_doc: serde_json::Value =
                serde_json::from_slice(&child_bytes).map_err(|e| {
                    RegistryError::Unsupported(format!("manifest {}: {e}", child.digest))
                })?;
            uploaded += push_blobs(
                session, store, &remote, target, &child_doc, &mounts, progress,
            )
            .await?;
            let child_type = media_type_of(&child_doc, &child);
            put_manifest(
                session,
                &remote,
                &target.with_digest(child.digest),
                child_bytes,
                &child_type,
                progress,
            )
            .await?;
        }
    } else if media_type == MANIFEST_MEDIA_TYPE || media_type == DOCKER_MANIFEST {
        uploaded += push_blobs(session, store, &remote, target, &doc, &mounts, progress).await?;
    } else {
        return Err(RegistryError::Unsupported(format!(
            "image {} is a {media_type}, which kiln does not push",
            image.digest
        )));
    }
    let size = bytes.len() as u64;
    put_manifest(session, &remote, target, bytes, &media_type, progress).await?;
    Ok(Pushed {
        digest: image.digest,
        size,
        uploaded,
    })
}

fn media_type_of(doc: &serde_json::Value, d: &Descriptor) -> String {
    doc.get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(d.media_type.as_str())
        .to_string()
}

fn children(doc: &serde_json::Value, image: &Descriptor) -> Result<Vec<Descriptor>, RegistryError> {
    let list = doc.get("manifests").cloned().unwrap_or_default();
    serde_json::from_value(list)
        .map_err(|e| RegistryError::Unsupported(format!("index {}: {e}", image.digest)))
}

/// Repositories on `target`'s registry the store's images were pulled
/// from: where a blob may be mounted from instead of uploaded.
fn mount_sources(store: &Store, target: &Reference) -> Vec<(Reference, BTreeSet<Digest>)> {
    let Ok(images) = store.images() else {
        return Vec::new();
    };
    let mut out: Vec<(Reference, BTreeSet<Digest>)> = Vec::new();
    for image in images {
        // An image converted from a wasm artifact has blobs of its own,
        // which the artifact's repository does not hold.
        if super::wasm_artifact::artifact_of(&image.manifest).is_some() {
            continue;
        }
        let Some(source) = image
            .manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_ANNOTATION))
            .and_then(|s| Reference::parse(s).ok())
        else {
            continue;
        };
        if source.registry() != target.registry() || source.repository() == target.repository() {
            continue;
        }
        let Ok(loaded) = crate::image::Image::load(store, &image.manifest, None) else {
            continue;
        };
        let mut blobs: BTreeSet<Digest> = loaded
            .layers()
            .map(|l| l.into_iter().map(|(d, _)| d.digest).collect())
            .unwrap_or_default();
        blobs.insert(loaded.config_digest);
        out.push((source, blobs));
    }
    out
}

/// Where a push may mount blobs from.
struct Mounts<'a> {
    /// Repositories of the target's registry, and the blobs each holds.
    sources: &'a [(Reference, BTreeSet<Digest>)],
    /// A token for mounting from them ([`mount_token`]).
    token: Option<&'a str>,
}

/// A token for the mounts from `sources` under the bearer-token flow.
///
/// A mount (`POST .../blobs/uploads/?mount=DIGEST&from=SOURCE`) needs pull
/// access to the source repository besides push to the target. oci-client
/// asks the realm for the target's scope only, so a token registry refuses
/// its every mount (401) and each blob is uploaded again. This asks for one
/// token with the target's `pull,push` and each source's `pull`, as docker
/// and crane do; [`mount`] uses it, and nothing else does, so the uploads
/// keep oci-client's own tokens. `None` (no sources, a registry without
/// tokens, a realm that says no) leaves the mounts to oci-client.
async fn mount_token(
    remote: &Remote,
    target: &Reference,
    sources: &[(Reference, BTreeSet<Digest>)],
) -> Option<String> {
    if sources.is_empty() {
        return None;
    }
    let mut scopes = vec![format!("repository:{}:pull,push", target.repository())];
    for (source, _) in sources {
        let scope = format!("repository:{}:pull", source.repository());
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    remote.bearer_token(&scopes).await
}

/// Mounts `digest` from `source` into `target`'s repository: with
/// `token` ([`mount_token`]) when there is one, else through oci-client.
async fn mount(
    remote: &Remote,
    target: &Reference,
    source: &Reference,
    digest: &str,
    token: Option<&str>,
) -> bool {
    let Some(token) = token else {
        return remote
            .client
            .mount_blob(&target.to_oci(), &source.to_oci(), digest)
            .await
            .is_ok();
    };
    let url = format!(
        "{}://{}/v2/{}/blobs/uploads/",
        remote.scheme,
        api_host(&remote.host),
        target.repository()
    );
    // 201 is a mount; 202 is an upload the registry started instead (it
    // lacks the blob there), which it purges unused.
    remote
        .http
        .post(&url)
        .query(&[("mount", digest), ("from", source.repository())])
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED)
}

/// Pushes the config and layers of manifest `doc`; returns bytes uploaded.
async fn push_blobs(
    session: &Session,
    store: &Store,
    remote: &Remote,
    target: &Reference,
    doc: &serde_json::Value,
    mounts: &Mounts<'_>,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    let mut blobs: Vec<(Descriptor, &str)> = Vec::new();
    let config: Descriptor = doc
        .get("config")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| RegistryError::Unsupported("a manifest without a config".into()))?;
    blobs.push((config, "config"));
    let layers: Vec<Descriptor> = doc
        .get("layers")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| RegistryError::Unsupported(format!("a manifest's layers: {e}")))?
        .unwrap_or_default();
    for layer in layers {
        if !blobs.iter().any(|(b, _)| b.digest == layer.digest) {
            blobs.push((layer, "layer"));
        }
    }
    let jobs = session.options().jobs.max(1);
    let sizes: Vec<u64> = futures_util::stream::iter(blobs.iter())
        .map(|(blob, what)| put_blob(session, store, remote, target, blob, what, mounts, progress))
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    Ok(sizes.iter().sum())
}

#[allow(clippy::too_many_arguments)]
async fn put_blob(
    session: &Session,
    store: &Store,
    remote: &Remote,
    target: &Reference,
    blob: &Descriptor,
    what: &str,
    mounts: &Mounts<'_>,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    session.check_cancel()?;
    progress.begin(&blob.digest, blob.size, what);
    let oci = &target.to_oci();
    let digest = blob.digest.to_string();
    let digest = digest.as_str();
    let doing = format!("pushing {what} {} to {target}", blob.digest);
    let failed = |e| RegistryError::from_oci(e, &doing, &remote.host, remote.has_credentials);
    let retried = |n, error: &str| progress.retrying(&doing, n, error);
    let exists = session
        .retry(|| remote.client.blob_exists(oci, digest), retried)
        .await
        .map_err(failed)?;
    if exists {
        progress.finish(&blob.digest, &Outcome::Present);
        return Ok(0);
    }
    for (source, _) in mounts
        .sources
        .iter()
        .filter(|(_, held)| held.contains(&blob.digest))
    {
        if mount(remote, target, source, digest, mounts.token).await {
            progress.finish(
                &blob.digest,
                &Outcome::Mounted(source.repository().to_string()),
            );
            return Ok(0);
        }
    }
    let sent = Arc::new(AtomicU64::new(0));
    let cancel = session.cancel_flag();
    let upload = || {
        let sent = Arc::clone(&sent);
        let cancel = Arc::clone(&cancel);
        async move {
            sent.store(0, Ordering::Relaxed);
            let reader = store
                .open_blob(&blob.digest)
                .map_err(|e| OciDistributionError::IoError(std::io::Error::other(e)))?;
            let chunked = blob.size > session.options().chunked_above;
            let body = file_stream(
                reader,
                sent,
                cancel,
                if chunked { CHUNK } else { READ_CHUNK },
            );
            if chunked {
                let r = remote.client.push_blob_stream_chunked(oci, body).await?;
                if r.blob_digest != digest {
                    return Err(OciDistributionError::GenericError(Some(format!(
                        "the store's blob hashed to {} while it was sent",
                        r.blob_digest
                    ))));
                }
                Ok(())
            } else {
                remote
                    .client
                    .push_blob_stream(oci, body, digest, Some(blob.size))
                    .await
                    .map(|_| ())
            }
        }
    };
    let ticking = ticker(&sent, &blob.digest, progress);
    let uploading = session.retry(upload, retried);
    futures_util::pin_mut!(ticking);
    futures_util::pin_mut!(uploading);
    let result = match futures_util::future::select(uploading, ticking).await {
        futures_util::future::Either::Left((r, _)) => r,
        futures_util::future::Either::Right(_) => unreachable!("the ticker never ends"),
    };
    if session.cancelled() {
        return Err(RegistryError::Cancelled);
    }
    result.map_err(failed)?;
    progress.advance(&blob.digest, blob.size);
    progress.finish(&blob.digest, &Outcome::Pushed);
    Ok(blob.size)
}

/// Reports `sent` every 200 ms, forever.
async fn ticker(sent: &AtomicU64, digest: &Digest, progress: &dyn TransferProgress) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sent.load(Ordering::Relaxed);
        if now != last {
            progress.advance(digest, now);
            last = now;
        }
    }
}

/// A store blob as a request body: pieces of `piece` bytes, counted into
/// `sent`, ending with an error if the user interrupts.
fn file_stream(
    reader: crate::store::BlobReader,
    sent: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    piece: usize,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::try_unfold(reader, move |mut reader| {
        let sent = Arc::clone(&sent);
        let cancel = Arc::clone(&cancel);
        async move {
            if cancel.load(Ordering::Relaxed) {
                return Err(OciDistributionError::IoError(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "interrupted",
                )));
            }
            let mut buf = vec![0u8; piece];
            let mut filled = 0;
            while filled < buf.len() {
                let n = reader.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            sent.fetch_add(filled as u64, Ordering::Relaxed);
            Ok(Some((bytes::Bytes::from(buf), reader)))
        }
    })
}

/// Puts a manifest under `target`'s tag (or digest).
async fn put_manifest(
    session: &Session,
    remote: &Remote,
    target: &Reference,
    bytes: Vec<u8>,
    media_type: &str,
    progress: &dyn TransferProgress,
) -> Result<(), RegistryError> {
    session.check_cancel()?;
    let oci = &target.to_oci();
    let doing = format!("pushing the manifest of {target}");
    let content_type = HeaderValue::from_str(media_type)
        .map_err(|_| RegistryError::Unsupported(format!("media type {media_type:?}")))?;
    let body = bytes::Bytes::from(bytes);
    session
        .retry(
            || {
                remote
                    .client
                    .push_manifest_raw(oci, body.clone(), content_type.clone())
            },
            |n, error| progress.retrying(&doing, n, error),
        )
        .await
        .map_err(|e| RegistryError::from_oci(e, &doing, &remote.host, remote.has_credentials))?;
    Ok(())
}

/// Pushes the store's blobs `blobs` to `target`'s repository, those the
/// registry lacks (`HEAD` first), several at once; returns bytes uploaded.
/// `what` names them in progress (`layer`...).
pub(crate) fn push_store_blobs(
    session: &Session,
    store: &Store,
    target: &Reference,
    blobs: &[Descriptor],
    what: &str,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    session.block_on(async {
        let remote = session.remote(target.registry()).await?;
        let jobs = session.options().jobs.max(1);
        let sizes: Vec<u64> = futures_util::stream::iter(blobs.iter())
            .map(|blob| {
                put_blob(
                    session,
                    store,
                    &remote,
                    target,
                    blob,
                    what,
                    &Mounts {
                        sources: &[],
                        token: None,
                    },
                    progress,
                )
            })
            .buffer_unordered(jobs)
            .try_collect()
            .await?;
        Ok(sizes.iter().sum())
    })
}

/// Pushes `bytes` (a small document, `d` its descriptor) as a blob of
/// `target`'s repository unless the registry has it; returns bytes uploaded.
pub(crate) fn push_small_blob(
    session: &Session,
    target: &Reference,
    bytes: &[u8],
    d: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<u64, RegistryError> {
    session.block_on(async {
        session.check_cancel()?;
        let remote = session.remote(target.registry()).await?;
        let oci = &target.to_oci();
        let digest = d.digest.to_string();
        let digest = digest.as_str();
        let doing = format!("pushing blob {} to {target}", d.digest);
        let failed = |e| RegistryError::from_oci(e, &doing, &remote.host, remote.has_credentials);
        let exists = session
            .retry(
                || remote.client.blob_exists(oci, digest),
                |n, error| progress.retrying(&doing, n, error),
            )
            .await
            .map_err(failed)?;
        if exists {
            return Ok(0);
        }
        let body = bytes::Bytes::copy_from_slice(bytes);
        session
            .retry(
                || remote.client.push_blob(oci, body.clone(), digest),
                |n, error| progress.retrying(&doing, n, error),
            )
            .await
            .map_err(failed)?;
        Ok(d.size)
    })
}

/// Puts the manifest `bytes` (of `media_type`) under `target`'s tag.
pub(crate) fn push_manifest_bytes(
    session: &Session,
    target: &Reference,
    bytes: Vec<u8>,
    media_type: &str,
    progress: &dyn TransferProgress,
) -> Result<(), RegistryError> {
    session.block_on(async {
        let remote = session.remote(target.registry()).await?;
        put_manifest(session, &remote, target, bytes, media_type, progress).await
    })
}
