//! An OCI image layout inside the archive: `index.json` names the images
//! (manifests, or indexes of them), whose blobs are `blobs/sha256/<hex>`.
//! Each descriptor is followed to the blobs it needs, which must be there
//! with the size it says (their digests were checked as they were read).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::archive::{Entries, blob_path};
use super::{LoadError, Plan, image_name, push_name};
use crate::digest::Digest;
use crate::export::CONTAINERD_NAME;
use crate::image::{CONFIG_MEDIA_TYPE, MAX_INDEX_DEPTH};
use crate::registry::pull::MAX_MANIFEST;
use crate::store::{Descriptor, REF_NAME};

/// docker's image config media type.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// The images `index.json` names; `docker_names` are `RepoTags` by config
/// digest, from a `manifest.json` beside the layout.
pub(super) fn plans(
    entries: &mut Entries,
    docker_names: &BTreeMap<Digest, Vec<String>>,
) -> Result<Vec<Plan>, LoadError> {
    let index: Doc = entries.json("index.json", MAX_MANIFEST as u64)?;
    let Some(manifests) = index.manifests else {
        return Err(LoadError::Format("index.json lists no manifests".into()));
    };
    // One plan per image: several entries of one digest are its names.
    let mut plans: Vec<Plan> = Vec::new();
    for d in manifests {
        let mut names = Vec::new();
        let annotations = d.annotations.clone().unwrap_or_default();
        // docker writes the full name as containerd's annotation and only
        // the tag as the OCI one; other tools write the full name there.
        if let Some(name) = annotations
            .get(CONTAINERD_NAME)
            .or_else(|| annotations.get(REF_NAME))
        {
            names.push(image_name(name)?);
        }
        if let Some(plan) = plans
            .iter_mut()
            .find(|p| p.top.as_ref().is_some_and(|t| t.digest == d.digest))
        {
            for name in names {
                push_name(&mut plan.names, name);
            }
            continue;
        }
        let mut plan = Plan {
            names,
            top: Some(Descriptor::new(&d.media_type, d.digest, d.size)),
            ..Plan::default()
        };
        walk(entries, &d, &mut plan, 0)?;
        for config in &plan.configs {
            for name in docker_names.get(config).into_iter().flatten() {
                push_name(&mut plan.names, name.clone());
            }
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Checks that the blob `d` is in the archive with its size.
fn present(entries: &Entries, d: &Descriptor, what: &str) -> Result<(), LoadError> {
    let staged = entries
        .get(&blob_path(&d.digest))
        .ok_or_else(|| LoadError::Damaged(format!("it lacks {what} {}", d.digest)))?;
    if staged.size != d.size {
        return Err(LoadError::Damaged(format!(
            "{what} {} is {} bytes, but its descriptor says {}",
            d.digest, staged.size, d.size
        )));
    }
    Ok(())
}

/// Follows `d` (a manifest or an index) to every blob it needs.
fn walk(
    entries: &mut Entries,
    d: &Descriptor,
    plan: &mut Plan,
    depth: usize,
) -> Result<(), LoadError> {
    present(entries, d, "manifest")?;
    let doc: Doc = entries.json(&blob_path(&d.digest), MAX_MANIFEST as u64)?;
    plan.blobs.push(d.digest);
    if let Some(children) = doc.manifests {
        if depth >= MAX_INDEX_DEPTH {
            return Err(LoadError::Format(format!(
                "image indexes nested deeper than {MAX_INDEX_DEPTH}"
            )));
        }
        // An index may list platforms the archive does not carry.
        let mut found = 0;
        for child in children {
            if entries.has(&blob_path(&child.digest)) {
                walk(entries, &child, plan, depth + 1)?;
                found += 1;
            }
        }
        if found == 0 {
            return Err(LoadError::Damaged(format!(
                "it holds none of the manifests of index {}",
                d.digest
            )));
        }
        return Ok(());
    }
    let Some(config) = doc.config else {
        return Err(LoadError::Format(format!(
            "{} is neither an image manifest nor an index",
            d.digest
        )));
    };
    present(entries, &config, "config")?;
    plan.blobs.push(config.digest);
    for layer in doc.layers.iter().flatten() {
        present(entries, layer, "layer")?;
        plan.blobs.push(layer.digest);
    }
    // Attestations and other artifacts are kept, not read as images.
    if config.media_type == CONFIG_MEDIA_TYPE || config.media_type == DOCKER_CONFIG {
        plan.images
            .push(Descriptor::new(&d.media_type, d.digest, d.size));
        plan.configs.push(config.digest);
    }
    Ok(())
}
