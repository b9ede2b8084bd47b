//! The store through the binary: listing, removing, pruning, concurrent
//! builds and corruption.

use std::fs;

use crate::util::{Sandbox, tool};

#[test]
fn images_rmi_and_prune() {
    let sb = Sandbox::new();
    sb.write("ctx/f", "1");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY f /f\n");
    let first = sb.build("ctx", &["-t", "app:1", "-t", "app:latest"]);
    sb.write("ctx/f", "2");
    let second = sb.build("ctx", &["-t", "app:latest"]);
    let listing = sb.kiln(&["images"]).ok().stdout;
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"),
        "{listing}"
    );
    assert!(
        listing.contains(&first[7..19]) && listing.contains(&second[7..19]),
        "{listing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("app") && l.contains("latest") && l.contains(&second[7..19]))
    );

    let out = sb.kiln(&["rmi", "app:1"]).ok().stdout;
    assert_eq!(out, format!("Untagged: app:1\nDeleted: {first}\n"));
    let run = sb.kiln(&["rmi", "app:1"]).fails(1);
    assert!(run.stderr.contains("no image \"app:1\""), "{}", run.stderr);

    let blobs = || {
        fs::read_dir(sb.store().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs();
    let out = sb.kiln(&["prune"]).ok().stdout;
    assert!(
        out.contains("Deleted") && out.contains("reclaimed"),
        "{out}"
    );
    assert_eq!(
        blobs(),
        before - 2,
        "the first image's manifest and config; the step cache keeps its layer"
    );
    let out = sb.kiln(&["prune", "--all"]).ok().stdout;
    assert!(out.contains("cache entries"), "{out}");
    assert_eq!(
        blobs(),
        before - 4,
        "and the layer and its pack (its uncompressed tar), with the cache"
    );
    // What remains still exports and validates.
    sb.kiln(&["export", "app", "-o", sb.path("a.tar").to_str().unwrap()])
        .ok();
    let out = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=app:latest",
            sb.store().to_str().unwrap(),
        ],
    );
    assert!(out.contains("Validation succeeded"), "{out}");
    // --all also drops untagged images.
    sb.write("ctx/f", "3");
    sb.build("ctx", &[]);
    sb.kiln(&["rmi", "app"]).ok();
    let out = sb.kiln(&["prune", "--all"]).ok().stdout;
    assert!(out.contains("1 untagged image(s)"), "{out}");
    assert_eq!(blobs(), 0);
}

#[test]
fn concurrent_builds_into_one_store_keep_every_tag() {
    let sb = Sandbox::new();
    for i in 0..4 {
        sb.write(&format!("ctx{i}/f"), vec![i as u8; 1 << 20]);
        sb.write(&format!("ctx{i}/Kilnfile"), "FROM scratch\nCOPY f /f\n");
    }
    let sb = std::sync::Arc::new(sb);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let sb = std::sync::Arc::clone(&sb);
            std::thread::spawn(move || sb.build(&format!("ctx{i}"), &["-t", &format!("c:{i}")]))
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let listing = sb.kiln(&["images"]).ok().stdout;
    for (i, id) in ids.iter().enumerate() {
        assert!(listing.contains(&id[7..19]), "{listing}");
        // skopeo resolves each tag; export reads and verifies every blob.
        let out = tool(
            "skopeo",
            &["inspect", &format!("oci:{}:c:{i}", sb.store().display())],
        );
        assert!(out.contains(id.as_str()), "{out}");
        sb.kiln(&[
            "export",
            &format!("c:{i}"),
            "-o",
            sb.path(&format!("c{i}.tar")).to_str().unwrap(),
        ])
        .ok();
    }
}

#[test]
fn corrupt_blobs_are_detected_not_trusted() {
    let sb = Sandbox::new();
    sb.write("ctx/f", "precious");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY f /f\n");
    sb.build("ctx", &["-t", "c"]);
    let layer = sb.inspect("c")["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = sb
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let err = sb
        .kiln(&["export", "c", "-o", sb.path("x.tar").to_str().unwrap()])
        .fails(1)
        .stderr;
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(!sb.path("x.tar").exists(), "no partial output");
}

#[test]
fn the_store_flag_and_variable_pick_the_store() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\n");
    let other = sb.path("elsewhere");
    sb.kiln(&[
        "--store",
        other.to_str().unwrap(),
        "build",
        "-q",
        "-t",
        "x",
        "ctx",
    ])
    .ok();
    assert!(other.join("index.json").is_file() && other.join("oci-layout").is_file());
    assert!(!sb.kiln(&["images"]).ok().stdout.contains('x'));
}
