//! The cache format: merging, the documents, reading them back, and the
//! shared import and export paths through an in-memory place.

use std::sync::Mutex;

use super::*;
use crate::layer::MEDIA_TYPE_GZIP;

fn key(n: u8) -> Digest {
    Digest::of(&[n])
}

fn entry(layer: Option<&[u8]>) -> StepEntry {
    StepEntry {
        diff_id: layer.map(|l| Digest::of(&[l, b"-tar"].concat())),
        layer: layer.map(|l| Descriptor::new(MEDIA_TYPE_GZIP, Digest::of(l), l.len() as u64)),
        used: 0,
        clean_of: Vec::new(),
    }
}

fn record(k: Digest, e: &StepEntry) -> Record {
    Record {
        key: k,
        diff_id: e.diff_id,
        layer: e.layer.clone(),
    }
}

#[test]
fn merging_keeps_old_entries_and_the_new_one_wins_a_key() {
    let old = vec![
        record(key(1), &entry(Some(b"one"))),
        record(key(2), &entry(Some(b"old two"))),
    ];
    let merged = merge(
        old,
        &[(key(2), entry(Some(b"new two"))), (key(3), entry(None))],
    );
    assert_eq!(merged.len(), 3);
    assert_eq!(merged[&key(1)], record(key(1), &entry(Some(b"one"))));
    assert_eq!(merged[&key(2)], record(key(2), &entry(Some(b"new two"))));
    assert_eq!(merged[&key(3)].layer, None);
}

#[test]
fn documents_are_canonical_and_read_back() {
    let shared = entry(Some(b"shared"));
    let merged = merge(
        Vec::new(),
        &[
            (key(9), shared.clone()),
            (key(1), shared.clone()),
            (key(5), entry(None)),
            (key(3), entry(Some(b"other"))),
        ],
    );
    let docs = documents(&merged);
    assert_eq!(docs.entries, 4);
    // A layer two entries share is listed once; layers by digest.
    assert_eq!(docs.layers.len(), 2);
    assert!(docs.layers[0].digest < docs.layers[1].digest);
    assert_eq!(docs.config_desc.digest, Digest::of(&docs.config));
    assert_eq!(docs.manifest_desc.digest, Digest::of(&docs.manifest));
    assert_eq!(docs.manifest_desc.media_type, MANIFEST_MEDIA_TYPE);

    // The same entries in another order give the same bytes.
    let again = documents(&merge(
        Vec::new(),
        &[
            (key(3), entry(Some(b"other"))),
            (key(5), entry(None)),
            (key(1), shared.clone()),
            (key(9), shared),
        ],
    ));
    assert_eq!(again.manifest, docs.manifest);

    let manifest: serde_json::Value = serde_json::from_slice(&docs.manifest).unwrap();
    assert_eq!(manifest["artifactType"], ARTIFACT_TYPE);
    assert_eq!(read_manifest(&docs.manifest).unwrap(), docs.config_desc);
    let records = read_config(&docs.config).unwrap();
    let keys: Vec<Digest> = records.iter().map(|r| r.key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "entries are sorted by key");
    assert_eq!(records, merged.into_values().collect::<Vec<_>>());
}

