use std::io::Read;

use super::*;
use crate::image::Image;

fn module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "_start")))"#).unwrap()
}

fn component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (import "wasi:cli/environment@0.2.0" (instance))
            (component $inner (import "inner:only/here" (instance)))
            (instance $run)
            (export "wasi:cli/run@0.2.0" (instance $run)))"#,
    )
    .unwrap()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn modules_and_components_are_told_apart_and_validated() {
    let m = inspect(&module()).unwrap();
    assert!(!m.component);
    assert_eq!(m.os(), "wasip1");
    let c = inspect(&component()).unwrap();
    assert!(c.component);
    assert_eq!(c.os(), "wasip2");
    // The component's own world, not its nested component's.
    assert_eq!(c.imports, ["wasi:cli/environment@0.2.0"]);
    assert_eq!(c.exports, ["wasi:cli/run@0.2.0"]);

    let e = inspect(b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(e.contains("not a WebAssembly module or component"), "{e}");
    let mut broken = module();
    broken.truncate(broken.len() - 2);
    let e = inspect(&broken).unwrap_err();
    assert!(e.contains("not a valid WebAssembly module"), "{e}");
}

#[test]
fn the_artifact_follows_the_layout() {
    let wasm = component();
    let a = artifact(&wasm, "dist/tool.wasm", 0, &BTreeMap::new()).unwrap();
    let manifest = json(&a.manifest);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(
        manifest["config"]["digest"],
        Digest::of(&a.config).to_string()
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
    assert_eq!(layers[0]["digest"], Digest::of(&wasm).to_string());
    assert_eq!(layers[0]["size"], wasm.len());
    assert_eq!(layers[0]["annotations"][TITLE_ANNOTATION], "tool.wasm");
    assert!(manifest.get("annotations").is_none());

    let config = json(&a.config);
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        config["layerDigests"],
        serde_json::json!([Digest::of(&wasm).to_string()])
    );
    assert_eq!(
        config["component"]["exports"],
        serde_json::json!(["wasi:cli/run@0.2.0"])
    );
    assert_eq!(
        config["component"]["imports"],
        serde_json::json!(["wasi:cli/environment@0.2.0"])
    );

    let m = artifact(&module(), "m.wasm", 1_700_000_000, &BTreeMap::new()).unwrap();
    let config = json(&m.config);
    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert!(config.get("component").is_none());
}

#[test]
fn the_same_file_gives_the_same_digest() {
    let wasm = module();
    let none = BTreeMap::new();
    let a = artifact(&wasm, "m.wasm", 0, &none).unwrap();
    assert_eq!(
        a.digest,
        artifact(&wasm, "m.wasm", 0, &none).unwrap().digest
    );
    assert_eq!(a.digest, Digest::of(&a.manifest));
    // The name, the time and annotations are part of it.
    assert_ne!(
        a.digest,
        artifact(&wasm, "n.wasm", 0, &none).unwrap().digest
    );
    assert_ne!(
        a.digest,
        artifact(&wasm, "m.wasm", 1, &none).unwrap().digest
    );
    let notes = BTreeMap::from([("org.opencontainers.image.version".into(), "1".into())]);
    let annotated = artifact(&wasm, "m.wasm", 0, &notes).unwrap();
    assert_ne!(a.digest, annotated.digest);
    assert_eq!(
        json(&annotated.manifest)["annotations"]["org.opencontainers.image.version"],
        "1"
    );
}

#[test]
fn titles_are_base_names() {
    assert_eq!(sanitize_title("tool.wasm"), "tool.wasm");
    assert_eq!(sanitize_title("a/b/tool.wasm"), "tool.wasm");
    assert_eq!(sanitize_title("..\\..\\x.wasm"), "x.wasm");
    for bad in ["", "..", ".", "dir/", "a\nb", &"x".repeat(300)] {
        assert_eq!(sanitize_title(bad), DEFAULT_TITLE, "{bad:?}");
    }
}

#[test]
fn a_stored_artifact_becomes_an_image_holding_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let wasm = component();
    let (artifact, info) = write(&store, &wasm, "step.wasm", 0, &BTreeMap::new()).unwrap();
    assert!(info.component);
    // Not an image kiln can load as it is.
    assert!(Image::load(&store, &artifact, None).is_err());

    let image = to_image(&store, &artifact).unwrap();
    assert_eq!(artifact_of(&image), Some(artifact.digest));
    assert_eq!(
        to_image(&store, &artifact).unwrap().digest,
        image.digest,
        "deterministic"
    );
    let loaded = Image::load(&store, &image, None).unwrap();
    assert_eq!(
        crate::image::Platform::of(&loaded.config).to_string(),
        "wasi/wasm"
    );
    let entry = loaded
        .config
        .config()
        .as_ref()
        .unwrap()
        .entrypoint()
        .clone();
    assert_eq!(entry, Some(vec!["/step.wasm".to_string()]));
    let snapshot = loaded.snapshot(&store).unwrap();
    let Some(Node::File(meta, file)) = snapshot.get(&ImagePath::parse("step.wasm").unwrap()) else {
        panic!("no /step.wasm")
    };
    assert_eq!(meta.mode & 0o777, 0o755);
    let mut bytes = Vec::new();
    store
        .open_content(file)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes, wasm);

    // Found by the artifact's digest, or the digest it was pulled by.
    let mut named = image.clone();
    let pulled_by = Digest::of(b"an index");
    let source = Reference::parse("localhost:5000/steps/step:1")
        .unwrap()
        .with_digest(pulled_by);
    set_source(&mut named, &source);
    store
        .add_image(&named, &["localhost:5000/steps/step:1".into()])
        .unwrap();
    for digest in [artifact.digest, pulled_by] {
        let found = find_converted(&store, &digest).unwrap();
        assert_eq!(found.digest, image.digest);
        assert_eq!(found.ref_name(), None);
        assert_eq!(
            found.annotations.as_ref().unwrap()[SOURCE_ANNOTATION],
            source.to_string()
        );
    }
    assert!(find_converted(&store, &Digest::of(b"other")).is_none());
}

#[test]
fn an_artifact_with_a_broken_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (artifact, _) = write(&store, &module(), "m.wasm", 0, &BTreeMap::new()).unwrap();
    let manifest: ImageManifest = store.read_json(&artifact.digest).unwrap();
    let layer = Digest::from_oci(manifest.layers()[0].digest()).unwrap();
    let path = store.blob_path(&layer);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, vec![0u8; module().len()]).unwrap();
    assert!(to_image(&store, &artifact).is_err());
}
