//! The same Kilnfile and context give the same image, whatever the host did
//! to the files (mtimes, creation order, umask) and whichever store.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::util::{Sandbox, layer_tar, tar_entries};

const KILNFILE: &str = "FROM scratch\nARG V=1\nENV V=$V\nWORKDIR /app\nCOPY . ./\nCOPY <<EOF /etc/motd\nhi\nEOF\nCMD [\"x\"]\n";

/// Writes the same files in `order`, with mtimes offset by `age` and file
/// permissions `mode` (as a umask would leave them).
fn make_context(root: &Path, order: &[&str], age: u64, mode: u32) {
    for name in order {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("contents of {name}")).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + age);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
    }
    fs::write(root.join("Kilnfile"), KILNFILE).unwrap();
}

#[test]
fn same_inputs_give_the_same_digest_across_stores_and_context_copies() {
    let a = Sandbox::new();
    let b = Sandbox::new();
    make_context(
        &a.path("ctx"),
        &["src/main.rs", "src/lib.rs", "README", "z/deep/file"],
        0,
        0o644,
    );
    make_context(
        &b.path("other/place"),
        &["z/deep/file", "README", "src/lib.rs", "src/main.rs"],
        86_400 * 365,
        0o664,
    );
    let id_a = a.build("ctx", &["-t", "det"]);
    let id_b = b.build("other/place", &["-t", "det"]);
    assert_eq!(id_a, id_b);
    // Rebuilding into the same store is idempotent too.
    assert_eq!(a.build("ctx", &["-t", "det"]), id_a);
    // A different build arg is a different image.
    assert_ne!(a.build("ctx", &["--build-arg", "V=2"]), id_a);
}

#[test]
fn source_date_epoch_sets_every_timestamp() {
    let sb = Sandbox::new();
    make_context(&sb.path("ctx"), &["f"], 0, 0o644);
    let epoch = "1700000000";
    let id1 = sb
        .kiln_env(
            &["build", "-q", "-t", "sde", "ctx"],
            &[("SOURCE_DATE_EPOCH", epoch)],
        )
        .ok()
        .stdout;
    let id2 = sb.build(
        "ctx",
        &["--build-arg", &format!("SOURCE_DATE_EPOCH={epoch}")],
    );
    assert_eq!(
        id1.trim(),
        id2,
        "the build arg and the environment variable agree"
    );
    assert_ne!(sb.build("ctx", &[]), id2, "without it, timestamps are 0");
    let img = sb.inspect("sde");
    assert_eq!(img["Config"]["created"], "2023-11-14T22:13:20Z");
    for h in img["Config"]["history"].as_array().unwrap() {
        assert_eq!(h["created"], "2023-11-14T22:13:20Z");
    }
    for layer in img["Manifest"]["layers"].as_array().unwrap() {
        let tar = layer_tar(
            &sb.store(),
            layer["digest"].as_str().unwrap(),
            layer["mediaType"].as_str().unwrap(),
        );
        let mut archive = tar::Archive::new(&tar[..]);
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 1_700_000_000);
            assert_eq!(
                (e.header().uid().unwrap(), e.header().gid().unwrap()),
                (0, 0)
            );
            assert_eq!(e.header().username().unwrap(), Some(""));
        }
    }
}

#[test]
fn layer_entries_are_sorted_with_parents_first() {
    let sb = Sandbox::new();
    make_context(
        &sb.path("ctx"),
        // Upper case sorts first, bytewise ("B" beside "b" would be refused:
        // one name on Windows and macOS, see host_neutral.rs).
        &["b/2", "a-b", "a/1", "a/z/3", "C"],
        0,
        0o644,
    );
    sb.build("ctx", &["-t", "sorted"]);
    let img = sb.inspect("sorted");
    let layers = img["Manifest"]["layers"].as_array().unwrap();
    // The COPY . layer is the second (WORKDIR made the first).
    let tar = layer_tar(
        &sb.store(),
        layers[1]["digest"].as_str().unwrap(),
        layers[1]["mediaType"].as_str().unwrap(),
    );
    let names: Vec<String> = tar_entries(&tar).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            "app/C",
            "app/Kilnfile",
            "app/a/",
            "app/a/1",
            "app/a/z/",
            "app/a/z/3",
            "app/a-b",
            "app/b/",
            "app/b/2"
        ]
    );
}

