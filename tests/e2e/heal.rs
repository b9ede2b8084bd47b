//! A store that heals itself: each kind of damage (a flipped byte, a
//! truncated file, garbage) made by hand, then what kiln does about it: a
//! rebuild rewrites what it produces again and tags only a readable image,
//! prune keeps what tagged images use, a step that meets damage says so,
//! and `kiln check [--repair]` finds and repairs it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::run::GUESTS;
use crate::util::{Run, Sandbox};

const DATA: &str = "precious data";

/// A context at `ctx/` whose image holds the probe and `/data.txt`.
fn base(sb: &Sandbox) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/data.txt", DATA);
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/ /bin/\nCOPY data.txt /data.txt\nRUN [\"probe\", \"write\", \"/made.txt\", \"made\"]\n",
    );
    sb.build("ctx", &["-t", "base"]);
}

/// A context at `child/` built FROM base that reads /data.txt in a step.
fn child(sb: &Sandbox) {
    sb.write(
        "child/Kilnfile",
        "FROM base\nRUN [\"probe\", \"copy\", \"/data.txt\", \"/copy.txt\"]\n",
    );
}

fn store_file(sb: &Sandbox, rel: &str) -> PathBuf {
    sb.store().join(rel)
}

fn flip(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// The files of a store directory.
fn files(sb: &Sandbox, dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(store_file(sb, dir))
        .map(|l| l.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The pack (a layer's uncompressed tar, kept beside a compressed layer
/// blob) holding `bytes`, and where they start in it.
fn pack_holding(sb: &Sandbox, bytes: &[u8]) -> (PathBuf, usize) {
    for path in files(sb, "blobs/sha256") {
        let blob = fs::read(&path).unwrap();
        let is_tar = blob.get(257..262) == Some(b"ustar");
        if let Some(at) = blob.windows(bytes.len()).position(|w| w == bytes)
            && is_tar
        {
            return (path, at);
        }
    }
    panic!("no pack holds {bytes:?}");
}

fn config_blob(sb: &Sandbox, image: &str) -> PathBuf {
    let digest = sb.inspect(image)["Manifest"]["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    store_file(sb, "blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn cat_data(sb: &Sandbox, image: &str) -> Run {
    sb.kiln(&["run", "--rm", image, "probe", "cat", "/data.txt"])
}

#[test]
fn a_rebuild_rewrites_a_damaged_config_blob_and_tags_a_readable_image() {
    let sb = Sandbox::new();
    base(&sb);
    let config = config_blob(&sb, "base");
    flip(&config);
    sb.kiln(&["inspect", "base"]).fails(1);
    // The same build produces the same config: it replaces the damaged one.
    for extra in [&[][..], &["--no-cache"][..]] {
        let mut args = vec!["build", "-q", "-t", "base"];
        args.extend_from_slice(extra);
        args.push("ctx");
        sb.kiln(&args).ok();
        sb.kiln(&["inspect", "base"]).ok();
        assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
        flip(&config);
    }
}

#[test]
fn a_build_whose_image_cannot_be_read_back_moves_no_tag() {
    let sb = Sandbox::new();
    base(&sb);
    child(&sb);
    sb.build("child", &["-t", "child"]);
    let before = sb.inspect("child")["Id"].clone();
    // The base's first layer blob is gone; its index still says what is in
    // it, so the steps run, but the image would name a blob nobody has.
    let layer = sb.inspect("base")["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(store_file(&sb, "blobs/sha256").join(layer.trim_start_matches("sha256:")))
        .unwrap();
    sb.write(
        "child/Kilnfile",
        "FROM base\nRUN [\"probe\", \"write\", \"/new.txt\", \"new\"]\n",
    );
    let failed = sb.kiln(&["build", "-q", "-t", "child", "child"]).fails(1);
    assert!(failed.stderr.contains(&layer), "{failed:?}");
    assert_eq!(
        sb.inspect("child")["Id"],
        before,
        "the tag stayed where it was"
    );
}

#[test]
fn a_damaged_layer_index_is_rebuilt_and_prune_keeps_what_tags_use() {
    let sb = Sandbox::new();
    base(&sb);
    let indexes = files(&sb, "kiln/layers/sha256");
    assert!(!indexes.is_empty());
    for (i, index) in indexes.iter().enumerate() {
        match i % 3 {
            0 => flip(index),
            1 => fs::write(index, b"garbage").unwrap(),
            _ => fs::write(index, &fs::read(index).unwrap()[..10]).unwrap(),
        }
    }
    let pruned = sb.kiln(&["prune"]).ok();
    // Tagged data survived: the image runs and builds FROM it read it.
    assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
    assert!(
        pruned.stderr.contains("kept every file content"),
        "{pruned:?}"
    );
    child(&sb);
    sb.build("child", &["-t", "child"]);
    assert_eq!(
        sb.kiln(&["run", "--rm", "child", "probe", "cat", "/copy.txt"])
            .ok()
            .stdout,
        DATA
    );
    // The indexes were rebuilt: a later prune has nothing to complain of.
    let pruned = sb.kiln(&["prune"]).ok();
    assert!(!pruned.stderr.contains("warning"), "{pruned:?}");
    assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
}

#[test]
fn a_step_that_meets_damaged_file_contents_says_the_store_is_damaged() {
    let sb = Sandbox::new();
    base(&sb);
    child(&sb);
    // One byte of /data.txt, in its layer's pack.
    let (pack, at) = pack_holding(&sb, DATA.as_bytes());
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at + 3] ^= 0x01;
    fs::write(&pack, bytes).unwrap();
    let data = pack.file_name().unwrap().to_string_lossy().into_owned();
    let failed = sb.kiln(&["build", "-q", "-t", "child", "child"]).fails(1);
    for needle in [
        "the store is damaged",
        &format!("layer pack sha256:{data}"),
        "kiln check --repair",
    ] {
        assert!(failed.stderr.contains(needle), "{needle}: {failed:?}");
    }
    let ran = cat_data(&sb, "base");
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("the store is damaged"), "{ran:?}");

    let checked = sb.kiln(&["check"]).fails(1);
    assert!(checked.stdout.contains(&data), "{checked:?}");
    assert!(checked.stdout.contains("tag base:latest"), "{checked:?}");
    sb.kiln(&["check", "--repair"]).ok();
    sb.kiln(&["check"]).ok();
    sb.build("child", &["-t", "child"]);
    assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
}

#[test]
fn check_reports_each_kind_of_damage_and_repair_heals_the_store() {
    let sb = Sandbox::new();
    base(&sb);
    sb.write("other/Kilnfile", "FROM base\nLABEL other=yes\n");
    sb.build("other", &["-t", "other"]);
    assert!(sb.kiln(&["check"]).ok().stdout.contains("no damage"));

    // A layer index flipped, a layer's pack truncated, a cache entry made
    // garbage, and the config blob of `other` flipped.
    flip(&files(&sb, "kiln/layers/sha256")[0]);
    let (made, _) = pack_holding(&sb, b"made");
    let bytes = fs::read(&made).unwrap();
    fs::write(&made, &bytes[..bytes.len() / 2]).unwrap();
    let entry = files(&sb, "kiln/steps")[0].clone();
    fs::write(&entry, b"{\"diff_id\":").unwrap();
    flip(&config_blob(&sb, "other"));

    let checked = sb.kiln(&["check"]).fails(1);
    for kind in ["layer index", "cache entry", "blob"] {
        assert!(checked.stdout.contains(kind), "{kind}: {checked:?}");
    }
    assert!(checked.stdout.contains("tag other:latest"), "{checked:?}");
    assert!(
        checked.stderr.contains("kiln check --repair"),
        "{checked:?}"
    );

    let repaired = sb.kiln(&["check", "--repair"]).ok();
    assert!(
        repaired
            .stdout
            .contains("tag other:latest: removed: its image is broken beyond repair"),
        "{repaired:?}"
    );
    assert!(sb.kiln(&["check"]).ok().stdout.contains("no damage"));
    assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
    assert_eq!(
        sb.kiln(&["run", "--rm", "base", "probe", "cat", "/made.txt"])
            .ok()
            .stdout,
        "made"
    );
    sb.kiln(&["inspect", "other"]).fails(1);
    // A rebuild brings the removed image back.
    sb.build("other", &["-t", "other"]);
    sb.kiln(&["check"]).ok();
}

#[test]
fn prune_removes_cache_mounts_with_all_or_alone() {
    let sb = Sandbox::new();
    base(&sb);
    sb.write(
        "cached/Kilnfile",
        "FROM base\nRUN --mount=type=cache,id=pkgs,target=/cache [\"probe\", \"write\", \"/cache/pkg\", \"p\"]\n",
    );
    let mounts = |sb: &Sandbox| files(sb, "kiln/cache").len();
    for args in [
        &["prune", "--cache-mounts"][..],
        &["prune", "--filter", "type=exec.cachemount"][..],
        &["prune", "--all"][..],
    ] {
        sb.build("cached", &["--no-cache", "-t", "cached"]);
        assert_eq!(mounts(&sb), 1);
        sb.kiln(&["prune"]).ok();
        assert_eq!(mounts(&sb), 1, "a plain prune keeps cache mounts");
        let out = sb.kiln(args).ok();
        assert!(out.stdout.contains("1 cache mount(s)"), "{out:?}");
        assert_eq!(mounts(&sb), 0, "{args:?}");
        assert_eq!(cat_data(&sb, "base").ok().stdout, DATA);
    }
    sb.kiln(&["prune", "--filter", "type=volume"]).fails(2);
}

#[test]
fn reading_damaged_content_points_at_kiln_check() {
    let sb = Sandbox::new();
    base(&sb);
    let layer = sb.inspect("base")["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    flip(&store_file(&sb, "blobs/sha256").join(layer.trim_start_matches("sha256:")));
    let failed = sb.kiln(&["export", "base", "-o", "base.tar"]).fails(1);
    assert!(
        failed.stderr.contains("content does not match its digest"),
        "{failed:?}"
    );
    assert!(
        failed.stderr.contains(
            "hint: part of the store is damaged on disk: `kiln check` lists what is damaged"
        ),
        "{failed:?}"
    );
    assert!(!sb.path("base.tar").exists(), "no half-written archive");
}
