//! Property tests of the parsers of untrusted input that no one module
//! owns: the command-line specs (`--secret`, `--mount`, `--output`,
//! `--cache-to`, `--cache-from`, image names, platforms, `.kilnignore`) and
//! the OCI layout readers (a store's `index.json`, manifests and configs; a
//! `--cache-from` directory). The Kilnfile frontend's are in
//! `frontend/proptests.rs`, the layer reader's in `layer/reader/proptests.rs`.
//!
//! The property everywhere: arbitrary or mutated input gives `Ok` or a
//! clear error, never a panic, a hang or unbounded memory. Every suite run
//! takes [`config`]'s small case count; a longer run is
//! `PROPTEST_CASES=20000 cargo test -p kiln --lib proptests`.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};

use crate::build::cache_dir::CacheDir;
use crate::digest::Digest;
use crate::image::{CONFIG_MEDIA_TYPE, Image};
use crate::store::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store};

/// The proptest configuration of kiln's property tests: `default_cases`
/// cases unless `PROPTEST_CASES` says otherwise, and no regression files
/// written into the source tree (a failure found becomes a unit test).
pub(crate) fn config(default_cases: u32) -> ProptestConfig {
    // `default()` reads PROPTEST_CASES.
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config.failure_persistence = None;
    config
}

/// Text made mostly of the pieces specs are made of, so cases reach past
/// the first check; sometimes any text at all.
pub(crate) fn spec_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "type=",
        "id=",
        "src=",
        "source=",
        "dest=",
        "env=",
        "target=",
        "dst=",
        "mode=",
        "uid=",
        "gid=",
        "size=",
        "sharing=",
        "from=",
        "ro",
        "rw",
        "required",
        "compression=",
        "tar=",
        "local",
        "oci",
        "secret",
        "cache",
        "bind",
        "tmpfs",
        "max",
        "min",
        "0755",
        "99999999999",
        "18446744073709551616",
        "-1",
        "k",
        "g",
        ",",
        "=",
        "\"",
        "\"\"",
        "/",
        "..",
        ":",
        "@",
        "sha256:",
        "é",
        "\0",
        " ",
        "\n",
    ]);
    prop_oneof![
        prop::collection::vec(pieces, 0..16).prop_map(|v| v.concat()),
        "\\PC{0,48}",
        any::<String>(),
    ]
}

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        spec_text().prop_map(Value::from),
        Just(json!(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer into `v` (the root included).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// `doc` with the value at one of its pointers (picked by `pick`) replaced.
fn splice(mut doc: Value, pick: usize, with: Value) -> Value {
    let mut all = Vec::new();
    pointers(&doc, String::new(), &mut all);
    let at = &all[pick % all.len()];
    if at.is_empty() {
        return with;
    }
    *doc.pointer_mut(at).expect("a pointer of the doc") = with;
    doc
}

/// A document damaged one way: a value replaced, or its text edited.
#[derive(Clone, Debug)]
enum Damage {
    Splice(usize, Value),
    Bytes(Vec<(usize, u8)>),
    None,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), arb_json()).prop_map(|(p, v)| Damage::Splice(p, v)),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Damage::Bytes),
        Just(Damage::None),
    ]
}

fn apply(doc: Value, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Splice(p, v) => serde_json::to_vec(&splice(doc, *p, v.clone())).unwrap(),
        Damage::Bytes(edits) => {
            let mut bytes = serde_json::to_vec(&doc).unwrap();
            for &(at, b) in edits {
                let len = bytes.len();
                bytes[at % len] = b;
            }
            bytes
        }
        Damage::None => serde_json::to_vec(&doc).unwrap(),
    }
}

fn put(store: &Store, media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type,
        store.put_blob(bytes).unwrap(),
        bytes.len() as u64,
    )
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

const ZERO: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn valid_config() -> Value {
    json!({
        "architecture": "wasm", "os": "wasi",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["app"], "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": [ZERO]},
        "history": [{"created_by": "COPY . /", "created": "1970-01-01T00:00:00Z"}],
    })
}

