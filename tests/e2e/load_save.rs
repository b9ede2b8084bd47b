//! `kiln load` and `kiln save` against skopeo's docker-archive and
//! oci-archive, bad archives, and docker's habits on `kiln build` and
//! `kiln images`.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{Run, Sandbox, kiln_bin, tool};

/// A two-layer image built from scratch, tagged `app:1`; its id.
fn app(sb: &Sandbox) -> String {
    sb.write("ctx/a.txt", "hello\n");
    sb.write("ctx/b/c.txt", "x".repeat(5000));
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b /b/\nCMD [\"x\"]\n",
    );
    sb.build("ctx", &["-t", "app:1"])
}

/// kiln with `input` as its standard input.
fn kiln_stdin(sb: &Sandbox, args: &[&str], input: &Path) -> Run {
    let out = Command::new(kiln_bin())
        .args(args)
        .env("KILN_STORE", sb.store())
        .stdin(fs::File::open(input).unwrap())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The config digest and diff_ids of an image in a sandbox's store.
fn config_of(sb: &Sandbox, image: &str) -> (String, Vec<String>) {
    let v = sb.inspect(image);
    let digest = v["Manifest"]["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let diff_ids = v["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (digest, diff_ids)
}

/// The diff_ids of the image an OCI layout directory holds (its first).
fn layout_diff_ids(dir: &Path) -> Vec<String> {
    let blob = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn skopeo_docker_archive_and_oci_archive_load_into_kiln() {
    let sb = Sandbox::new();
    let id = app(&sb);
    let (config, diff_ids) = config_of(&sb, "app:1");
    let source = format!("oci:{}:app:1", sb.store().display());
    let docker = sb.path("docker.tar");
    let oci = sb.path("oci.tar");
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &source,
            &format!("docker-archive:{}:team/loaded:v1", docker.display()),
        ],
    );
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &source,
            &format!("oci-archive:{}:oci-loaded:v2", oci.display()),
        ],
    );

    // Into an empty store: from a file, and from standard input.
    let other = Sandbox::new();
    let out = other.kiln(&["load", "-i", docker.to_str().unwrap()]).ok();
    assert_eq!(out.stdout.trim(), "Loaded image: team/loaded:v1", "{out:?}");
    assert_eq!(
        config_of(&other, "team/loaded:v1"),
        (config.clone(), diff_ids.clone())
    );
    let out = kiln_stdin(&other, &["load"], &oci).ok();
    assert_eq!(out.stdout.trim(), "Loaded image: oci-loaded:v2", "{out:?}");
    assert_eq!(config_of(&other, "oci-loaded:v2"), (config, diff_ids));
    // skopeo kept the OCI manifest as it was: the same image id.
    assert_eq!(other.inspect("oci-loaded:v2")["Id"], id.as_str());

    // What was loaded is whole: kiln check reads every object, and the
    // image builds on.
    let check = other.kiln(&["check"]).ok();
    assert!(!check.stdout.contains("damaged"), "{check:?}");
    other.write("ctx/Kilnfile", "FROM team/loaded:v1\nCOPY Kilnfile /k\n");
    other.build("ctx", &["-t", "on-top"]);
}

#[test]
fn kiln_save_is_read_by_skopeo_and_loads_back() {
    let sb = Sandbox::new();
    let id = app(&sb);
    let (config, diff_ids) = config_of(&sb, "app:1");
    let archive = sb.path("saved.tar");
    sb.kiln(&["save", "-o", archive.to_str().unwrap(), "app:1"])
        .ok();

    let info: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    ))
    .unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{info}");
    tool(
        "skopeo",
        &[
            "inspect",
            &format!("docker-archive:{}:app:1", archive.display()),
        ],
    );
    let copied = sb.path("copied");
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:x", copied.display()),
        ],
    );
    assert_eq!(layout_diff_ids(&copied), diff_ids);
    // The same file is an OCI archive too, as docker 25's are.
    let out = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    );
    assert!(out.contains(&id), "{out}");
    // The manifest names the image as docker would.
    let entries = crate::util::tar_entries(&fs::read(&archive).unwrap());
    let manifest = entries
        .iter()
        .find(|e| e.0 == "manifest.json")
        .expect("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.3).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["app:1"]));

    // Saved to standard output and loaded from standard input, into an
    // empty store: the same image, id and all.
    let piped = sb.path("piped.tar");
    let out = Command::new(kiln_bin())
        .args(["save", "app:1"])
        .env("KILN_STORE", sb.store())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(
        out.stdout,
        fs::read(&archive).unwrap(),
        "saving is deterministic"
    );
    let other = Sandbox::new();
    let loaded = kiln_stdin(&other, &["load"], &piped).ok();
    assert_eq!(loaded.stdout.trim(), "Loaded image: app:1");
    assert_eq!(other.inspect("app:1")["Id"], id.as_str());
    assert_eq!(config_of(&other, "app:1"), (config, diff_ids));

    // By id, an image has no name; --format oci leaves manifest.json out.
    let by_id = sb.path("by-id.tar");
    sb.kiln(&[
        "save",
        "--format",
        "oci",
        "-o",
        by_id.to_str().unwrap(),
        &id[7..19],
    ])
    .ok();
    let names: Vec<String> = crate::util::tar_entries(&fs::read(&by_id).unwrap())
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(!names.contains(&"manifest.json".to_string()), "{names:?}");
    let third = Sandbox::new();
    let loaded = third.kiln(&["load", "-i", by_id.to_str().unwrap()]).ok();
    assert_eq!(loaded.stdout.trim(), format!("Loaded image ID: {id}"));
}

