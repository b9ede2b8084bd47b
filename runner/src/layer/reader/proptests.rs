//! Property tests of the layer reader: arbitrary bytes and mutated valid
//! layers, as plain tar, gzip and zstd, read under small limits. Each gives
//! a change set or an error, never a panic, a hang or unbounded memory;
//! a change set read holds only what kiln would ship (no `..`, hard links
//! only to files of the layer). Case count: `crate::proptests::config`.

use proptest::prelude::*;

use super::tests::{compress, entry, file, read, tar_of};
use super::*;
use crate::store::Store;

const MEDIA_TYPES: [&str; 3] = [MEDIA_TYPE_TAR, MEDIA_TYPE_GZIP, MEDIA_TYPE_ZSTD];

/// Small enough that no case can take much memory or disk.
const LIMITS: ReadLimits = ReadLimits {
    max_bytes: 4 << 20,
    max_entries: 1000,
};

/// A valid layer with one entry of every kind the reader understands.
fn valid_tar() -> Vec<u8> {
    tar_of(&[
        entry("app/", EntryType::Directory, "", b""),
        file("app/a.txt", b"hello, layer"),
        entry("app/b.txt", EntryType::Link, "app/a.txt", b""),
        entry("app/up", EntryType::Symlink, "../app/a.txt", b""),
        entry("app/abs", EntryType::Symlink, "/etc/passwd", b""),
        file("app/.wh.gone", b""),
        entry("cache/", EntryType::Directory, "", b""),
        file("cache/.wh..wh..opq", b""),
        file("z", &[7u8; 3000]),
    ])
}

/// Byte edits: (position, new byte), positions taken modulo the length.
fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, b) in edits {
        let len = bytes.len();
        if len > 0 {
            bytes[at % len] = b;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

/// What a change set kiln accepted must satisfy.
fn check_shippable(changes: &ChangeSet) {
    for (path, change) in changes {
        assert!(!path.components().any(|c| c == ".." || c == "."), "{path}");
        if let Change::Hardlink(target) = change {
            assert!(
                matches!(changes.get(target), Some(Change::Put(Node::File(..)))),
                "{path} -> {target}"
            );
        }
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

proptest! {
    #![proptest_config(crate::proptests::config(96))]

    #[test]
    fn arbitrary_bytes_read_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        kind in 0..3usize,
    ) {
        let (_d, store) = store();
        // As the blob, and as the tar inside a valid compressed stream.
        let _ = read(&store, &bytes, &bytes, MEDIA_TYPES[kind], Some(LIMITS));
        let blob = compress(&bytes, MEDIA_TYPES[kind]);
        if let Ok(changes) = read(&store, &bytes, &blob, MEDIA_TYPES[kind], Some(LIMITS)) {
            check_shippable(&changes);
        }
    }

    #[test]
    fn mutated_layers_read_or_fail_cleanly(
        edits in edits(),
        cut in prop::option::of(any::<usize>()),
        kind in 0..3usize,
        in_blob in any::<bool>(),
    ) {
        let (_d, store) = store();
        let media_type = MEDIA_TYPES[kind];
        let valid = valid_tar();
        let (tar, blob) = if in_blob {
            // Damage the compressed stream itself.
            let blob = mutate(compress(&valid, media_type), &edits, cut);
            (valid, blob)
        } else {
            let tar = mutate(valid, &edits, cut);
            let blob = compress(&tar, media_type);
            (tar, blob)
        };
        if let Ok(changes) = read(&store, &tar, &blob, media_type, Some(LIMITS)) {
            check_shippable(&changes);
        }
    }

    #[test]
    fn hostile_names_and_links_are_refused_or_kept_inside(
        name in "[./a-c]{1,12}",
        target in "[./a-c]{0,12}",
        kind in prop::sample::select(vec![
            EntryType::Regular, EntryType::Directory, EntryType::Symlink,
            EntryType::Link, EntryType::Fifo, EntryType::Char,
        ]),
    ) {
        let (_d, store) = store();
        let tar = tar_of(&[file("a", b"x"), entry(&name, kind, &target, b"")]);
        if let Ok(changes) = read(&store, &tar, &tar, MEDIA_TYPE_TAR, Some(LIMITS)) {
            check_shippable(&changes);
            prop_assert!(!name.split('/').any(|c| c == ".."));
            prop_assert!(!matches!(kind, EntryType::Fifo | EntryType::Char));
        }
    }
}
