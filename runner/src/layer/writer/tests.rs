//! Layer writer tests: order, headers, whiteouts, hardlinks, determinism.

use std::io::Read;

use super::*;
use crate::layer::{Compression, Content, LayerOptions, PendingChanges};
use crate::snapshot::{Change, ImagePath, Meta, Node};
use crate::store::Store;

fn p(s: &str) -> ImagePath {
    ImagePath::parse(s).unwrap()
}

fn meta(mode: u32, mtime: i64) -> Meta {
    Meta {
        mode,
        uid: 1000,
        gid: 100,
        mtime,
    }
}

fn sample() -> PendingChanges {
    let mut c = PendingChanges::new();
    c.insert(p("app"), Change::Put(Node::Dir(meta(0o755, 10))));
    c.insert(
        p("app/z.txt"),
        Change::Put(Node::File(
            meta(0o644, 5_000_000_000),
            Content::Bytes(b"zzz".to_vec()),
        )),
    );
    c.insert(
        p("app/a.txt"),
        Change::Put(Node::File(
            meta(0o600, 20),
            Content::Reader {
                size: 5,
                open: std::sync::Arc::new(|| Ok(Box::new(&b"hello"[..]))),
                origin: "test".into(),
                digest: None,
            },
        )),
    );
    c.insert(
        p("app/link"),
        Change::Put(Node::Symlink(meta(0o777, 0), "a.txt".into())),
    );
    c.insert(p("old"), Change::Whiteout);
    c.insert(p("cache"), Change::Opaque(meta(0o700, 0)));
    c.insert(
        p(&format!("deep/{}", "n".repeat(120))),
        Change::Put(Node::File(meta(0o644, 0), Content::Bytes(vec![]))),
    );
    c
}

/// (path, type, mode, uid, gid, mtime, contents or link target)
type TarEntry = (String, char, u32, u64, u64, u64, String);

fn untar(store: &Store, layer: &WrittenLayer) -> (Vec<u8>, Vec<TarEntry>) {
    let mut blob = Vec::new();
    store
        .open_blob(&layer.descriptor.digest)
        .unwrap()
        .read_to_end(&mut blob)
        .unwrap();
    let tar_bytes = match layer.descriptor.media_type.as_str() {
        crate::layer::MEDIA_TYPE_GZIP => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        crate::layer::MEDIA_TYPE_ZSTD => zstd::decode_all(&blob[..]).unwrap(),
        _ => blob,
    };
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut body = String::new();
        e.read_to_string(&mut body).unwrap();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or(body);
        entries.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            match h.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => 'f',
            },
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            link,
        ));
    }
    (tar_bytes, entries)
}

#[test]
fn writes_sorted_entries_with_metadata_from_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = write_layer(&store, sample(), &LayerOptions::default()).unwrap();
    let (tar_bytes, entries) = untar(&store, &layer);
    assert_eq!(layer.diff_id, crate::digest::Digest::of(&tar_bytes));
    assert_eq!(layer.tar_size, tar_bytes.len() as u64);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let long = format!("deep/{}", "n".repeat(120));
    assert_eq!(
        names,
        vec![
            "app/",
            "app/a.txt",
            "app/link",
            "app/z.txt",
            "cache/",
            "cache/.wh..wh..opq",
            &long,
            ".wh.old"
        ]
    );
    assert_eq!(
        entries[1],
        (
            "app/a.txt".into(),
            'f',
            0o600,
            1000,
            100,
            20,
            "hello".into()
        )
    );
    assert_eq!(entries[2].1, 'l');
    assert_eq!(entries[2].6, "a.txt");
    assert_eq!(entries[4].2, 0o700);
    // Reader contents were copied into the store on the way.
    let f = match layer.changes.get(&p("app/a.txt")).unwrap() {
        Change::Put(Node::File(_, f)) => *f,
        other => panic!("{other:?}"),
    };
    let mut s = String::new();
    store
        .open_content(&f)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
}

#[test]
fn clamps_mtimes_to_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let opts = LayerOptions {
        clamp_mtime: Some(1_000),
        ..Default::default()
    };
    let (_, entries) = untar(&store, &write_layer(&store, sample(), &opts).unwrap());
    let z = entries.iter().find(|e| e.0 == "app/z.txt").unwrap();
    assert_eq!(z.5, 1_000);
    let a = entries.iter().find(|e| e.0 == "app/a.txt").unwrap();
    assert_eq!(a.5, 20, "earlier mtimes are kept");
}

#[test]
fn output_is_identical_across_stores_and_codecs_are_stable() {
    for compression in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Uncompressed,
    ] {
        let opts = LayerOptions {
            compression,
            clamp_mtime: None,
            guard: None,
            cancel: None,
            threads: 1,
        };
        // One compressing thread or four: the same blob.
        let four = LayerOptions {
            threads: 4,
            ..opts.clone()
        };
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let l1 = write_layer(&Store::open(d1.path()).unwrap(), sample(), &opts).unwrap();
        let l2 = write_layer(&Store::open(d2.path()).unwrap(), sample(), &four).unwrap();
        assert_eq!(l1.descriptor, l2.descriptor, "{compression}");
        assert_eq!(l1.diff_id, l2.diff_id);
        assert_eq!(l1.descriptor.media_type, compression.media_type());
        if compression == Compression::Uncompressed {
            assert_eq!(l1.descriptor.digest, l1.diff_id);
        }
        let (_, entries) = untar(&Store::open(d1.path()).unwrap(), &l1);
        assert_eq!(entries.len(), 8);
    }
}

