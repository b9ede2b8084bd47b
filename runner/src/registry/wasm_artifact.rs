//! Wasm step programs as OCI artifacts, in the CNCF TAG Runtime "Wasm OCI
//! Artifact layout": a manifest whose config has the media type
//! `application/vnd.wasm.config.v0+json` and whose one layer is the module
//! or component itself (`application/wasm`).
//!
//! `kiln publish` writes one from a `.wasm` file ([`write`]) and pushes it.
//! A pull of one ([`to_image`]) keeps the artifact's blobs and stores a kiln
//! image beside it: one layer holding the program at `/<title>` (the layer's
//! `org.opencontainers.image.title`), `wasi/wasm`, the program as its
//! entrypoint. That image's index entry records the artifact's digest, so a
//! Kilnfile can bind-mount the program by the artifact's reference:
//! `RUN --mount=type=bind,from=HOST/steps/tool@sha256:…,target=/plugins`.
//!
//! Both sides are deterministic: the same file (and `SOURCE_DATE_EPOCH`)
//! gives the same artifact digest, and the same artifact the same image.

use std::collections::BTreeMap;

use oci_spec::image::ImageManifest;
use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use super::{Reference, RegistryError, SOURCE_ANNOTATION};
use crate::digest::Digest;
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, ImagePath, Meta, Node};
use crate::store::{Descriptor, MANIFEST_MEDIA_TYPE, REF_NAME, Store};

/// The media type of a wasm artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer: the module or component's bytes.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer annotation naming the file (`asset-manifest.wasm`).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The annotation on a store image converted from a wasm artifact: the
/// artifact manifest's digest.
pub const ARTIFACT_ANNOTATION: &str = "io.kiln.wasm.artifact";
/// The file name of a program whose artifact names none.
pub const DEFAULT_TITLE: &str = "module.wasm";
/// Largest program kiln publishes or pulls.
pub const MAX_MODULE: u64 = 1 << 30;
/// `os` of a core module (WASI preview 1).
pub const MODULE_OS: &str = "wasip1";
/// `os` of a component (WASI 0.2).
pub const COMPONENT_OS: &str = "wasip2";

/// What a wasm file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmInfo {
    /// A component (`true`) or a core module.
    pub component: bool,
    /// A component's top-level imports (`wasi:cli/environment@0.2.0`...).
    pub imports: Vec<String>,
    /// A component's top-level exports (`wasi:cli/run@0.2.0`...).
    pub exports: Vec<String>,
}

impl WasmInfo {
    /// The config's `os`: `wasip2` for a component, `wasip1` for a module.
    pub fn os(&self) -> &'static str {
        if self.component {
            COMPONENT_OS
        } else {
            MODULE_OS
        }
    }
}

/// Validates `bytes` as a core module or a component and says which.
pub fn inspect(bytes: &[u8]) -> Result<WasmInfo, String> {
    let component = Parser::is_component(bytes);
    if !component && !Parser::is_core_wasm(bytes) {
        return Err("not a WebAssembly module or component (no `\\0asm` header)".into());
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| format!("not a valid WebAssembly {}: {e}", kind(component)))?;
    let mut info = WasmInfo {
        component,
        imports: Vec::new(),
        exports: Vec::new(),
    };
    if !component {
        return Ok(info);
    }
    // Nested modules and components are parsed inline, each between its
    // own `Version` and `End`: only depth 1 is the component's own world.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(r) if depth == 1 => {
                for import in r {
                    info.imports
                        .push(import.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(r) if depth == 1 => {
                for export in r {
                    info.exports
                        .push(export.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn kind(component: bool) -> &'static str {
    if component { "component" } else { "module" }
}

/// The artifact's config, as the layout specifies it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339: `SOURCE_DATE_EPOCH`, or the epoch.
    pub created: String,
    /// Who made it, when said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip1` (a core module) or `wasip2` (a component).
    pub os: String,
    /// The digests of the manifest's layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// A component's world; required with `wasip2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentWorld>,
}

/// A component's imports and exports, in the config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ComponentWorld {
    /// Its top-level exports.
    pub exports: Vec<String>,
    /// Its top-level imports.
    pub imports: Vec<String>,
    /// The world it targets (`namespace:package/world@version`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// An artifact's documents, before they are stored.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config JSON.
    pub config: Vec<u8>,
    /// The manifest JSON.
    pub manifest: Vec<u8>,
    /// The manifest's digest: the artifact's.
    pub digest: Digest,
    /// What the program is.
    pub info: WasmInfo,
}

/// The artifact of program `wasm` (validated), with file name `title`,
/// created at `created` (seconds since the epoch), and manifest
/// `annotations`.
pub fn artifact(
    wasm: &[u8],
    title: &str,
    created: i64,
    annotations: &BTreeMap<String, String>,
) -> Result<Artifact, String> {
    let info = inspect(wasm)?;
    let layer = Digest::of(wasm);
    let config = WasmConfig {
        created: crate::image::rfc3339(created),
        author: None,
        architecture: "wasm".into(),
        os: info.os().into(),
        layer_digests: vec![layer.to_string()],
        component: info.component.then(|| ComponentWorld {
            exports: info.exports.clone(),
            imports: info.imports.clone(),
            target: None,
        }),
    };
    let config = crate::json::canonical(&config);
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": Digest::of(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": layer,
            "size": wasm.len(),
            "annotations": { TITLE_ANNOTATION: sanitize_title(title) },
        }],
    });
    if !annotations.is_empty() {
        manifest["annotations"] = serde_json::json!(annotations);
    }
    let manifest = crate::json::canonical(&manifest);
    Ok(Artifact {
        digest: Digest::of(&manifest),
        config,
        manifest,
        info,
    })
}

