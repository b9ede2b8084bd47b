//! Store tests: layout, atomic writes, verification, tags, locks, prune.

use std::io::{Read, Write};

use super::*;
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, ImagePath, Meta, Node};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn creates_a_valid_oci_layout() {
    let (_d, s) = store();
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert!(index["manifests"].as_array().unwrap().is_empty());
    // Opening again changes nothing.
    Store::open(s.root()).unwrap();
}

#[test]
fn refuses_a_store_of_another_format() {
    let (_d, s) = store();
    std::fs::write(s.root().join("kiln/version"), "99\n").unwrap();
    let err = Store::open(s.root()).unwrap_err();
    assert!(matches!(err, StoreError::Version { .. }), "{err}");
}

#[test]
fn blobs_are_content_addressed_and_verified_on_read() {
    let (_d, s) = store();
    let d = s.put_blob(b"hello").unwrap();
    assert_eq!(d, Digest::of(b"hello"));
    assert_eq!(s.put_blob(b"hello").unwrap(), d, "idempotent");
    assert_eq!(s.read_blob(&d).unwrap(), b"hello");
    std::fs::write(s.blob_path(&d), b"HELLO").unwrap();
    let err = s.read_blob(&d).unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
    let missing = Digest::of(b"nope");
    assert!(matches!(
        s.read_blob(&missing),
        Err(StoreError::Missing { .. })
    ));
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if std::fs::read(e.path())
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(e.path());
            }
        }
    }
    hits
}

#[test]
fn private_writes_have_no_name_until_committed() {
    let (_d, s) = store();
    let secret = b"s3cr3t-bytes-of-a-step-0451";
    let mut w = s.private_blob_writer().unwrap();
    w.write_bytes(secret).unwrap();
    w.flush().unwrap();
    // Written and flushed, yet no file in the store holds it: a kill now
    // leaves nothing behind.
    assert_eq!(
        files_containing(s.root(), secret),
        Vec::<std::path::PathBuf>::new()
    );
    let (digest, _) = w.commit().unwrap();
    assert_eq!(
        files_containing(s.root(), secret),
        vec![s.blob_path(&digest)]
    );
    assert_eq!(std::fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn plain_writes_have_no_name_until_committed_on_linux() {
    let (_d, s) = store();
    let mut w = s.content_writer().unwrap();
    w.write_bytes(b"contents-in-flight-7731").unwrap();
    w.flush().unwrap();
    assert!(files_containing(s.root(), b"contents-in-flight-7731").is_empty());
    w.commit().unwrap();
}

#[test]
fn a_store_left_by_a_killed_process_is_swept_on_open() {
    let (_d, s) = store();
    let tmp = s.root().join("kiln/tmp");
    // What a killed kiln leaves: its session directory and an unheld lock.
    std::fs::create_dir(tmp.join("4242-00ff")).unwrap();
    std::fs::write(tmp.join("4242-00ff/.tmp-x"), b"half a layer").unwrap();
    std::fs::write(tmp.join("4242-00ff.lock"), b"").unwrap();
    let again = Store::open(s.root()).unwrap();
    assert!(!tmp.join("4242-00ff").exists());
    assert!(!tmp.join("4242-00ff.lock").exists());
    assert!(s.tmp_dir().exists(), "the first store's session is alive");
    assert_ne!(s.tmp_dir(), again.tmp_dir());
}

#[test]
fn uncommitted_writes_leave_nothing_behind() {
    let (_d, s) = store();
    {
        let mut w = s.blob_writer().unwrap();
        w.write_bytes(b"partial").unwrap();
        // dropped without commit, as when a build fails or is interrupted
    }
    assert_eq!(
        std::fs::read_dir(s.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn content_reads_check_size_and_digest() {
    let (_d, s) = store();
    let mut w = s.content_writer().unwrap();
    w.write_bytes(b"abc").unwrap();
    let (digest, size) = w.commit().unwrap();
    let f = FileRef::loose(digest, size);
    let mut out = String::new();
    s.open_content(&f)
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "abc");
    std::fs::write(s.content_path(&digest), b"abcd").unwrap();
    assert!(matches!(
        s.open_content(&f),
        Err(StoreError::Corrupt { .. })
    ));
}

fn manifest(s: &Store, n: u8) -> Descriptor {
    let d = s.put_blob(&[n]).unwrap();
    Descriptor::new(MANIFEST_MEDIA_TYPE, d, 1)
}

#[test]
fn tags_move_and_leave_untagged_images() {
    let (_d, s) = store();
    let m1 = manifest(&s, 1);
    let m2 = manifest(&s, 2);
    s.add_image(&m1, &["app:1".into(), "app:latest".into()])
        .unwrap();
    s.add_image(&m2, &["app:latest".into()]).unwrap();
    let names: Vec<_> = s
        .images()
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.manifest.digest))
        .collect();
    assert_eq!(
        names,
        vec![
            (Some("app:1".into()), m1.digest),
            (Some("app:latest".into()), m2.digest)
        ]
    );
    assert_eq!(s.resolve("app").unwrap().digest, m2.digest);
    assert_eq!(s.resolve("app:1").unwrap().digest, m1.digest);
    assert_eq!(s.resolve(&m1.digest.hex()[..8]).unwrap().digest, m1.digest);
    assert_eq!(s.resolve(&m2.digest.to_string()).unwrap().digest, m2.digest);
    assert!(matches!(
        s.resolve("other"),
        Err(StoreError::Ref(RefError::NotFound(_)))
    ));
    // Moving the last tag off m1 keeps it as an untagged image.
    s.add_image(&m2, &["app:1".into()]).unwrap();
    let untagged: Vec<_> = s
        .images()
        .unwrap()
        .into_iter()
        .filter(|i| i.name.is_none())
        .collect();
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0].manifest.digest, m1.digest);
    // Building the same image untagged again adds no duplicate.
    s.add_image(&m1, &[]).unwrap();
    assert_eq!(s.images().unwrap().len(), 3);
}