/// Every file of `layer`, read back through the store, with its bytes.
fn stored_files(store: &Store, layer: &WrittenLayer) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (path, change) in &layer.changes {
        if let Change::Put(Node::File(_, f)) = change {
            let packed = f.at.expect("every file a layer holds is in its pack");
            assert_eq!(packed.layer, layer.diff_id, "{path}");
            let mut bytes = Vec::new();
            store
                .open_content(f)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            assert_eq!(bytes.len() as u64, f.size);
            out.push((path.as_str().to_string(), bytes));
        }
    }
    out
}

#[test]
fn every_file_is_read_from_the_layers_pack_and_written_once() {
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    for compression in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Uncompressed,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = write_layer(&store, sample(), &LayerOptions::default()).unwrap();
        let mut changes = sample();
        // A stored file (moved into a new layer), a large one, and one
        // whose name needs a long-name header before its data.
        let Some(Change::Put(Node::File(m, a))) = first.changes.get(&p("app/a.txt")).cloned()
        else {
            panic!()
        };
        changes.insert(
            p("app/again"),
            Change::Put(Node::File(m, Content::Stored(a))),
        );
        changes.insert(
            p(&format!("{}/big", "long".repeat(40))),
            Change::Put(Node::File(m, Content::Bytes(big.clone()))),
        );
        let opts = LayerOptions {
            compression,
            threads: 2,
            ..LayerOptions::default()
        };
        let layer = write_layer(&store, changes, &opts).unwrap();
        let files = stored_files(&store, &layer);
        let want: Vec<(String, Vec<u8>)> = vec![
            ("app/a.txt".into(), b"hello".to_vec()),
            ("app/again".into(), b"hello".to_vec()),
            ("app/z.txt".into(), b"zzz".to_vec()),
            (format!("deep/{}", "n".repeat(120)), Vec::new()),
            (format!("{}/big", "long".repeat(40)), big.clone()),
        ];
        let mut files = files;
        files.sort();
        let mut want = want;
        want.sort();
        assert_eq!(files, want, "{compression}");
        // The pack is the uncompressed tar; no file has a copy of its own.
        let (tar_bytes, _) = untar(&store, &layer);
        assert_eq!(
            std::fs::read(store.blob_path(&layer.diff_id)).unwrap(),
            tar_bytes
        );
        let loose = std::fs::read_dir(dir.path().join("kiln/files/sha256")).unwrap();
        assert_eq!(loose.count(), 0, "{compression}");
        // The index keeps the places: a snapshot read back reads the same.
        store
            .put_layer_index(&layer.diff_id, &layer.changes)
            .unwrap();
        let back = store.layer_index(&layer.diff_id).unwrap().unwrap();
        assert_eq!(back, layer.changes);
        // Reading the blob (an image kiln did not build) finds the same.
        if compression != Compression::Uncompressed {
            std::fs::remove_file(store.blob_path(&layer.diff_id)).unwrap();
        }
        let read = crate::layer::read_layer(&store, &layer.descriptor, &layer.diff_id).unwrap();
        assert_eq!(read, layer.changes, "{compression}");
        assert_eq!(
            std::fs::read(store.blob_path(&layer.diff_id)).unwrap(),
            tar_bytes
        );
    }
}

#[test]
fn a_stored_file_damaged_in_its_pack_is_not_copied_into_a_new_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = write_layer(&store, sample(), &LayerOptions::default()).unwrap();
    let Some(Change::Put(Node::File(m, a))) = first.changes.get(&p("app/a.txt")).cloned() else {
        panic!()
    };
    // "hello" becomes "hellO" in the pack: same length, other bytes.
    let pack = store.blob_path(&first.diff_id);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = a.at.unwrap().offset as usize;
    assert_eq!(&bytes[at..at + 5], b"hello");
    bytes[at + 4] = b'O';
    std::fs::write(&pack, bytes).unwrap();
    let mut changes = PendingChanges::new();
    changes.insert(p("moved"), Change::Put(Node::File(m, Content::Stored(a))));
    let err = write_layer(&store, changes, &LayerOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

#[test]
fn hardlinks_point_backwards_in_tar_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    c.insert(
        p("z/file"),
        Change::Put(Node::File(meta(0o644, 0), Content::Bytes(b"x".to_vec()))),
    );
    c.insert(p("a/link"), Change::Hardlink(p("z/file")));
    c.insert(p("m/link"), Change::Hardlink(p("z/file")));
    let layer = write_layer(&store, c, &LayerOptions::default()).unwrap();
    let (_, entries) = untar(&store, &layer);
    let files: Vec<(&str, char, &str)> = entries
        .iter()
        .map(|e| (e.0.as_str(), e.1, e.6.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("a/link", 'f', "x"),
            ("m/link", 'h', "a/link"),
            ("z/file", 'h', "a/link")
        ]
    );
}