/// Writes the artifact of `wasm` into the store (see [`artifact`]) and
/// returns its manifest's descriptor.
pub fn write(
    store: &Store,
    wasm: &[u8],
    title: &str,
    created: i64,
    annotations: &BTreeMap<String, String>,
) -> Result<(Descriptor, WasmInfo), RegistryError> {
    let a = artifact(wasm, title, created, annotations).map_err(RegistryError::Unsupported)?;
    store.put_blob(wasm)?;
    store.put_blob(&a.config)?;
    let digest = store.put_blob(&a.manifest)?;
    debug_assert_eq!(digest, a.digest);
    Ok((
        Descriptor::new(MANIFEST_MEDIA_TYPE, digest, a.manifest.len() as u64),
        a.info,
    ))
}

/// Whether `manifest` is a wasm artifact (by its config's media type).
pub fn is_artifact(manifest: &ImageManifest) -> bool {
    manifest.config().media_type().as_ref() == CONFIG_MEDIA_TYPE
}

/// Checks a wasm artifact's shape before its blobs are fetched: one
/// `application/wasm` layer, of a size kiln reads.
pub fn check_shape(manifest: &ImageManifest, reference: &Reference) -> Result<(), RegistryError> {
    let unsupported = |why: String| {
        RegistryError::Unsupported(format!(
            "{reference}: a wasm artifact kiln cannot use: {why}"
        ))
    };
    let [layer] = manifest.layers().as_slice() else {
        return Err(unsupported(format!(
            "{} layers, where the layout has one",
            manifest.layers().len()
        )));
    };
    if layer.media_type().as_ref() != LAYER_MEDIA_TYPE {
        return Err(unsupported(format!(
            "its layer is a {}, not {LAYER_MEDIA_TYPE}",
            layer.media_type()
        )));
    }
    if layer.size() > MAX_MODULE {
        return Err(unsupported(format!(
            "a program of {} bytes, more than kiln reads ({MAX_MODULE})",
            layer.size()
        )));
    }
    Ok(())
}

/// The file name a program is stored under: the base name of its title,
/// or [`DEFAULT_TITLE`] when there is none kiln can use.
pub fn sanitize_title(title: &str) -> String {
    let base = title.rsplit(['/', '\\']).next().unwrap_or("");
    let usable = !base.is_empty()
        && base != "."
        && base != ".."
        && base.len() <= 255
        && !base.chars().any(char::is_control);
    if usable {
        base.to_string()
    } else {
        DEFAULT_TITLE.to_string()
    }
}

