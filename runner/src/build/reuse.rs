//! Reusing the step cache while a stage is dispatched: recording what a
//! step gave (`remember`), finding a sound entry for a key in the store or a
//! `--cache-from` directory (`reuse`, `import`), reading a cached layer's
//! changes back (rebuilt from its blob when its index is damaged), and
//! searching a cached layer for this build's secrets before it is reused.
//! The keys themselves are made in `cache.rs`; `dispatch.rs` decides when
//! to ask.

use super::dispatch::State;
use super::{Build, BuildError, cache, cache_format};
use crate::digest::Digest;
use crate::snapshot::{Change, Node};

impl Build<'_> {
    /// Records in the step cache that `key` gave this layer (or none). A
    /// cache that cannot be written costs the next build time, not this
    /// one its result: the failure is a warning.
    pub(super) fn remember(
        &self,
        key: &Digest,
        layer: Option<(Digest, crate::store::Descriptor)>,
        clean_of: Vec<String>,
    ) {
        let (diff_id, layer) = match layer {
            Some((d, l)) => (Some(d), Some(l)),
            None => (None, None),
        };
        let entry = crate::store::StepEntry {
            diff_id,
            layer,
            used: unix_now(),
            clean_of,
        };
        if let Err(e) = self.store.put_step_entry(key, &entry) {
            self.steps
                .warn(&format!("could not record the step in the cache: {e}"));
        }
    }

    /// Whether stage `index` may use the step cache (`--no-cache`,
    /// `--no-cache-filter`).
    fn cache_enabled(&self, index: usize) -> bool {
        if self.opts.no_cache {
            return false;
        }
        let name = self.kilnfile.stages[index].name.as_deref();
        !self
            .opts
            .no_cache_filter
            .iter()
            .any(|f| Some(f.as_str()) == name || *f == index.to_string())
    }

    /// Reuses what the step cache has for `key`, when it has a sound entry:
    /// the layer blob must be present and match its digest, and its change
    /// index must be there. Returns whether it did; anything short of that
    /// is a miss (said in the step's log) and the step runs.
    pub(super) fn reuse(
        &self,
        state: &mut State,
        key: &Digest,
        created_by: &str,
        step: &str,
        id: usize,
    ) -> Result<bool, BuildError> {
        if !self.cache_enabled(state.stage) {
            return Ok(false);
        }
        let mut entry = match self.store.step_entry(key) {
            Ok(Some(e)) => e,
            Ok(None) => match self.import(key, id) {
                Some(e) => e,
                None => return Ok(false),
            },
            Err(e) => {
                self.steps
                    .log(id, &format!("ignoring a damaged cache entry: {e}"));
                return Ok(false);
            }
        };
        let clean_before = entry.clean_of.len();
        match (&entry.layer, entry.diff_id) {
            (None, _) => self.history(state, created_by.to_string(), true),
            (Some(layer), Some(diff_id)) => {
                let changes = match self.cached_layer(layer, &diff_id) {
                    Ok(c) => c,
                    Err(why) => {
                        self.steps.log(
                            id,
                            &format!(
                                "the cached layer is unusable ({why}); running the step again"
                            ),
                        );
                        return Ok(false);
                    }
                };
                let fingerprints = match self.guard() {
                    Some(_) => self.secret_fingerprints()?,
                    None => Vec::new(),
                };
                if !fingerprints.iter().all(|f| entry.clean_of.contains(f)) {
                    let clean = self.scan_cached(&changes, step)?;
                    if clean {
                        entry.clean_of.extend(fingerprints);
                        entry.clean_of.sort();
                        entry.clean_of.dedup();
                    }
                }
                std::sync::Arc::make_mut(&mut state.snapshot).apply(&changes);
                state.key = cache::filesystem_key(&state.key, &diff_id);
                state.layers.push(layer.clone());
                state
                    .config
                    .rootfs_mut()
                    .diff_ids_mut()
                    .push(diff_id.to_string());
                self.history(state, created_by.to_string(), false);
            }
            (Some(_), None) => {
                self.steps
                    .log(id, "ignoring a cache entry without a diff_id");
                return Ok(false);
            }
        }
        // The last use feeds `prune --keep-storage`, where a minute is
        // nothing: a rebuild within one rewrites no entry it did not change.
        let now = unix_now();
        if entry.clean_of.len() != clean_before || now - entry.used >= USED_GRANULARITY {
            entry.used = now;
            if let Err(e) = self.store.put_step_entry(key, &entry) {
                self.steps
                    .warn(&format!("could not update the step cache: {e}"));
            }
        }
        self.keys
            .lock()
            .expect("keys lock")
            .push((state.stage, *key));
        self.steps.mark_cached(id);
        Ok(true)
    }

    /// The entry for `key` from a `--cache-from` directory, copied into the
    /// store; a damaged one is skipped with a note in the step's log.
    fn import(&self, key: &Digest, id: usize) -> Option<crate::store::StepEntry> {
        for source in &self.cache_from {
            match cache_format::import(&**source, self.store, key, unix_now()) {
                Ok(Some(e)) => {
                    self.steps.log(id, "imported from --cache-from");
                    return Some(e);
                }
                Ok(None) => {}
                Err(e) => self.steps.log(id, &format!("ignoring a cache entry: {e}")),
            }
        }
        None
    }

    /// The change index of a cached layer, after checking the blob.
    fn cached_layer(
        &self,
        layer: &crate::store::Descriptor,
        diff_id: &Digest,
    ) -> Result<crate::snapshot::ChangeSet, String> {
        let size = self
            .store
            .blob_size(&layer.digest)
            .map_err(|e| e.to_string())?;
        if size != layer.size {
            return Err(format!("the blob has {size} bytes, not {}", layer.size));
        }
        // Read whole and checked once; later hits trust the note of that
        // check while the file is unchanged (store/verified.rs).
        if !self.store.blob_known_good(&layer.digest) {
            let mut reader = self
                .store
                .open_blob(&layer.digest)
                .map_err(|e| e.to_string())?;
            if let Err(e) = std::io::copy(&mut reader, &mut std::io::sink()) {
                // Bytes that do not match their name are worthless: remove
                // them so the step's rerun can store the layer again.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let _ = self.store.discard_blob(&layer.digest);
                }
                return Err(e.to_string());
            }
            self.store.note_blob_good(&layer.digest);
        }
        crate::image::layer_changes(self.store, layer, diff_id).map_err(|e| e.to_string())
    }

    /// Searches a cached layer for this build's secrets (names, link
    /// targets, contents), as the layer writer would have. Returns whether
    /// it is clean; a hit fails the build or warns, as `--secret-scan` says.
    fn scan_cached(
        &self,
        changes: &crate::snapshot::ChangeSet,
        step: &str,
    ) -> Result<bool, BuildError> {
        use std::io::Read as _;
        let Some(guard) = self.guard() else {
            return Ok(true);
        };
        let mut clean = true;
        for (path, change) in changes {
            let mut hit = guard.scanner.find(path.absolute().as_bytes());
            if hit.is_none() {
                match change {
                    Change::Put(Node::Symlink(_, target)) => {
                        hit = guard.scanner.find(target.as_bytes())
                    }
                    Change::Put(Node::File(_, f)) => {
                        let mut reader = self.store.open_content(f)?;
                        let mut scan = crate::secrets::StreamScan::new(&guard.scanner);
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = reader.read(&mut buf).map_err(|e| BuildError::Step {
                                step: step.to_string(),
                                message: format!("reading the cached layer: {e}"),
                                stderr: String::new(),
                            })?;
                            if n == 0 || scan.feed(&buf[..n]).is_some() {
                                break;
                            }
                        }
                        hit = scan.hit().cloned();
                    }
                    _ => {}
                }
            }
            let Some(hit) = hit else { continue };
            clean = false;
            if guard.fail {
                return Err(BuildError::Layer {
                    step: step.to_string(),
                    source: crate::layer::LayerError::SecretLeak {
                        path: path.clone(),
                        id: hit.id,
                        encoding: hit.encoding,
                    },
                });
            }
            self.steps.warn(&format!(
                "{step}: {path} contains secret {:?} ({}); it is in the image (--secret-scan=warn)",
                hit.id, hit.encoding
            ));
        }
        Ok(clean)
    }
}

/// Now, in Unix seconds (for the cache's least-recently-used order only).
/// Seconds: how stale a cache entry's last use may be before a hit
/// rewrites it.
const USED_GRANULARITY: i64 = 60;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
