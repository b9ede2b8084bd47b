//! What a step may write and hold: one write budget over every writable
//! backend, tmpfs mounts that stay in memory under a default cap, and a
//! bounded number of host handles on the store's contents.

use std::sync::Arc;

use super::super::content::Data;
use super::super::handles;
use super::super::overlay::Kind;
use super::{Fixture, clock, fixture, p, vfs};
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, Meta, Node, Snapshot};
use crate::vfs::*;

const MIB: u64 = 1 << 20;

fn create_flags() -> OpenFlags {
    OpenFlags {
        create: true,
        write: true,
        follow: true,
        ..Default::default()
    }
}

/// Writes `len` bytes of 7s at `path` (in 64 KiB writes, as a guest does).
fn write_len(v: &mut Vfs, path: &str, len: u64) -> VfsResult<()> {
    let root = v.root();
    let n = v.open_at(root, Scope::Clamp, path, create_flags())?;
    let chunk = vec![7u8; 64 << 10];
    let mut at = 0;
    let result = (|| {
        while at < len {
            let take = chunk.len().min((len - at) as usize);
            at += v.write(n, at, &chunk[..take])? as u64;
        }
        Ok(())
    })();
    v.close(n);
    result
}

/// The writable backends a step can have, each mounted at `/m` of a fresh
/// namespace whose write limits are `limits`.
fn with_each_writable_mount(f: &Fixture, limits: WriteLimits, check: impl Fn(&str, &mut Vfs)) {
    let host = tempfile::tempdir().unwrap();
    for kind in ["root", "tmpfs", "cache", "rw bind", "rw stage bind"] {
        let mut v = vfs(f);
        v.set_write_limits(limits);
        let backend: Option<Box<dyn FileSystem>> = match kind {
            "root" => None,
            "tmpfs" => Some(Box::new(tmpfs(f.store.clone(), 2, clock(), None))),
            "cache" | "rw bind" => {
                let dir = host.path().join(kind);
                std::fs::create_dir(&dir).unwrap();
                Some(Box::new(HostFs::open(&dir, false, 2).unwrap()))
            }
            _ => Some(Box::new(OverlayFs::new(
                Arc::clone(&f.lower),
                f.store.clone(),
                2,
                clock(),
            ))),
        };
        if let Some(b) = backend {
            v.mount(&p("m"), b, true).unwrap();
        } else {
            let root = v.root();
            v.mkdir_at(root, Scope::Clamp, "m").unwrap();
        }
        check(kind, &mut v);
    }
}

#[test]
fn the_write_limit_covers_every_writable_mount() {
    let f = fixture();
    let limits = WriteLimits {
        max_bytes: MIB,
        max_files: u64::MAX,
    };
    with_each_writable_mount(&f, limits, |kind, v| {
        assert_eq!(write_len(v, "m/f", MIB), Ok(()), "{kind}");
        assert_eq!(write_len(v, "m/g", 1), Err(Errno::Nospc), "{kind}");
        assert_eq!(v.limit_hit(), Some(LimitHit::Bytes), "{kind}");
        // What the step's outcome is read from.
        assert_eq!(v.overlay().limit_hit(), Some(LimitHit::Bytes), "{kind}");
    });
}

#[test]
fn the_file_limit_covers_every_writable_mount() {
    let f = fixture();
    let limits = WriteLimits {
        max_bytes: u64::MAX,
        max_files: 3,
    };
    with_each_writable_mount(&f, limits, |kind, v| {
        // The root's `m` counts too when it is a plain directory.
        let made = if kind == "root" { 1 } else { 0 };
        let root = v.root();
        for i in 0..3 - made {
            v.mkdir_at(root, Scope::Clamp, &format!("m/d{i}")).unwrap();
        }
        assert_eq!(
            v.symlink_at("x", root, Scope::Clamp, "m/new-link"),
            Err(Errno::Nospc),
            "{kind}"
        );
        assert_eq!(v.limit_hit(), Some(LimitHit::Files), "{kind}");
    });
}

#[test]
fn the_root_and_the_mounts_share_one_budget() {
    let f = fixture();
    let host = tempfile::tempdir().unwrap();
    let mut v = vfs(&f);
    v.set_write_limits(WriteLimits {
        max_bytes: 3 * MIB,
        max_files: u64::MAX,
    });
    let cache = HostFs::open(host.path(), false, 2).unwrap();
    v.mount(&p("cache"), Box::new(cache), true).unwrap();
    let t = tmpfs(f.store.clone(), 3, clock(), None);
    v.mount(&p("tmp"), Box::new(t), true).unwrap();
    write_len(&mut v, "a", MIB).unwrap();
    write_len(&mut v, "cache/b", MIB).unwrap();
    write_len(&mut v, "tmp/c", MIB).unwrap();
    assert_eq!(v.budget().bytes(), 3 * MIB);
    assert_eq!(write_len(&mut v, "d", 1), Err(Errno::Nospc));
    assert_eq!(v.limit_hit(), Some(LimitHit::Bytes));
}