#[test]
fn a_wide_directory_gives_every_file_once_and_the_same_image() {
    // Wide directories in two creation orders; one holds a file past the
    // size whose bytes COPY keeps in memory, one an ignored file.
    let names: Vec<String> = (0..3)
        .flat_map(|d| (0..60).map(move |f| format!("d{d}/f{f:02}")))
        .collect();
    let order: Vec<&str> = names.iter().map(String::as_str).collect();
    let (a, b) = (Sandbox::new(), Sandbox::new());
    make_context(&a.path("ctx"), &order, 0, 0o644);
    let reversed: Vec<&str> = order.iter().rev().copied().collect();
    make_context(&b.path("ctx"), &reversed, 0, 0o644);
    for sb in [&a, &b] {
        fs::write(sb.path("ctx/d1/big"), vec![b'x'; 200 << 10]).unwrap();
        fs::write(sb.path("ctx/.kilnignore"), "d2/f07\n").unwrap();
    }
    let id = a.build("ctx", &["-t", "wide"]);
    assert_eq!(b.build("ctx", &["-t", "wide"]), id);
    let img = a.inspect("wide");
    let layer = &img["Manifest"]["layers"][1];
    let tar = layer_tar(
        &a.store(),
        layer["digest"].as_str().unwrap(),
        layer["mediaType"].as_str().unwrap(),
    );
    let files: Vec<(String, Vec<u8>)> = tar_entries(&tar)
        .into_iter()
        .filter(|e| e.1 == 'f' && e.0.starts_with("app/d"))
        .map(|e| (e.0, e.3))
        .collect();
    assert_eq!(
        files.len(),
        3 * 60 - 1 + 1,
        "every file once, the ignored one left out"
    );
    for (path, bytes) in &files {
        let name = path.trim_start_matches("app/");
        match name {
            "d1/big" => assert_eq!(bytes.len(), 200 << 10),
            "d2/f07" => panic!("an ignored file was copied"),
            _ => assert_eq!(bytes, format!("contents of {name}").as_bytes()),
        }
    }
}

#[test]
fn sources_that_interleave_give_the_layer_of_one_source() {
    // `COPY a b /dst/` merges two directories whose entries interleave
    // (x, y, z/1, z/2): its changes do not come in path order, so its layer
    // is written after the cache lookup, from the plan, where the same
    // files from one directory are written while they are hashed. Both
    // give the same layer, in every compression.
    let sb = Sandbox::new();
    let files = [
        ("two/a/x", "one/x"),
        ("two/b/y", "one/y"),
        ("two/a/z/1", "one/z/1"),
        ("two/b/z/2", "one/z/2"),
    ];
    for (i, (two, one)) in files.iter().enumerate() {
        let body = format!("file {i}\n").repeat(100 * (i + 1));
        sb.write(&format!("ctx/{two}"), &body);
        sb.write(&format!("ctx/{one}"), &body);
    }
    // A file past the size whose bytes COPY keeps in memory.
    sb.write("ctx/two/b/big", vec![b'b'; 100 << 10]);
    sb.write("ctx/one/big", vec![b'b'; 100 << 10]);
    for compression in ["uncompressed", "gzip", "zstd"] {
        let output = format!("type=image,compression={compression}");
        let mut layers = Vec::new();
        for (tag, copy) in [
            ("two", "COPY two/a two/b /dst/"),
            ("one", "COPY one/ /dst/"),
        ] {
            sb.write("ctx/Kilnfile", format!("FROM scratch\n{copy}\n"));
            sb.build("ctx", &["-t", tag, "-o", &output]);
            let img = sb.inspect(tag);
            let layer = img["Manifest"]["layers"][0].clone();
            let tar = layer_tar(
                &sb.store(),
                layer["digest"].as_str().unwrap(),
                layer["mediaType"].as_str().unwrap(),
            );
            let entries: Vec<(String, char, Vec<u8>)> = tar_entries(&tar)
                .into_iter()
                .map(|e| (e.0, e.1, e.3))
                .collect();
            let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(
                names,
                [
                    "dst/", "dst/big", "dst/x", "dst/y", "dst/z/", "dst/z/1", "dst/z/2"
                ],
                "{compression} {copy}"
            );
            assert_eq!(entries[3].2, "file 1\n".repeat(200).as_bytes());
            layers.push(layer["digest"].as_str().unwrap().to_string());
        }
        assert_eq!(layers[0], layers[1], "{compression}");
    }
}