#[test]
fn manifests_that_are_not_kiln_caches_are_refused() {
    let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
    assert!(
        read_manifest(image)
            .unwrap_err()
            .contains("not a kiln cache")
    );
    assert!(read_manifest(b"not json").is_err());

    let docs = documents(&merge(Vec::new(), &[(key(1), entry(None))]));
    let mut doc: serde_json::Value = serde_json::from_slice(&docs.manifest).unwrap();
    doc["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let e = read_manifest(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(e.contains("not a application/vnd.kiln.cache"), "{e}");
    doc["config"]["mediaType"] = CONFIG_MEDIA_TYPE.into();
    doc["config"]["size"] = (MAX_JSON + 1).into();
    let e = read_manifest(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(e.contains("more than kiln reads"), "{e}");
}

/// A place in memory: records, and the blobs "it" holds.
#[derive(Default)]
struct Memory {
    records: Vec<Record>,
    writes: Mutex<Vec<Documents>>,
    blobs: Mutex<BTreeMap<Digest, Vec<u8>>>,
    /// What `fetch_layer` serves instead of the real bytes.
    serve: Option<Vec<u8>>,
}

impl CacheDest for Memory {
    fn existing(&mut self) -> Result<Vec<Record>, String> {
        Ok(self.records.clone())
    }

    fn write(&mut self, store: &Store, docs: &Documents) -> Result<(), String> {
        for l in &docs.layers {
            let bytes = store.read_blob(&l.digest).map_err(|e| e.to_string())?;
            self.blobs.lock().unwrap().insert(l.digest, bytes);
        }
        self.records = read_config(&docs.config)?;
        self.writes.lock().unwrap().push(docs.clone());
        Ok(())
    }
}

impl CacheSource for Memory {
    fn name(&self) -> String {
        "memory".into()
    }

    fn record(&self, key: &Digest) -> Option<&Record> {
        self.records.iter().find(|r| r.key == *key)
    }

    fn fetch_layer(&self, store: &Store, layer: &Descriptor) -> Result<(), String> {
        let bytes = match &self.serve {
            Some(b) => b.clone(),
            None => self.blobs.lock().unwrap()[&layer.digest].clone(),
        };
        let digest = store.put_blob(&bytes).map_err(|e| e.to_string())?;
        if digest != layer.digest {
            return Err("does not match its digest".into());
        }
        Ok(())
    }
}

/// A real gzip layer with one file, as a store holds it.
fn layer(store: &Store, name: &str) -> StepEntry {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(b"hi");
    tar.resize(512 * 2 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let blob = gz.finish().unwrap();
    let digest = store.put_blob(&blob).unwrap();
    StepEntry {
        diff_id: Some(Digest::of(&tar)),
        layer: Some(Descriptor::new(MEDIA_TYPE_GZIP, digest, blob.len() as u64)),
        used: 0,
        clean_of: Vec::new(),
    }
}

#[test]
fn export_merges_and_import_fetches_only_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    let producer = Store::open(dir.path().join("a")).unwrap();
    let consumer = Store::open(dir.path().join("b")).unwrap();
    let (one, two) = (layer(&producer, "one.txt"), layer(&producer, "two.txt"));
    let mut place = Memory::default();
    assert_eq!(
        export(&mut place, &producer, &[(key(1), one.clone())]).unwrap(),
        1
    );
    assert_eq!(
        export(&mut place, &producer, &[(key(2), two.clone())]).unwrap(),
        2
    );
    assert_eq!(place.writes.lock().unwrap().last().unwrap().layers.len(), 2);

    assert!(import(&place, &consumer, &key(7), 5).unwrap().is_none());
    let got = import(&place, &consumer, &key(2), 5).unwrap().unwrap();
    assert_eq!(
        (got.layer.clone(), got.diff_id, got.used),
        (two.layer.clone(), two.diff_id, 5)
    );
    assert_eq!(
        consumer.step_entry(&key(2)).unwrap().unwrap().layer,
        two.layer
    );
    let two_digest = two.layer.unwrap().digest;
    assert!(consumer.has_blob(&two_digest));
    assert!(
        consumer
            .layer_index(&two.diff_id.unwrap())
            .unwrap()
            .is_some()
    );
    // Only the hit's layer came over.
    assert!(!consumer.has_blob(&one.layer.unwrap().digest));
}

#[test]
fn a_layer_served_wrong_is_refused_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let producer = Store::open(dir.path().join("a")).unwrap();
    let consumer = Store::open(dir.path().join("b")).unwrap();
    let one = layer(&producer, "one.txt");
    let mut place = Memory::default();
    export(&mut place, &producer, &[(key(1), one.clone())]).unwrap();
    place.serve = Some(b"tampered".to_vec());
    let e = import(&place, &consumer, &key(1), 0).unwrap_err();
    assert!(e.contains("does not match its digest"), "{e}");
    assert!(consumer.step_entry(&key(1)).unwrap().is_none());
    assert!(!consumer.has_blob(&one.layer.unwrap().digest));
}
