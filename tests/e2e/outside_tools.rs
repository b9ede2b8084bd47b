//! What skopeo, umoci and oci-image-tool make of kiln's output.

use std::fs;

use kiln::layer::{Content, LayerOptions, PendingChanges, write_layer};
use kiln::snapshot::{Change, ImagePath, Meta, Node};
use kiln::store::{Descriptor, MANIFEST_MEDIA_TYPE, Store};

use crate::util::{Sandbox, tool};

/// Builds examples/hello (and, the first time, the toolbox it starts from).
fn hello(sb: &Sandbox, extra: &[&str]) -> String {
    if !sb.path("examples").exists() {
        sb.examples();
    }
    let mut args = vec!["-t", "hello"];
    args.extend_from_slice(extra);
    sb.build("examples/hello", &args)
}

#[test]
fn skopeo_reads_the_store_the_archive_and_the_export() {
    let sb = Sandbox::new();
    let archive = sb.path("hello-oci.tar");
    let id = hello(
        &sb,
        &["--output", &format!("type=oci,dest={}", archive.display())],
    );
    let store_ref = format!("oci:{}:hello:latest", sb.store().display());
    let info: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", &store_ref])).unwrap();
    assert_eq!(info["Digest"], id.as_str());
    assert_eq!(info["Os"], "wasi");
    assert_eq!(info["Labels"]["org.opencontainers.image.title"], "hello");

    let out = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    );
    assert!(out.contains(&id), "{out}");

    // skopeo copy reads every blob and checks every digest.
    let copied = sb.path("copied");
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &store_ref,
            &format!("dir:{}", copied.display()),
        ],
    );
    assert!(copied.join("manifest.json").is_file());
    let exported = sb.path("exported.tar");
    sb.kiln(&["export", "hello", "-o", exported.to_str().unwrap()])
        .ok();
    let out = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", exported.display())],
    );
    assert!(out.contains(&id), "{out}");
    // The export of an image is byte-identical each time.
    let again = sb.path("again.tar");
    sb.kiln(&["export", "hello", "-o", again.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(&exported).unwrap(), fs::read(&again).unwrap());
    tool(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci-archive:{}", archive.display()),
            &format!("oci:{}:roundtrip", sb.path("layout2").display()),
        ],
    );
}

#[test]
fn oci_image_tool_validates_the_store_and_layouts() {
    let sb = Sandbox::new();
    let layout = sb.path("layout");
    hello(
        &sb,
        &[
            "--output",
            &format!("type=oci,dest={},tar=false", layout.display()),
        ],
    );
    for dir in [sb.store(), layout] {
        let out = tool(
            "oci-image-tool",
            &[
                "validate",
                "--type",
                "image",
                "--ref",
                "name=hello:latest",
                dir.to_str().unwrap(),
            ],
        );
        assert!(out.contains("Validation succeeded"), "{out}");
    }
    // The archive, unpacked (oci-image-tool cannot walk archives itself).
    let archive = sb.path("a.tar");
    hello(
        &sb,
        &["--output", &format!("type=oci,dest={}", archive.display())],
    );
    let unpacked = sb.path("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(fs::File::open(&archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let out = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=hello:latest",
            unpacked.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Validation succeeded"), "{out}");
}

#[test]
fn umoci_unpacks_a_linux_build() {
    let sb = Sandbox::new();
    sb.examples();
    // umoci only unpacks Linux images: the toolbox and hello, for linux/amd64.
    let linux = ["--platform", "linux/amd64"];
    sb.build(
        "examples/toolbox",
        &[&["-t", "toolbox"][..], &linux].concat(),
    );
    hello(&sb, &linux);
    let bundle = sb.umoci_unpack("hello:latest");
    let root = bundle.join("rootfs");
    // The toolbox's tools are symlinks to its one program.
    assert!(root.join("bin/toolbox.wasm").is_file());
    for tool in ["cat", "ls", "tar", "sha256sum"] {
        let link = fs::read_link(root.join("bin").join(tool)).unwrap();
        assert_eq!(link, std::path::Path::new("toolbox.wasm"), "{tool}");
    }
    // The RUN step's archive holds the site.
    let tgz = fs::File::open(root.join("srv/site.tgz")).unwrap();
    let mut names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(tgz))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with("index.html")), "{names:?}");
    assert_eq!(
        fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello from kiln 1.0.0\n"
    );
    assert!(root.join("srv/site/index.html").is_file());
    assert!(root.join("srv/site/css/site.css").is_file());
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["cwd"], "/srv/site");
}

/// A whiteout and an opaque directory written by kiln's layer writer are
/// applied by umoci: deleted lower files are gone, replaced dirs are empty.
#[test]
fn umoci_applies_kilns_whiteouts() {
    let sb = Sandbox::new();
    let store = Store::open(sb.store()).unwrap();
    let p = |s: &str| ImagePath::parse(s).unwrap();
    let dir = || Change::Put(Node::Dir(Meta::root(0o755, 0)));
    let file = |b: &str| {
        Change::Put(Node::File(
            Meta::root(0o644, 0),
            Content::Bytes(b.as_bytes().to_vec()),
        ))
    };
    let mut lower = PendingChanges::new();
    for (path, change) in [
        ("keep", dir()),
        ("keep/a", file("a")),
        ("keep/b", file("b")),
        ("gone", dir()),
        ("gone/x", file("x")),
        ("opaque", dir()),
        ("opaque/old", file("old")),
    ] {
        lower.insert(p(path), change);
    }
    let mut upper = PendingChanges::new();
    upper.insert(p("keep/a"), Change::Whiteout);
    upper.insert(p("gone"), Change::Whiteout);
    upper.insert(p("opaque"), Change::Opaque(Meta::root(0o755, 0)));
    upper.insert(p("opaque/new"), file("new"));
    let opts = LayerOptions::default();
    let l1 = write_layer(&store, lower, &opts).unwrap();
    let l2 = write_layer(&store, upper, &opts).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l1.diff_id, l2.diff_id]},
        "config": {},
    });
    let config_bytes = kiln::json::canonical(&config);
    let config_digest = store.put_blob(&config_bytes).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": [l1.descriptor, l2.descriptor],
    });
    let manifest_bytes = kiln::json::canonical(&manifest);
    let m = store.put_blob(&manifest_bytes).unwrap();
    store
        .add_image(
            &Descriptor::new(MANIFEST_MEDIA_TYPE, m, manifest_bytes.len() as u64),
            &["wh:latest".into()],
        )
        .unwrap();

    let bundle = sb.umoci_unpack("wh:latest");
    let root = bundle.join("rootfs");
    assert!(!root.join("keep/a").exists(), "whiteout of a file");
    assert_eq!(fs::read_to_string(root.join("keep/b")).unwrap(), "b");
    assert!(!root.join("gone").exists(), "whiteout of a directory");
    let opaque: Vec<_> = fs::read_dir(root.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        opaque,
        vec!["new"],
        "an opaque dir hides the lower contents"
    );
    // kiln reads the same image back to the same filesystem.
    sb.write("ctx/Kilnfile", "FROM wh\n");
    let out = sb.path("fs.tar");
    sb.build(
        "ctx",
        &["--output", &format!("type=tar,dest={}", out.display())],
    );
    let names: Vec<String> = crate::util::tar_entries(&fs::read(out).unwrap())
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["keep/", "keep/b", "opaque/", "opaque/new"]);
}
