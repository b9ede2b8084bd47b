//! Hostile input through the binary: a Kilnfile built to overflow the
//! stack, a step that makes a tree as deep as paths allow, and a
//! `--cache-from` directory whose layers try to leave the
//! image. Each gets a clear error or is refused; kiln never aborts and never
//! ships what its steps did not see.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::run::GUESTS;
use crate::util::Sandbox;

#[test]
fn a_20000_deep_substitution_is_a_file_line_col_error_not_an_abort() {
    let sb = Sandbox::new();
    let depth = 20_000;
    let word = "${A:-".repeat(depth) + "x" + &"}".repeat(depth);
    sb.write("ctx/Kilnfile", format!("FROM scratch\nWORKDIR {word}\n"));
    let run = sb.kiln(&["build", "ctx"]).fails(1);
    // "WORKDIR " is 8 columns; the 65th "${" starts after 64 of 5 bytes.
    assert!(
        run.stderr
            .contains("error: ctx/Kilnfile:2:329: substitutions nested deeper than 64 levels"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    // The 120 KB line is shown as a window around the column.
    assert!(run.stderr.len() < 2000, "{} bytes", run.stderr.len());
}

#[test]
fn a_step_that_makes_a_tree_2000_levels_deep_builds_and_checks() {
    // Applying such a layer once cost every level a walk of every level
    // below it: hours. Now it is one look-up per level.
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/probe")).unwrap();
    let deep = format!("/d{}", "/a".repeat(2_000));
    sb.write(
        "ctx/Kilnfile",
        format!(
            "FROM scratch\nCOPY probe /bin/probe\n\
             RUN [\"/bin/probe\", \"mkdir\", \"{deep}\", \"--\", \"write\", \"{deep}/f\", \"x\"]\n\
             RUN [\"/bin/probe\", \"rm-r\", \"/d\"]\n"
        ),
    );
    sb.kiln(&["build", "-q", "-t", "deep", "ctx"]).ok();
    sb.kiln(&["check"]).ok();
    let gone = sb
        .kiln(&["run", "--rm", "deep", "/bin/probe", "exists", "/d"])
        .ok();
    assert_eq!(gone.stdout.trim(), "false");
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` as a blob of the layout at `dir`; returns its digest.
fn put(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    fs::write(dir.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
    digest
}

fn blob(dir: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap()).unwrap()
}

/// A gzip layer with one entry named `name`: (tar, blob).
fn hostile_layer(name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(5);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(b"owned");
    tar.resize(512 * 4, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    (tar.clone(), gz.finish().unwrap())
}

/// Replaces the layer of every entry of the cache in `dir` with `layer`.
fn poison(dir: &Path, (tar, gz): (Vec<u8>, Vec<u8>)) -> String {
    let layer_digest = put(dir, &gz);
    let layer = json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": layer_digest,
        "size": gz.len(),
    });
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut manifest = blob(dir, index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = blob(dir, manifest["config"]["digest"].as_str().unwrap());
    for entry in config["entries"].as_array_mut().unwrap() {
        if !entry["layer"].is_null() {
            entry["layer"] = layer.clone();
            entry["diff_id"] = json!(sha256(&tar));
        }
    }
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(put(dir, &config));
    manifest["config"]["size"] = json!(config.len());
    manifest["layers"] = json!([layer]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = json!(put(dir, &manifest));
    index["manifests"][0]["size"] = json!(manifest.len());
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    layer_digest
}

#[test]
fn cache_from_layers_that_leave_the_image_are_refused_and_the_step_runs() {
    let kilnfile = "FROM scratch\nCOPY tool.wasm /bin/tool.wasm\nRUN [\"/bin/tool.wasm\", \"write\", \"/out.txt\", \"mine\"]\n";
    let a = Sandbox::new();
    fs::create_dir_all(a.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, a.path("ctx/tool.wasm")).unwrap();
    a.write("ctx/Kilnfile", kilnfile);
    let cache = a.path("cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    a.kiln(&["build", "-q", "--cache-to", &to, "-t", "good", "ctx"])
        .ok();
    let hostile = poison(&cache, hostile_layer("../../../../tmp/owned"));

    let b = Sandbox::new();
    fs::create_dir_all(b.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, b.path("ctx/tool.wasm")).unwrap();
    b.write("ctx/Kilnfile", kilnfile);
    let from = format!("type=local,src={}", cache.display());
    let run = b
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &from,
            "-t",
            "b",
            "ctx",
        ])
        .ok();
    assert!(
        run.stderr.contains("ignoring a cache entry")
            && run
                .stderr
                .contains("entry \"../../../../tmp/owned\" is refused"),
        "{}",
        run.stderr
    );
    // The steps ran: the image holds what they wrote, not the cache's layer.
    let image = b.inspect("b");
    let layers = image["Manifest"]["layers"].as_array().unwrap();
    assert!(
        layers.iter().all(|l| l["digest"] != hostile.as_str()),
        "{image}"
    );
    let out = b
        .kiln(&["run", "--rm", "b", "/bin/tool.wasm", "cat", "/out.txt"])
        .ok();
    assert_eq!(out.stdout, "mine");
}
