//! Tests of a store that heals itself: damaged objects are rewritten when
//! produced again, damaged layer indexes rebuilt, prune keeps what it
//! cannot account for, readers record damage, `check` finds and repairs.

use std::io::Read;

use super::*;
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, FileRef, ImagePath, Meta, Node};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Flips one byte in the middle of `path`.
fn flip(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

/// A real image tagged `img:1`: one layer holding `/f` ("kept") and `/g`.
struct Img {
    manifest: Descriptor,
    config: Digest,
    layer: Digest,
    layer_desc: Descriptor,
    diff_id: Digest,
    changes: crate::snapshot::ChangeSet,
}

fn image(s: &Store) -> Img {
    let mut changes = PendingChanges::new();
    for (name, bytes) in [("f", "kept"), ("g", "other")] {
        changes.insert(
            ImagePath::parse(name).unwrap(),
            Change::Put(Node::File(
                Meta::root(0o644, 0),
                Content::Bytes(bytes.as_bytes().to_vec()),
            )),
        );
    }
    let layer = write_layer(s, changes, &LayerOptions::default()).unwrap();
    s.put_layer_index(&layer.diff_id, &layer.changes).unwrap();
    let config: oci_spec::image::ImageConfiguration = serde_json::from_str(&format!(
        r#"{{"architecture":"wasm","os":"wasi","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.diff_id
    ))
    .unwrap();
    let manifest =
        crate::image::write_image(s, &config, std::slice::from_ref(&layer.descriptor)).unwrap();
    s.add_image(&manifest, &["img:1".into()]).unwrap();
    let loaded = crate::image::Image::load(s, &manifest, None).unwrap();
    Img {
        manifest,
        config: loaded.config_digest,
        layer: layer.descriptor.digest,
        layer_desc: layer.descriptor.clone(),
        diff_id: layer.diff_id,
        changes: layer.changes,
    }
}

fn snapshot_reads_f(s: &Store, img: &Img) -> String {
    let image = crate::image::Image::load(s, &img.manifest, None).unwrap();
    let snap = image.snapshot(s).unwrap();
    let Some(Node::File(_, f)) = snap.get(&ImagePath::parse("f").unwrap()) else {
        panic!("no /f")
    };
    let mut out = String::new();
    s.open_content(f).unwrap().read_to_string(&mut out).unwrap();
    out
}

#[test]
fn writing_an_object_again_replaces_a_damaged_copy() {
    let (_d, s) = store();
    let d = s.put_blob(b"config bytes").unwrap();
    flip(&s.blob_path(&d));
    assert!(s.read_blob(&d).is_err());
    // put_blob (configs, manifests) and a streamed writer (layers) both heal.
    s.put_blob(b"config bytes").unwrap();
    assert_eq!(s.read_blob(&d).unwrap(), b"config bytes");
    flip(&s.blob_path(&d));
    let mut w = s.blob_writer().unwrap();
    w.write_bytes(b"config bytes").unwrap();
    w.commit().unwrap();
    assert_eq!(s.read_blob(&d).unwrap(), b"config bytes");

    let c = s.put_content(b"file").unwrap();
    fs::write(s.content_path(&c), b"fil").unwrap();
    s.put_content(b"file").unwrap();
    assert_eq!(fs::read(s.content_path(&c)).unwrap(), b"file");
}

#[test]
fn a_damaged_layer_index_is_rebuilt_from_its_blob() {
    let (_d, s) = store();
    let img = image(&s);
    let index = s.layer_index_path(&img.diff_id);
    flip(&index);
    assert!(s.layer_index(&img.diff_id).is_err());
    assert_eq!(snapshot_reads_f(&s, &img), "kept");
    assert!(s.layer_index(&img.diff_id).unwrap().is_some(), "rewritten");
    fs::write(&index, b"garbage").unwrap();
    assert_eq!(snapshot_reads_f(&s, &img), "kept");
}

#[test]
fn prune_keeps_what_a_damaged_index_or_config_might_name() {
    let (_d, s) = store();
    let img = image(&s);
    let orphan = s.put_content(b"orphan").unwrap();
    fs::write(s.layer_index_path(&img.diff_id), b"garbage").unwrap();
    let report = s.prune(PruneOptions::default()).unwrap();
    assert_eq!(report.files, 0, "{report:?}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("kept every file content")),
        "{report:?}"
    );
    assert!(s.has_content(&orphan) && s.has_blob(&img.diff_id));

    // A damaged config: its diff_ids are unknown, so indexes, packs and
    // contents stay.
    s.put_layer_index(&img.diff_id, &img.changes).unwrap();
    flip(&s.blob_path(&img.config));
    let report = s.prune(PruneOptions::default()).unwrap();
    assert_eq!((report.files, report.other), (0, 0), "{report:?}");
    assert!(s.layer_index_path(&img.diff_id).is_file());
    assert!(s.has_content(&orphan) && s.has_blob(&img.layer) && s.has_blob(&img.diff_id));
}

#[test]
fn prune_keeps_what_an_unreadable_cache_entry_might_name() {
    let (_d, s) = store();
    let img = image(&s);
    let key = Digest::of(b"key");
    s.put_step_entry(
        &key,
        &StepEntry {
            diff_id: Some(img.diff_id),
            layer: Some(img.layer_desc.clone()),
            used: 0,
            clean_of: Vec::new(),
        },
    )
    .unwrap();
    // Only the cache reaches the layer now.
    s.remove_image("img:1").unwrap();
    fs::write(s.step_path(&key), b"{\"diff_id\":").unwrap();
    let report = s.prune(PruneOptions::default()).unwrap();
    assert_eq!(
        (report.blobs, report.files, report.other),
        (0, 0, 0),
        "{report:?}"
    );
    assert!(s.has_blob(&img.layer) && s.layer_index_path(&img.diff_id).is_file());
    assert!(s.has_blob(&img.diff_id), "the layer's pack");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("kept every blob"))
    );
}