#[test]
fn dangling_hardlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    c.insert(p("a"), Change::Hardlink(p("nowhere")));
    let err = write_layer(&store, c, &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, LayerError::DanglingHardlink { .. }), "{err}");
}

#[test]
fn a_source_that_shrinks_is_an_error_not_a_torn_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    c.insert(
        p("f"),
        Change::Put(Node::File(
            meta(0o644, 0),
            Content::Reader {
                size: 10,
                open: std::sync::Arc::new(|| Ok(Box::new(&b"short"[..]))),
                origin: "context file f".into(),
                digest: None,
            },
        )),
    );
    let err = write_layer(&store, c, &LayerOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("context file f") && err.contains("5 bytes early"),
        "{err}"
    );
    // Nothing partial was published.
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn the_leak_guard_stops_a_layer_holding_a_secret() {
    use crate::secrets::{LeakScanner, Secret};
    let secret = Secret::new("npm_token", b"npm_TOKEN_value_123".to_vec());
    let scanner = std::sync::Arc::new(LeakScanner::new([&secret]).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let leaky = || {
        let mut c = PendingChanges::new();
        c.insert(p("app"), Change::Put(Node::Dir(meta(0o755, 0))));
        c.insert(
            p("app/.npmrc"),
            Change::Put(Node::File(
                meta(0o600, 0),
                Content::Reader {
                    size: 42,
                    open: std::sync::Arc::new(|| {
                        Ok(Box::new(&b"//registry/:_authToken=npm_TOKEN_value_123"[..]))
                    }),
                    origin: "test".into(),
                    digest: None,
                },
            )),
        );
        c
    };
    let fail = LayerOptions {
        guard: Some(crate::layer::LeakGuard {
            scanner: scanner.clone(),
            fail: true,
        }),
        ..Default::default()
    };
    let err = write_layer(&store, leaky(), &fail).unwrap_err().to_string();
    assert!(
        err.contains("/app/.npmrc contains secret \"npm_token\" (raw)"),
        "{err}"
    );
    // Nothing of the leaking layer was committed.
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("kiln/files/sha256"))
            .unwrap()
            .count(),
        0
    );
    // Names and link targets are checked too; warn mode records and goes on.
    let warn = LayerOptions {
        guard: Some(crate::layer::LeakGuard {
            scanner,
            fail: false,
        }),
        ..Default::default()
    };
    let mut c = leaky();
    c.insert(
        p("npm_TOKEN_value_123"),
        Change::Put(Node::Dir(meta(0o755, 0))),
    );
    let layer = write_layer(&store, c, &warn).unwrap();
    let hits: Vec<String> = layer
        .leaks
        .iter()
        .map(|(path, h)| format!("{path} {}", h.id))
        .collect();
    assert_eq!(
        hits,
        ["/app/.npmrc npm_token", "/npm_TOKEN_value_123 npm_token"]
    );
}

#[test]
fn a_cancelled_write_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = LayerOptions {
        cancel: Some(cancel),
        ..Default::default()
    };
    let err = write_layer(&store, sample(), &opts).unwrap_err();
    assert!(matches!(err, crate::layer::LayerError::Cancelled), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn gzip_bytes_do_not_depend_on_which_worker_deflated_which_chunk() {
    // The tar of 300 files of repetitive text: with deflate states reset
    // and reused from chunk to chunk, its gzip blob was 22,024 or 22,027
    // bytes long, depending on which worker had deflated what before it
    // (the threads' timing).
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut changes = PendingChanges::new();
    changes.insert(p("app"), Change::Put(Node::Dir(Meta::root(0o755, 0))));
    for i in 0..300 {
        let bytes = format!("file {i}\n").repeat(i * 7).into_bytes();
        changes.insert(
            p(&format!("app/f{i:03}")),
            Change::Put(Node::File(Meta::root(0o644, 0), Content::Bytes(bytes))),
        );
    }
    let opts = LayerOptions {
        compression: Compression::Uncompressed,
        ..LayerOptions::default()
    };
    let layer = write_layer(&store, changes, &opts).unwrap();
    let tar = store.read_blob(&layer.descriptor.digest).unwrap();
    let gzip = |threads: usize, piece: usize| {
        let mut e =
            super::super::compress::Encoder::new(Compression::Gzip, Vec::new(), threads).unwrap();
        for part in tar.chunks(piece) {
            e.write_all(part).unwrap();
        }
        e.finish().unwrap()
    };
    let one = gzip(1, 1 << 30);
    for n in 0..60 {
        let threads = 2 + n % 3;
        let other = gzip(threads, [256 << 10, 1000][n % 2]);
        assert!(
            other == one,
            "run {n}, {threads} threads: {} bytes, not {}",
            other.len(),
            one.len()
        );
    }
}
