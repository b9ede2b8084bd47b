//! Cache directory tests: a layer imported through `--cache-from` is
//! untrusted and read under the same rules as any other.

use super::*;
use crate::layer::{LayerError, MEDIA_TYPE_GZIP};

fn store(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::open(dir.path().join(name)).unwrap()
}

/// A gzip layer whose one entry is a symlink named `name` to `target`.
fn hostile_layer(name: &str, target: &str) -> (Vec<u8>, Vec<u8>) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    io::Write::write_all(&mut gz, &tar).unwrap();
    (tar, gz.finish().unwrap())
}

#[test]
fn an_imported_layer_with_an_escaping_link_is_refused_and_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (producer, consumer) = (store(&dir, "a"), store(&dir, "b"));
    let (tar, blob) = hostile_layer("etc/evil", "../../../../host");
    let digest = producer.put_blob(&blob).unwrap();
    let entry = StepEntry {
        diff_id: Some(Digest::of(&tar)),
        layer: Some(Descriptor::new(MEDIA_TYPE_GZIP, digest, blob.len() as u64)),
        used: 0,
        clean_of: Vec::new(),
    };
    let key = Digest::of(b"a step");
    let cache = dir.path().join("cache");
    export(&producer, &cache, &[(key, entry)]).unwrap();

    let imported = CacheDir::open(&cache).unwrap().import(&consumer, &key, 0);
    let e = imported.unwrap_err();
    assert!(e.contains("\"etc/evil\""), "{e}");
    assert!(e.contains("climbs out of the layer"), "{e}");
    // Nothing of it is usable: no step entry, no layer index.
    assert!(consumer.step_entry(&key).unwrap().is_none());
    assert!(consumer.layer_index(&Digest::of(&tar)).unwrap().is_none());
}

#[test]
fn the_same_layer_from_the_store_is_refused_too() {
    // Images copied into the store by other tools go through the reader.
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, "s");
    let (tar, blob) = hostile_layer("/../x", "y");
    let desc = Descriptor::new(
        MEDIA_TYPE_GZIP,
        s.put_blob(&blob).unwrap(),
        blob.len() as u64,
    );
    let e = crate::layer::read_layer(&s, &desc, &Digest::of(&tar)).unwrap_err();
    assert!(
        matches!(&e, LayerError::Untrusted { entry, .. } if entry == "/../x"),
        "{e}"
    );
}

#[test]
fn an_oversized_index_json_is_refused_without_reading_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    // Sparse: 64 MiB + 2 bytes of zeros, read no further than the limit.
    let index = fs::File::create(dir.path().join("index.json")).unwrap();
    index.set_len(MAX_JSON + 2).unwrap();
    let e = CacheDir::open(dir.path()).unwrap_err();
    assert!(e.contains("index.json is larger than"), "{e}");
}