#[test]
fn prune_all_and_cache_mounts_remove_cache_mount_directories() {
    let (_d, s) = store();
    let img = image(&s);
    let dir = s.cache_dir("npm").unwrap();
    fs::write(dir.join("pkg"), b"cached package").unwrap();
    let report = s.prune_cache_mounts().unwrap();
    assert_eq!(report.cache_mounts, 1);
    assert!(!dir.exists());
    assert!(s.has_blob(&img.layer), "only cache mounts go");

    let dir = s.cache_dir("npm").unwrap();
    fs::write(dir.join("pkg"), b"cached package").unwrap();
    s.prune(PruneOptions::default()).unwrap();
    assert!(dir.exists(), "a plain prune keeps cache mounts");
    let report = s
        .prune(PruneOptions {
            untagged: true,
            all_cache: true,
            cache_mounts: true,
            keep_storage: None,
        })
        .unwrap();
    assert_eq!(report.cache_mounts, 1);
    assert!(!dir.exists());
}

#[test]
fn a_watched_handle_records_the_damaged_content_a_reader_met() {
    let (_d, s) = store();
    let digest = s.put_content(b"abc").unwrap();
    fs::write(s.content_path(&digest), b"abd").unwrap();
    let step = s.watched();
    let file = FileRef::loose(digest, 3);
    let mut out = Vec::new();
    assert!(
        step.open_content(&file)
            .unwrap()
            .read_to_end(&mut out)
            .is_err()
    );
    let damage = step.damage().expect("recorded");
    assert_eq!((damage.what, damage.digest), ("file content", digest));
    let text = damage.to_string();
    assert!(
        text.contains("the store is damaged") && text.contains("kiln check --repair"),
        "{text}"
    );
    assert_eq!(s.damage(), None, "another handle's record is its own");
    let missing = s.watched();
    let gone = FileRef::loose(Digest::of(b"gone"), 4);
    assert!(missing.open_content(&gone).is_err());
    assert_eq!(missing.damage().unwrap().reason, "missing");
}

fn check(s: &Store, repair: bool) -> CheckReport {
    s.check(CheckOptions { repair }).unwrap()
}

