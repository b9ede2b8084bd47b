//! The "Linux image pushed by skopeo" fixture: a tiny linux/amd64 OCI image
//! made with umoci alone (no network), byte for byte the same on every run.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::util::tool;

/// The files of the image made by [`make_linux_image`], as (path, contents).
pub const LINUX_IMAGE_FILES: &[(&str, &str)] = &[
    (
        "etc/os-release",
        "NAME=\"Kiln Test Linux\"\nID=kiln-test\nVERSION_ID=1\n",
    ),
    ("bin/hello.txt", "hello from a linux image\n"),
];

/// The image's `Cmd`.
pub const LINUX_IMAGE_CMD: &[&str] = &["/bin/cat", "/bin/hello.txt"];

/// Every timestamp of the image (files, config, history): 2023-11-14T22:13:20Z.
const CREATED: &str = "2023-11-14T22:13:20Z";
const MTIME_SECS: u64 = 1_700_000_000;

/// Creates an OCI image layout at `dir` holding one image tagged `latest`:
/// os linux, architecture amd64, one layer with [`LINUX_IMAGE_FILES`], Cmd
/// [`LINUX_IMAGE_CMD`]. Returns the reference skopeo takes, `oci:DIR:latest`.
///
/// Made with umoci's unpack/repack: umoci 0.4.7's `insert` writes layers
/// without the tar end-of-archive blocks (umoci#436).
pub fn make_linux_image(dir: &Path) -> String {
    let layout = dir.to_str().expect("a UTF-8 path");
    let image = format!("{layout}:latest");
    let scratch = tempfile::tempdir().unwrap();
    let bundle = scratch.path().join("bundle");
    let bundle = bundle.to_str().unwrap();

    tool("umoci", &["init", "--layout", layout]);
    tool("umoci", &["new", "--image", &image]);
    tool(
        "umoci",
        &["unpack", "--rootless", "--image", &image, bundle],
    );

    let rootfs = Path::new(bundle).join("rootfs");
    for (path, contents) in LINUX_IMAGE_FILES {
        let file = rootfs.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, contents).unwrap();
        set_mode(&file, 0o644);
    }
    // Fixed times for every file and directory, the root included (after
    // all the writes, which change their directories' times).
    let mut dirs = std::collections::BTreeSet::from([rootfs.clone()]);
    for (path, _) in LINUX_IMAGE_FILES {
        let file = rootfs.join(path);
        stamp(&file);
        dirs.extend(
            file.ancestors()
                .skip(1)
                .take_while(|d| *d != rootfs)
                .map(Path::to_path_buf),
        );
    }
    for d in &dirs {
        set_mode(d, 0o755);
        stamp(d);
    }

    tool(
        "umoci",
        &[
            "repack",
            "--image",
            &image,
            "--history.created",
            CREATED,
            "--history.created_by",
            "kiln e2e fixture: files",
            bundle,
        ],
    );
    let mut config = vec![
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.env",
        "PATH=/bin",
        "--created",
        CREATED,
        "--author",
        "kiln e2e",
        "--history.created",
        CREATED,
        "--history.created_by",
        "kiln e2e fixture: config",
    ];
    for arg in LINUX_IMAGE_CMD {
        config.extend_from_slice(&["--config.cmd", arg]);
    }
    tool("umoci", &config);
    // The blobs of the intermediate steps.
    tool("umoci", &["gc", "--layout", layout]);
    format!("oci:{image}")
}

fn stamp(path: &Path) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    fs::File::open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}