/// Stores the kiln image of wasm artifact `artifact` (its manifest, config
/// and layer in the store, verified): one layer with the program at
/// `/<title>`, mode 0755, time 0. Returns the image's manifest descriptor,
/// annotated with the artifact's digest.
pub fn to_image(store: &Store, artifact: &Descriptor) -> Result<Descriptor, RegistryError> {
    let unsupported = |why: String| {
        RegistryError::Unsupported(format!("wasm artifact {}: {why}", artifact.digest))
    };
    let manifest: ImageManifest = store
        .read_json(&artifact.digest)
        .map_err(|e| unsupported(e.to_string()))?;
    if !is_artifact(&manifest) {
        return Err(unsupported(format!(
            "its config is a {}, not {CONFIG_MEDIA_TYPE}",
            manifest.config().media_type()
        )));
    }
    let config_digest =
        Digest::from_oci(manifest.config().digest()).map_err(|e| unsupported(e.to_string()))?;
    let _: WasmConfig = store
        .read_json(&config_digest)
        .map_err(|e| unsupported(format!("its config: {e}")))?;
    let [layer] = manifest.layers().as_slice() else {
        return Err(unsupported("not exactly one layer".into()));
    };
    let layer_digest = Digest::from_oci(layer.digest()).map_err(|e| unsupported(e.to_string()))?;
    if layer.size() > MAX_MODULE || store.blob_size(&layer_digest)? != layer.size() {
        return Err(unsupported(format!(
            "its layer {layer_digest} is not {} bytes",
            layer.size()
        )));
    }
    let wasm = store.read_blob(&layer_digest)?;
    if Digest::of(&wasm) != layer_digest {
        return Err(unsupported(format!(
            "its layer does not hash to {layer_digest}"
        )));
    }
    inspect(&wasm).map_err(|e| unsupported(format!("its layer is {e}")))?;
    let title = sanitize_title(
        layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(TITLE_ANNOTATION))
            .map_or(DEFAULT_TITLE, String::as_str),
    );
    let path = ImagePath::parse(&title).map_err(|e| unsupported(e.to_string()))?;
    let mut changes = PendingChanges::new();
    changes.insert(
        path,
        Change::Put(Node::File(Meta::root(0o755, 0), Content::Bytes(wasm))),
    );
    let written = write_layer(store, changes, &LayerOptions::default())?;
    store.put_layer_index(&written.diff_id, &written.changes)?;
    let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "wasm",
        "os": "wasi",
        "config": { "Entrypoint": [format!("/{title}")] },
        "rootfs": { "type": "layers", "diff_ids": [written.diff_id] },
        "history": [{ "created_by": format!("kiln: wasm artifact {}", artifact.digest) }],
    }))
    .map_err(|e| unsupported(e.to_string()))?;
    let mut image =
        crate::image::write_image(store, &config, std::slice::from_ref(&written.descriptor))?;
    image
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ARTIFACT_ANNOTATION.into(), artifact.digest.to_string());
    Ok(image)
}

/// Records where the image `image` (converted from an artifact) came from:
/// `source`, pinned by the digest it was pulled by.
pub fn set_source(image: &mut Descriptor, source: &Reference) {
    image
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SOURCE_ANNOTATION.into(), source.to_string());
}

/// The artifact digest a store image was converted from, if it was.
pub fn artifact_of(image: &Descriptor) -> Option<Digest> {
    image
        .annotations
        .as_ref()?
        .get(ARTIFACT_ANNOTATION)?
        .parse()
        .ok()
}

/// The store image converted from the artifact `digest` names (the
/// artifact's own digest, or the digest of the reference it was pulled by),
/// without its name.
pub fn find_converted(store: &Store, digest: &Digest) -> Option<Descriptor> {
    let images = store.images().ok()?;
    let found = images.into_iter().find(|i| {
        let Some(artifact) = artifact_of(&i.manifest) else {
            return false;
        };
        let pinned_by = i
            .manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_ANNOTATION))
            .and_then(|s| Reference::parse(s).ok())
            .and_then(|r| r.digest().copied());
        artifact == *digest || pinned_by == Some(*digest)
    })?;
    let mut d = found.manifest;
    if let Some(a) = d.annotations.as_mut() {
        a.remove(REF_NAME);
    }
    Some(d)
}

/// What to tell someone who named a wasm step by tag alone.
pub fn pin_hint(reference: &Reference, digest: &Digest) -> String {
    format!(
        "{reference} is a wasm step named by tag, which can move: pin it as {}",
        reference.with_digest(*digest)
    )
}

#[cfg(test)]
mod tests;