/// Rewrites the tar at `from` into `to`, passing each regular file's
/// path and contents through `edit`.
fn rewrite(from: &Path, to: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut out = tar::Builder::new(fs::File::create(to).unwrap());
    let mut archive = tar::Archive::new(fs::File::open(from).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let body = if e.header().entry_type().is_file() {
            edit(&path, body)
        } else {
            body
        };
        let mut h = e.header().clone();
        h.set_size(body.len() as u64);
        h.set_cksum();
        out.append_data(&mut h, &path, &body[..]).unwrap();
    }
    out.into_inner().unwrap().flush().unwrap();
}

/// Flips the last byte of a file's contents.
fn flip(mut body: Vec<u8>) -> Vec<u8> {
    let last = body.len() - 1;
    body[last] ^= 1;
    body
}

#[test]
fn bad_archives_fail_clearly_and_leave_the_store_as_it_was() {
    let sb = Sandbox::new();
    app(&sb);
    let saved = sb.path("saved.tar");
    sb.kiln(&["save", "-o", saved.to_str().unwrap(), "app:1"])
        .ok();
    let docker = sb.path("docker.tar");
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci:{}:app:1", sb.store().display()),
            &format!("docker-archive:{}:bad:1", docker.display()),
        ],
    );
    let not_tar = sb.write("not.tar", "this is text, not a tar archive\n".repeat(40));
    let empty = sb.path("empty.tar");
    tar::Builder::new(fs::File::create(&empty).unwrap())
        .into_inner()
        .unwrap();
    // A blob of the OCI layout whose bytes do not match its name.
    let bad_blob = sb.path("bad-blob.tar");
    rewrite(&saved, &bad_blob, |path, body| {
        if path.starts_with("blobs/") {
            flip(body)
        } else {
            body
        }
    });
    // An uncompressed docker layer that does not match its diff_id.
    let bad_layer = sb.path("bad-layer.tar");
    rewrite(&docker, &bad_layer, |path, body| {
        if path.ends_with(".tar") {
            let mut body = body;
            body[100] ^= 1;
            body
        } else {
            body
        }
    });

    let other = Sandbox::new();
    for (file, want) in [
        (&not_tar, "is not a tar archive"),
        (&empty, "holds neither manifest.json"),
        (&bad_blob, "digest mismatch"),
        (&bad_layer, "diff_id"),
    ] {
        let out = other.kiln(&["load", "-i", file.to_str().unwrap()]).fails(1);
        assert!(out.stderr.contains(want), "{}: {out:?}", file.display());
    }
    // Nothing named, nothing damaged: the store is as it was.
    let listing = other.kiln(&["images"]).ok().stdout;
    assert_eq!(listing.lines().count(), 1, "{listing}");
    other.kiln(&["check"]).ok();
    // And the good archives still load.
    let out = other.kiln(&["load", "-i", docker.to_str().unwrap()]).ok();
    assert_eq!(out.stdout.trim(), "Loaded image: bad:1");
}

#[test]
fn buildx_habits_get_kiln_answers() {
    let sb = Sandbox::new();
    app(&sb);
    for args in [
        &["build", "--load", "ctx"][..],
        &["build", "-o", "type=docker", "ctx"][..],
    ] {
        let out = sb.kiln(args).fails(2);
        assert!(
            out.stderr.contains("kiln has no docker daemon")
                && out.stderr.contains("kiln save IMAGE | docker load"),
            "{args:?}: {out:?}"
        );
    }
    // type=docker with a destination writes what docker load reads.
    let archive = sb.path("out.tar");
    sb.build(
        "ctx",
        &[
            "-t",
            "app:2",
            "-o",
            &format!("type=docker,dest={}", archive.display()),
        ],
    );
    // skopeo finds the image by the name in manifest.json's RepoTags.
    tool(
        "skopeo",
        &[
            "inspect",
            &format!("docker-archive:{}:app:2", archive.display()),
        ],
    );
    // docker's spellings of booleans.
    for flag in [
        "--no-cache=true",
        "--no-cache=false",
        "--pull=false",
        "--push=false",
        "--no-cache",
    ] {
        sb.build("ctx", &[flag]);
    }
    let out = sb.kiln(&["build", "--no-cache=maybe", "ctx"]).fails(2);
    assert!(out.stderr.contains("not a boolean"), "{out:?}");
    // A missing image says how to bring one in.
    let out = sb.kiln(&["inspect", "nope"]).fails(1);
    assert!(
        out.stderr.contains("kiln pull") && out.stderr.contains("kiln load"),
        "{out:?}"
    );
}

#[test]
fn images_list_newest_first_with_docker_sizes() {
    let sb = Sandbox::new();
    app(&sb);
    sb.write("ctx2/f", "y");
    sb.write("ctx2/Kilnfile", "FROM scratch\nCOPY f /f\n");
    sb.kiln_env(
        &["build", "-q", "-t", "dated:1", "ctx2"],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    )
    .ok();
    let listing = sb.kiln(&["images"]).ok().stdout;
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[1].starts_with("dated "), "{listing}");
    assert!(lines[1].contains(" years ago "), "{listing}");
    assert!(lines[2].starts_with("app "), "{listing}");
    assert!(lines[2].contains(" N/A "), "{listing}");
    let size = lines[2].split_whitespace().last().unwrap();
    assert!(size.ends_with("kB") && size.len() <= 6, "{listing}");
}