#[test]
fn rmi_by_name_and_by_id() {
    let (_d, s) = store();
    let m = manifest(&s, 1);
    s.add_image(&m, &["a:1".into(), "b:1".into()]).unwrap();
    let (names, _, gone) = s.remove_image("a:1").unwrap();
    assert_eq!((names, gone), (vec!["a:1".to_string()], false));
    let (names, digest, gone) = s.remove_image(&m.digest.hex()[..12]).unwrap();
    assert_eq!(
        (names, digest, gone),
        (vec!["b:1".to_string()], m.digest, true)
    );
    assert!(s.images().unwrap().is_empty());
    assert!(s.remove_image("a:1").is_err());
}

#[test]
fn concurrent_tagging_loses_nothing() {
    let (_d, s) = store();
    let root = s.root().to_path_buf();
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let s = Store::open(&root).unwrap();
                let m = manifest(&s, i);
                s.add_image(&m, &[format!("img:{i}")]).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.images().unwrap().len(), 8);
}

#[test]
fn prune_keeps_what_tagged_images_use() {
    let (_d, s) = store();
    let mut changes = PendingChanges::new();
    changes.insert(
        ImagePath::parse("f").unwrap(),
        Change::Put(Node::File(
            Meta::root(0o644, 0),
            Content::Bytes(b"kept".to_vec()),
        )),
    );
    let layer = write_layer(&s, changes, &LayerOptions::default()).unwrap();
    s.put_layer_index(&layer.diff_id, &layer.changes).unwrap();
    let config = format!(
        r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.diff_id
    );
    let config = s.put_blob(config.as_bytes()).unwrap();
    let manifest_json = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{config}","size":1}},"layers":[{{"mediaType":"x","digest":"{}","size":1}}]}}"#,
        layer.descriptor.digest
    );
    let m = s.put_blob(manifest_json.as_bytes()).unwrap();
    s.add_image(
        &Descriptor::new(MANIFEST_MEDIA_TYPE, m, 1),
        &["keep:me".into()],
    )
    .unwrap();
    let garbage = s.put_blob(b"garbage").unwrap();
    let mut w = s.content_writer().unwrap();
    w.write_bytes(b"orphan content").unwrap();
    let (orphan, _) = w.commit().unwrap();
    std::fs::write(
        s.root().join("kiln/tmp/.tmp-stale"),
        b"left by an older kiln",
    )
    .unwrap();

    let report = s.prune(Default::default()).unwrap();
    assert_eq!(
        (report.blobs, report.files, report.other),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(!s.has_blob(&garbage));
    assert!(!s.has_content(&orphan));
    assert!(s.has_blob(&m) && s.has_blob(&config) && s.has_blob(&layer.descriptor.digest));
    assert!(s.has_blob(&layer.diff_id), "the layer's pack");
    assert!(s.layer_index(&layer.diff_id).unwrap().is_some());

    // Untagging then pruning removes the rest: manifest, config, layer,
    // pack and index.
    s.remove_image("keep:me").unwrap();
    let report = s.prune(Default::default()).unwrap();
    assert_eq!(
        (report.blobs, report.files, report.other),
        (4, 0, 1),
        "{report:?}"
    );
    assert!(!s.has_blob(&layer.diff_id));
}