fn valid_manifest(config: &Descriptor) -> Value {
    json!({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config,
        "layers": [{"mediaType": crate::layer::MEDIA_TYPE_GZIP, "digest": ZERO, "size": 1}],
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn spec_parsers_accept_or_explain(spec in spec_text()) {
        let _ = crate::secrets::SecretSpec::parse(&spec, &|_| false);
        let _ = crate::secrets::SecretSpec::parse(&spec, &|_| true);
        let _ = crate::frontend::Mount::parse(&spec);
        let _ = crate::export::OutputSpec::parse(&spec);
        let _ = crate::build::CacheTo::parse(&spec);
        let _ = crate::build::parse_cache_from(&spec);
        let _ = crate::store::ImageRef::parse(&spec);
        let _ = crate::image::Platform::parse(&spec);
        let _ = crate::frontend::parse_chmod(&spec);
        let _ = crate::frontend::mount::parse_size(&spec);
        let _ = crate::build::parse_epoch(&spec);
        let _ = crate::context::IgnoreRules::parse(&spec);
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn a_damaged_store_index_reads_or_fails_cleanly(damage in damage()) {
        let (_d, store) = store();
        let manifest = put(&store, MANIFEST_MEDIA_TYPE, b"{}");
        let mut tagged = manifest.clone();
        tagged.annotations = Some([(crate::store::REF_NAME.to_string(), "app:1".to_string())].into());
        let index = json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [tagged]});
        std::fs::write(store.root().join("index.json"), apply(index, &damage)).unwrap();
        let _ = store.images();
        if let Ok(found) = store.resolve("app:1") {
            let _ = Image::load(&store, &found, None);
        }
    }

    #[test]
    fn damaged_manifests_and_configs_load_or_fail_cleanly(
        config_damage in damage(),
        manifest_damage in damage(),
        as_index in any::<bool>(),
    ) {
        let (_d, store) = store();
        let config = put(&store, CONFIG_MEDIA_TYPE, &apply(valid_config(), &config_damage));
        let manifest = put(
            &store,
            MANIFEST_MEDIA_TYPE,
            &apply(valid_manifest(&config), &manifest_damage),
        );
        let top = if as_index {
            let index = json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [manifest]});
            put(&store, INDEX_MEDIA_TYPE, &serde_json::to_vec(&index).unwrap())
        } else {
            manifest
        };
        if let Ok(image) = Image::load(&store, &top, None) {
            let _ = image.layers();
            let _ = image.snapshot(&store);
            let _ = image.size();
        }
    }

    #[test]
    fn a_damaged_cache_dir_opens_or_fails_cleanly(
        config_damage in damage(),
        manifest_damage in damage(),
        index_damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let put_dir = |media_type: &str, bytes: Vec<u8>| {
            let digest = Digest::of(&bytes);
            std::fs::write(blobs.join(digest.hex()), &bytes).unwrap();
            Descriptor::new(media_type, digest, bytes.len() as u64)
        };
        let layer = json!({"mediaType": crate::layer::MEDIA_TYPE_GZIP, "digest": ZERO, "size": 1});
        let config = json!({"entries": [{"key": ZERO, "diff_id": ZERO, "layer": layer}]});
        let config = put_dir(crate::build::cache_dir::CONFIG_MEDIA_TYPE, apply(config, &config_damage));
        let manifest = json!({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": crate::build::cache_dir::ARTIFACT_TYPE,
            "config": config, "layers": [layer],
        });
        let mut manifest = put_dir(MANIFEST_MEDIA_TYPE, apply(manifest, &manifest_damage));
        manifest.annotations = Some(
            [(crate::store::REF_NAME.to_string(), crate::build::cache_dir::REF.to_string())].into(),
        );
        let index = json!({"schemaVersion": 2, "manifests": [manifest]});
        std::fs::write(dir.path().join("index.json"), apply(index, &index_damage)).unwrap();
        if let Ok(cache) = CacheDir::open(dir.path()) {
            let (_s, store) = store();
            let key: Digest = ZERO.parse().unwrap();
            let _ = cache.import(&store, &key, 0);
        }
    }
}

#[test]
fn json_nested_100000_deep_is_refused_by_serde_json_not_a_stack_overflow() {
    // serde_json's recursion limit (128) must stay on: no dependency may
    // enable its `unbounded_depth` feature.
    let (_d, store) = store();
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let manifest = put(&store, MANIFEST_MEDIA_TYPE, deep.as_bytes());
    let e = Image::load(&store, &manifest, None).unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
    let deep_index = format!("{{\"schemaVersion\":2,\"manifests\":[{{\"x\":{deep}}}]}}");
    std::fs::write(store.root().join("index.json"), deep_index).unwrap();
    let e = store.images().unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
}
