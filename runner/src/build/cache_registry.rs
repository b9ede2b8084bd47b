//! Step cache export and import through a registry
//! (`--cache-to type=registry,ref=REF`, `--cache-from type=registry,ref=REF`),
//! so a fresh CI machine gets `CACHED` steps from the previous run.
//!
//! The cache is the same artifact a cache directory holds
//! (`cache_format.rs`), pushed as an OCI artifact manifest under REF's tag:
//! `skopeo inspect --raw docker://REF` shows it. Exporting reads what REF
//! holds (when it exists), merges (the newer entry wins a key), pushes the
//! layer blobs the registry lacks (`HEAD` first), the config, then the
//! manifest. Importing reads the manifest and config once, at the start of
//! the build (digest-checked, size-capped); a key hit fetches only that
//! entry's layer, checked against its digest and size as it streams into
//! the store, then read once like any imported layer. A layer the registry
//! serves wrong (tampered with, truncated) is refused, and the step runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache_format::{self, CacheDest, CacheSource, Documents, MAX_JSON, Record};
use crate::digest::Digest;
use crate::registry::progress::{Quiet, TransferProgress};
use crate::registry::{Reference, RegistryError, Session, pull, push};
use crate::store::{Descriptor, MANIFEST_MEDIA_TYPE, StepEntry, Store};

/// A `--cache-from type=registry` cache, its entries read once.
pub struct RegistryCache {
    session: Arc<Session>,
    reference: Reference,
    entries: BTreeMap<Digest, Record>,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("reference", &self.reference)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// The entries of the cache `reference` names; `None` when the registry
/// has nothing there.
fn read(session: &Session, reference: &Reference) -> Result<Option<Vec<Record>>, RegistryError> {
    let bytes = match pull::fetch_manifest_bytes(session, reference, &Quiet) {
        Ok((bytes, _)) => bytes,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let unusable = |e: String| RegistryError::Unsupported(format!("{reference}: {e}"));
    let config = cache_format::read_manifest(&bytes).map_err(unusable)?;
    let bytes = pull::fetch_small_blob(session, reference, &config, MAX_JSON, &Quiet)?;
    cache_format::read_config(&bytes)
        .map(Some)
        .map_err(unusable)
}

impl RegistryCache {
    /// Reads the cache `reference` names; `None` when the registry has no
    /// manifest there.
    pub fn open(
        session: Arc<Session>,
        reference: Reference,
    ) -> Result<Option<RegistryCache>, RegistryError> {
        let Some(records) = read(&session, &reference)? else {
            return Ok(None);
        };
        Ok(Some(RegistryCache {
            session,
            reference,
            entries: records.into_iter().map(|r| (r.key, r)).collect(),
        }))
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl CacheSource for RegistryCache {
    fn name(&self) -> String {
        format!("cache {}", self.reference)
    }

    fn record(&self, key: &Digest) -> Option<&Record> {
        self.entries.get(key)
    }

    fn fetch_layer(&self, store: &Store, layer: &Descriptor) -> Result<(), String> {
        pull::fetch_blob_into_store(
            &self.session,
            store,
            &self.reference,
            layer,
            "cache layer",
            &Quiet,
        )
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", self.name()))
    }
}

/// A `--cache-to type=registry` destination.
struct RegistryDest<'a> {
    session: &'a Session,
    reference: &'a Reference,
    progress: &'a dyn TransferProgress,
    /// Bytes uploaded.
    uploaded: u64,
}

impl CacheDest for RegistryDest<'_> {
    fn existing(&mut self) -> Result<Vec<Record>, String> {
        match read(self.session, self.reference) {
            Ok(records) => Ok(records.unwrap_or_default()),
            Err(RegistryError::Unsupported(e)) => Err(format!(
                "{e}; kiln does not overwrite it with a cache: choose another ref"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn write(&mut self, store: &Store, docs: &Documents) -> Result<(), String> {
        let (session, target, progress) = (self.session, self.reference, self.progress);
        self.uploaded +=
            push::push_store_blobs(session, store, target, &docs.layers, "layer", progress)
                .map_err(|e| e.to_string())?;
        self.uploaded +=
            push::push_small_blob(session, target, &docs.config, &docs.config_desc, progress)
                .map_err(|e| e.to_string())?;
        push::push_manifest_bytes(
            session,
            target,
            docs.manifest.clone(),
            MANIFEST_MEDIA_TYPE,
            progress,
        )
        .map_err(|e| e.to_string())?;
        self.uploaded += docs.manifest.len() as u64;
        Ok(())
    }
}

/// What a registry export did.
#[derive(Debug, Clone, Copy)]
pub struct Exported {
    /// Entries the cache holds now.
    pub entries: usize,
    /// Bytes uploaded (blobs the registry had excluded).
    pub uploaded: u64,
}

/// Pushes `entries` (with their layers from `store`) into the cache
/// `reference` names, merged with what it holds.
pub fn export(
    session: &Session,
    reference: &Reference,
    store: &Store,
    entries: &[(Digest, StepEntry)],
    progress: &dyn TransferProgress,
) -> Result<Exported, String> {
    let mut dest = RegistryDest {
        session,
        reference,
        progress,
        uploaded: 0,
    };
    let entries = cache_format::export(&mut dest, store, entries)?;
    Ok(Exported {
        entries,
        uploaded: dest.uploaded,
    })
}

/// Transfer progress as lines of a build step's log: retries only (a
/// cache's blobs are many and small; the step's summary says the rest).
pub(crate) struct StepLog<'a>(pub(crate) &'a (dyn Fn(&str) + Sync));

impl TransferProgress for StepLog<'_> {
    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        (self.0)(&format!(
            "{what}: attempt {attempt} failed ({error}); retrying"
        ));
    }
}
