//! Loading hand-made archives: docker's legacy layout (`<id>/layer.tar`,
//! shared through symbolic links), and what a mismatch leaves behind.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::snapshot::ImagePath;

/// A layer tar holding `hello.txt` and a 1.5 MiB file (so it is spooled
/// to disk, not held in memory).
fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [("hello.txt", b"hi\n".to_vec()), ("big", vec![0u8; 3 << 19])] {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &body[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn config(diff_id: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap()
}

/// docker's pre-25 archive of two names of one image, the second entry's
/// layer a symbolic link to the first's.
fn legacy_archive(layer: &[u8], config: &[u8]) -> Vec<u8> {
    let config_name = format!("{}.json", Digest::of(config).hex());
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["docker.io/library/one:latest"], "Layers": ["abc/layer.tar"]},
        {"Config": config_name, "RepoTags": ["two:1"], "Layers": ["def/layer.tar"]},
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, body: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body).unwrap();
    };
    file(&mut b, "abc/layer.tar", layer);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "def/layer.tar", "../abc/layer.tar")
        .unwrap();
    file(&mut b, &config_name, config);
    file(&mut b, "manifest.json", &manifest);
    b.into_inner().unwrap()
}

#[test]
fn a_legacy_docker_archive_loads_with_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = layer();
    let archive = legacy_archive(&layer, &config(&Digest::of(&layer)));
    let loaded = load(&store, &archive[..], &AtomicBool::new(false)).unwrap();
    let names: Vec<&str> = loaded
        .iter()
        .flat_map(|l| l.names.iter().map(String::as_str))
        .collect();
    assert_eq!(names, ["one:latest", "two:1"]);
    assert_eq!(loaded[0].id, loaded[1].id);
    let image = Image::load(&store, &store.resolve("two:1").unwrap(), None).unwrap();
    let snapshot = image.snapshot(&store).unwrap();
    assert!(
        snapshot
            .get(&ImagePath::parse("hello.txt").unwrap())
            .is_some()
    );
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = layer();
    let config = config(&Digest::of(b"something else"));
    let archive = legacy_archive(&layer, &config);
    let err = load(&store, &archive[..], &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(err, LoadError::Damaged(_)), "{err}");
    assert!(err.to_string().contains("diff_id"), "{err}");
    assert!(store.images().unwrap().is_empty());
    assert!(!store.has_blob(&Digest::of(&layer)));
    assert!(!store.has_blob(&Digest::of(&config)));
}

#[test]
fn names_are_docker_short_forms() {
    assert_eq!(image_name("docker.io/library/a:1").unwrap(), "a:1");
    assert_eq!(image_name("ghcr.io/o/r").unwrap(), "ghcr.io/o/r:latest");
    assert!(
        image_name("a@sha256:0000000000000000000000000000000000000000000000000000000000000000")
            .is_err()
    );
    assert!(image_name("Not Valid").is_err());
}