#[test]
fn freed_bytes_are_given_back_but_only_what_the_step_wrote() {
    let f = fixture();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("old"), vec![1u8; 2 << 20]).unwrap();
    let mut v = vfs(&f);
    v.set_write_limits(WriteLimits {
        max_bytes: MIB + MIB / 2,
        max_files: u64::MAX,
    });
    let cache = HostFs::open(host.path(), false, 2).unwrap();
    v.mount(&p("cache"), Box::new(cache), true).unwrap();
    let root = v.root();
    // Written, removed, written again: the space was freed.
    write_len(&mut v, "cache/new", MIB).unwrap();
    v.unlink_at(root, Scope::Clamp, "cache/new").unwrap();
    write_len(&mut v, "cache/new", MIB).unwrap();
    assert_eq!(v.budget().bytes(), MIB);
    // Truncation gives back too.
    let n = v
        .open_at(root, Scope::Clamp, "cache/new", create_flags())
        .unwrap();
    v.set_size(n, MIB / 2).unwrap();
    v.close(n);
    assert_eq!(v.budget().bytes(), MIB / 2);
    // Removing what was there before the step pays for nothing.
    v.unlink_at(root, Scope::Clamp, "cache/old").unwrap();
    assert_eq!(v.budget().bytes(), MIB / 2);
    assert_eq!(write_len(&mut v, "cache/more", MIB + 1), Err(Errno::Nospc));
    // A removed file still open keeps its bytes until its last close.
    let mut v = vfs(&f);
    v.set_write_limits(WriteLimits {
        max_bytes: MIB,
        max_files: u64::MAX,
    });
    let cache = HostFs::open(host.path(), false, 2).unwrap();
    v.mount(&p("cache"), Box::new(cache), true).unwrap();
    let root = v.root();
    let n = v
        .open_at(root, Scope::Clamp, "cache/held", create_flags())
        .unwrap();
    v.write(n, 0, &vec![1u8; MIB as usize]).unwrap();
    v.unlink_at(root, Scope::Clamp, "cache/held").unwrap();
    assert_eq!(write_len(&mut v, "x", 1), Err(Errno::Nospc));
    v.close(n);
    assert_eq!(v.budget().bytes(), 0);
    write_len(&mut v, "x", MIB).unwrap();
}

#[test]
fn a_tmpfs_has_a_default_size_and_its_own_cap_is_only_enospc() {
    let f = fixture();
    let mut v = vfs(&f);
    v.mount(
        &p("tmp"),
        Box::new(tmpfs(f.store.clone(), 2, clock(), None)),
        true,
    )
    .unwrap();
    v.mount(
        &p("small"),
        Box::new(tmpfs(f.store.clone(), 3, clock(), Some(MIB))),
        true,
    )
    .unwrap();
    let root = v.root();
    let n = v
        .open_at(root, Scope::Clamp, "tmp/f", create_flags())
        .unwrap();
    assert_eq!(v.set_size(n, DEFAULT_TMPFS_SIZE + 1), Err(Errno::Nospc));
    v.write(n, 0, b"fits").unwrap();
    v.close(n);
    assert_eq!(write_len(&mut v, "small/f", MIB + 1), Err(Errno::Nospc));
    v.unlink_at(root, Scope::Clamp, "small/f").unwrap();
    write_len(&mut v, "small/g", MIB).unwrap();
    // A full tmpfs is not the step's limit.
    assert_eq!(v.limit_hit(), None);
}

#[test]
fn tmpfs_bytes_stay_in_memory() {
    let f = fixture();
    let mut t = tmpfs(f.store.clone(), 2, clock(), None);
    let root = t.root();
    let id = t.create_file(root, "big", 0o644).unwrap();
    let data = vec![9u8; 4 * MIB as usize];
    t.write(id, 0, &data).unwrap();
    t.set_size(id, 5 * MIB).unwrap();
    assert!(
        matches!(&t.nodes[&id].kind, Kind::File { data: Data::Mem(v) } if v.len() == 5 * MIB as usize),
        "a tmpfs file past the spill size is still in memory"
    );
    // The root overlay, by contrast, spills large files to the store.
    let mut o = OverlayFs::new(Arc::new(Snapshot::empty()), f.store.clone(), 1, clock());
    let root = o.root();
    let id = o.create_file(root, "big", 0o644).unwrap();
    o.write(id, 0, &data).unwrap();
    assert!(matches!(
        &o.nodes[&id].kind,
        Kind::File {
            data: Data::Temp { .. }
        }
    ));
}

/// An image with `n` files of distinct contents under `/many`.
fn many_files(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    c.insert(p("many"), Change::Put(Node::Dir(Meta::root(0o755, 0))));
    for i in 0..n {
        c.insert(
            p(&format!("many/f{i}")),
            Change::Put(Node::File(
                Meta::root(0o644, 0),
                Content::Bytes(format!("file {i}\n").into_bytes()),
            )),
        );
    }
    let layer = write_layer(&store, c, &LayerOptions::default()).unwrap();
    let mut snap = Snapshot::empty();
    snap.apply(&layer.changes);
    Fixture {
        _dir: dir,
        store,
        lower: Arc::new(snap),
    }
}

#[test]
fn host_handles_stay_bounded_however_many_image_files_are_open() {
    let count = 4 * MAX_CONTENT_HANDLES;
    let f = many_files(count);
    let mut v = vfs(&f);
    let root = v.root();
    let read = |v: &mut Vfs, n: NodeRef, i: usize| {
        let mut buf = [0u8; 32];
        let len = v.read(n, 0, &mut buf).unwrap();
        assert_eq!(&buf[..len], format!("file {i}\n").as_bytes());
    };
    // Every file open at once, each read: handles are evicted and reopened.
    let mut open = Vec::new();
    for i in 0..count {
        let n = v
            .open_at(
                root,
                Scope::Clamp,
                &format!("many/f{i}"),
                OpenFlags::default(),
            )
            .unwrap();
        read(&mut v, n, i);
        open.push(n);
        assert!(handles::open_count() <= MAX_CONTENT_HANDLES);
    }
    for (i, n) in open.iter().enumerate().rev() {
        read(&mut v, *n, i);
    }
    assert!(handles::open_count() <= MAX_CONTENT_HANDLES);
    for n in open {
        v.close(n);
    }
}