#[test]
fn check_finds_and_repairs_a_damaged_layer_index_and_pack() {
    let (_d, s) = store();
    let img = image(&s);
    assert_ne!(
        img.layer, img.diff_id,
        "a compressed layer, with a pack beside it"
    );
    assert!(check(&s, false).is_clean());
    flip(&s.layer_index_path(&img.diff_id));
    flip(&s.blob_path(&img.diff_id));

    let report = check(&s, false);
    let objects: Vec<&Object> = report.damaged.iter().map(|f| &f.object).collect();
    assert_eq!(
        objects,
        [&Object::Blob(img.diff_id), &Object::LayerIndex(img.diff_id)],
        "{report:?}"
    );
    // What a damaged index names is unknown until it is rebuilt.
    assert!(report.damaged[1].reached_by.contains("tag img:1"));
    let repaired = check(&s, true);
    assert_eq!(repaired.repairs.len(), 2, "{repaired:?}");
    assert!(repaired.unrepaired.is_empty());
    assert!(check(&s, false).is_clean(), "{:?}", check(&s, false));
    assert_eq!(snapshot_reads_f(&s, &img), "kept");

    // A pack an intact index names: reported with the tag, then rewritten
    // from the layer blob, damaged or missing.
    for damage in [flip, |p: &Path| fs::remove_file(p).unwrap()] {
        damage(&s.blob_path(&img.diff_id));
        let report = check(&s, false);
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(report.damaged[0].object, Object::Blob(img.diff_id));
        assert!(report.damaged[0].reached_by.contains("tag img:1"));
        let repaired = check(&s, true);
        assert!(
            repaired.repairs[0]
                .action
                .contains("rewritten from layer blob"),
            "{repaired:?}"
        );
        assert!(check(&s, false).is_clean());
        assert_eq!(snapshot_reads_f(&s, &img), "kept");
    }
}

#[test]
fn a_missing_pack_is_written_again_when_the_layer_is_next_used() {
    let (_d, s) = store();
    let img = image(&s);
    fs::remove_file(s.blob_path(&img.diff_id)).unwrap();
    assert_eq!(snapshot_reads_f(&s, &img), "kept");
    assert!(s.has_blob(&img.diff_id));
}

/// The index of `img`'s layer as a format 1 store has it: every file's
/// contents loose, a file each.
fn as_format_1(s: &Store, img: &Img) {
    let mut changes = img.changes.clone();
    for change in changes.values_mut() {
        if let Change::Put(Node::File(_, f)) = change {
            let mut bytes = Vec::new();
            s.open_content(f).unwrap().read_to_end(&mut bytes).unwrap();
            *f = FileRef::loose(s.put_content(&bytes).unwrap(), f.size);
        }
    }
    s.put_layer_index(&img.diff_id, &changes).unwrap();
    fs::remove_file(s.blob_path(&img.diff_id)).unwrap();
}

#[test]
fn a_format_1_store_is_read_and_its_damaged_contents_repaired_into_a_pack() {
    let (_d, s) = store();
    let img = image(&s);
    as_format_1(&s, &img);
    assert_eq!(
        snapshot_reads_f(&s, &img),
        "kept",
        "loose contents are read"
    );
    assert!(!s.has_blob(&img.diff_id), "and no pack is needed");
    assert!(check(&s, false).is_clean());

    let kept = Digest::of(b"kept");
    flip(&s.content_path(&kept));
    fs::remove_file(s.content_path(&Digest::of(b"other"))).unwrap();
    let report = check(&s, false);
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    for f in &report.damaged {
        assert!(f.reached_by.contains("tag img:1"), "{f:?}");
    }
    let repaired = check(&s, true);
    assert_eq!(repaired.repairs.len(), 2, "{repaired:?}");
    assert!(
        repaired.repairs[0]
            .action
            .contains("read again into a pack"),
        "{repaired:?}"
    );
    assert!(check(&s, false).is_clean(), "{:?}", check(&s, false));
    assert!(!s.has_content(&kept), "the damaged copy is gone");
    assert!(s.has_blob(&img.diff_id), "the layer's pack holds its files");
    assert_eq!(snapshot_reads_f(&s, &img), "kept");
}

#[test]
fn damaged_loose_contents_whose_layer_is_damaged_too_break_the_image() {
    let (_d, s) = store();
    let img = image(&s);
    as_format_1(&s, &img);
    flip(&s.content_path(&Digest::of(b"kept")));
    flip(&s.blob_path(&img.layer));
    let repaired = check(&s, true);
    assert!(
        repaired
            .repairs
            .iter()
            .any(|r| r.action == "removed (no intact layer holds it)"),
        "{repaired:?}"
    );
    assert!(
        repaired
            .repairs
            .iter()
            .any(|r| r.object == Object::Image("tag img:1".into())),
        "{repaired:?}"
    );
    assert!(s.images().unwrap().is_empty());
    assert!(check(&s, false).is_clean(), "{:?}", check(&s, false));
}

