//! The end of a layer step: its layer written (or finished, when it was
//! written ahead), added to the image, and remembered in the step cache.

use super::cache;
use super::dispatch::State;
use super::{Build, BuildError};
use crate::digest::Digest;
use crate::layer::{
    LayerError, LayerOptions, LayerStream, PendingChanges, WrittenLayer, write_layer,
};

/// A step's layer, to commit.
pub(super) enum Layer {
    /// Its changes, written now.
    Changes(PendingChanges),
    /// Written while the step was planned (`copy_ahead.rs`): finished now.
    Ahead(LayerStream),
}

impl Build<'_> {
    /// Writes the layer of a step (or records an empty history entry),
    /// adds it to the image and remembers it in the step cache under `key`.
    pub(super) fn commit_layer(
        &self,
        state: &mut State,
        layer: Layer,
        created_by: String,
        step: &str,
        key: Digest,
    ) -> Result<(), BuildError> {
        self.keys
            .lock()
            .expect("keys lock")
            .push((state.stage, key));
        let written = match layer {
            Layer::Changes(changes) if changes.is_empty() => {
                self.history(state, created_by, true);
                self.remember(&key, None, Vec::new());
                return Ok(());
            }
            Layer::Changes(changes) => write_layer(self.store, changes, &self.layer_options()),
            Layer::Ahead(ahead) => ahead.finish(),
        }
        .map_err(|source| match source {
            LayerError::Cancelled => BuildError::Cancelled,
            source => BuildError::Layer {
                step: step.to_string(),
                source,
            },
        })?;
        self.record_layer(state, written, created_by, step, key)
    }

    /// How the build writes its layers.
    pub(super) fn layer_options(&self) -> LayerOptions {
        LayerOptions {
            compression: self.opts.compression,
            clamp_mtime: Some(self.epoch),
            guard: self.guard(),
            cancel: Some(self.opts.cancel.clone()),
            threads: 0,
        }
    }

    /// Adds `layer`, written for the step of cache `key`, to the image,
    /// and remembers it in the step cache.
    fn record_layer(
        &self,
        state: &mut State,
        layer: WrittenLayer,
        created_by: String,
        step: &str,
        key: Digest,
    ) -> Result<(), BuildError> {
        for (path, hit) in &layer.leaks {
            self.steps.warn(&format!(
                "{step}: {path} contains secret {:?} ({}); it is in the image (--secret-scan=warn)",
                hit.id, hit.encoding
            ));
        }
        // The layer's index is written while the snapshot takes its
        // changes: on a large layer each is tens of milliseconds on one
        // core, while the other is idle.
        let snapshot = std::sync::Arc::make_mut(&mut state.snapshot);
        let put_index = || self.store.put_layer_index(&layer.diff_id, &layer.changes);
        std::thread::scope(|s| {
            let index = std::thread::Builder::new()
                .name("kiln-layer-index".into())
                .spawn_scoped(s, put_index);
            snapshot.apply(&layer.changes);
            match index {
                Ok(index) => index
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread to be had: the index is written here, after.
                Err(_) => put_index(),
            }
        })?;
        // Only a layer the guard passed is known to be free of these secrets.
        let guard_fails = self.guard().is_some_and(|g| g.fail);
        let clean_of = if layer.leaks.is_empty() && guard_fails {
            self.secret_fingerprints()?
        } else {
            Vec::new()
        };
        self.remember(
            &key,
            Some((layer.diff_id, layer.descriptor.clone())),
            clean_of,
        );
        state.key = cache::filesystem_key(&state.key, &layer.diff_id);
        state.layers.push(layer.descriptor);
        state
            .config
            .rootfs_mut()
            .diff_ids_mut()
            .push(layer.diff_id.to_string());
        self.history(state, created_by, false);
        Ok(())
    }
}