#[test]
fn a_format_1_store_is_opened_and_marked_format_2() {
    let (_d, s) = store();
    let version = s.root().join("kiln/version");
    fs::write(&version, "1\n").unwrap();
    let s = Store::open(s.root()).unwrap();
    assert_eq!(fs::read_to_string(&version).unwrap(), "2\n");
    fs::write(&version, "3\n").unwrap();
    let err = Store::open(s.root()).err().unwrap().to_string();
    assert!(err.contains("store format \"3\""), "{err}");
}

#[test]
fn check_removes_a_damaged_blob_and_the_tag_it_breaks() {
    let (_d, s) = store();
    let img = image(&s);
    flip(&s.blob_path(&img.config));
    let report = check(&s, false);
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].object, Object::Blob(img.config));
    assert!(report.damaged[0].reached_by.contains("tag img:1"));
    let repaired = check(&s, true);
    assert!(
        repaired
            .repairs
            .iter()
            .any(|r| r.object == Object::Image("tag img:1".into())
                && r.action.contains("broken beyond repair")),
        "{repaired:?}"
    );
    assert!(s.images().unwrap().is_empty());
    assert!(!s.has_blob(&img.config));
    assert!(check(&s, false).is_clean());
}

#[test]
fn check_removes_an_unreadable_cache_entry_and_reports_a_broken_index_json() {
    let (_d, s) = store();
    let img = image(&s);
    let key = Digest::of(b"key");
    s.put_step_entry(
        &key,
        &StepEntry {
            diff_id: Some(img.diff_id),
            layer: Some(img.layer_desc.clone()),
            used: 0,
            clean_of: Vec::new(),
        },
    )
    .unwrap();
    assert!(check(&s, false).is_clean());
    fs::write(s.step_path(&key), b"{\"diff_id\": tru").unwrap();
    let report = check(&s, false);
    assert_eq!(report.damaged[0].object, Object::CacheEntry(key));
    check(&s, true);
    assert_eq!(s.step_entry(&key).unwrap(), None);
    assert!(check(&s, false).is_clean());

    fs::write(s.index_path(), b"{").unwrap();
    let report = check(&s, true);
    assert_eq!(report.damaged[0].object, Object::TagIndex);
    assert_eq!(report.unrepaired.len(), 1, "{report:?}");
    assert_eq!(fs::read(s.index_path()).unwrap(), b"{", "left for a person");
}

#[test]
fn check_accepts_a_multi_platform_index_with_absent_platforms() {
    let (_d, s) = store();
    let img = image(&s);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX_MEDIA_TYPE}","manifests":[{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{}","size":{}}},{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{}","size":9}}]}}"#,
        img.manifest.digest,
        img.manifest.size,
        Digest::of(b"another platform")
    );
    let d = s.put_blob(index.as_bytes()).unwrap();
    s.add_image(
        &Descriptor::new(INDEX_MEDIA_TYPE, d, index.len() as u64),
        &["multi:1".into()],
    )
    .unwrap();
    let report = check(&s, false);
    assert!(report.is_clean(), "{report:?}");
    flip(&s.blob_path(&img.config));
    let report = check(&s, false);
    assert!(
        report.damaged[0].reached_by.contains("tag multi:1"),
        "{report:?}"
    );
}

#[test]
fn prune_keeps_everything_under_indexes_nested_past_the_limit() {
    let (_d, s) = store();
    let img = image(&s);
    // Index over index over ... over the image, deeper than kiln reads.
    let mut child = img.manifest.clone();
    for _ in 0..crate::image::MAX_INDEX_DEPTH + 2 {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": child.media_type,
                "digest": child.digest.to_string(),
                "size": child.size,
            }],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        let digest = s.put_blob(&bytes).unwrap();
        child = Descriptor::new(INDEX_MEDIA_TYPE, digest, bytes.len() as u64);
    }
    s.remove_image("img:1").unwrap();
    s.add_image(&child, &["deep:1".into()]).unwrap();
    let garbage = s.put_blob(b"unreferenced").unwrap();
    let report = s.prune(Default::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("nested more than")),
        "{report:?}"
    );
    // Nothing is deleted on a guess: not the image's layer, not even garbage.
    assert!(s.has_blob(&img.layer) && s.has_blob(&garbage), "{report:?}");
}
