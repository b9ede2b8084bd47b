//! VFS tests: namespace rules, overlay semantics, and the change sets they
//! produce.

use std::sync::Arc;

use super::*;
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, Meta, Node, Snapshot};
use crate::store::Store;

mod limits;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    lower: Arc<Snapshot>,
}

fn p(s: &str) -> ImagePath {
    ImagePath::parse(s).unwrap()
}

/// A lower image with `/etc/passwd`, `/data/{a,b}`, `/data/sub/c`,
/// `/link -> data/a`, `/abs -> /data`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    let file = |s: &str| {
        Change::Put(Node::File(
            Meta::root(0o644, 10),
            Content::Bytes(s.as_bytes().to_vec()),
        ))
    };
    c.insert(p("etc"), Change::Put(Node::Dir(Meta::root(0o755, 10))));
    c.insert(p("etc/passwd"), file("root:x:0:0::/:/bin/sh\n"));
    c.insert(p("data"), Change::Put(Node::Dir(Meta::root(0o755, 10))));
    c.insert(p("data/a"), file("aaa"));
    c.insert(p("data/b"), file("bbb"));
    c.insert(p("data/sub"), Change::Put(Node::Dir(Meta::root(0o755, 10))));
    c.insert(p("data/sub/c"), file("ccc"));
    c.insert(
        p("link"),
        Change::Put(Node::Symlink(Meta::root(0o777, 10), "data/a".into())),
    );
    c.insert(
        p("abs"),
        Change::Put(Node::Symlink(Meta::root(0o777, 10), "/data".into())),
    );
    let layer = write_layer(&store, c, &LayerOptions::default()).unwrap();
    let mut snap = Snapshot::empty();
    snap.apply(&layer.changes);
    Fixture {
        _dir: dir,
        store,
        lower: Arc::new(snap),
    }
}

fn clock() -> Clock {
    Arc::new(|| 5_000_000_000)
}

fn vfs(f: &Fixture) -> Vfs {
    Vfs::new(OverlayFs::new(
        Arc::clone(&f.lower),
        f.store.clone(),
        1,
        clock(),
    ))
}

fn read_all(v: &mut Vfs, path: &str) -> VfsResult<String> {
    let root = v.root();
    let n = v.open_at(
        root,
        Scope::Clamp,
        path,
        OpenFlags {
            follow: true,
            ..Default::default()
        },
    )?;
    let mut buf = vec![0u8; 1 << 20];
    let len = v.read(n, 0, &mut buf)?;
    v.close(n);
    Ok(String::from_utf8(buf[..len].to_vec()).unwrap())
}

fn write_file(v: &mut Vfs, path: &str, data: &str) -> VfsResult<()> {
    let root = v.root();
    let flags = OpenFlags {
        create: true,
        truncate: true,
        write: true,
        follow: true,
        ..Default::default()
    };
    let n = v.open_at(root, Scope::Clamp, path, flags)?;
    v.write(n, 0, data.as_bytes())?;
    v.close(n);
    Ok(())
}

fn summary(changes: &PendingChanges) -> Vec<String> {
    changes
        .iter()
        .map(|(path, c)| {
            let what = match c {
                Change::Put(Node::Dir(_)) => "dir".to_string(),
                Change::Put(Node::File(_, Content::Stored(_))) => "file(stored)".to_string(),
                Change::Put(Node::File(
                    _,
                    Content::Bytes(b) | Content::Hashed { bytes: b, .. },
                )) => {
                    format!("file({})", String::from_utf8_lossy(b))
                }
                Change::Put(Node::File(_, Content::Reader { size, .. })) => {
                    format!("file({size} bytes)")
                }
                Change::Put(Node::Symlink(_, t)) => format!("symlink({t})"),
                Change::Hardlink(t) => format!("hardlink({t})"),
                Change::Whiteout => "whiteout".into(),
                Change::Opaque(_) => "opaque".into(),
            };
            format!("{} {what}", path.as_str())
        })
        .collect()
}

#[test]
fn reads_lower_files_and_follows_symlinks_inside_the_image() {
    let f = fixture();
    let mut v = vfs(&f);
    assert_eq!(read_all(&mut v, "data/a").unwrap(), "aaa");
    assert_eq!(read_all(&mut v, "link").unwrap(), "aaa");
    // An absolute target means the image's root.
    assert_eq!(read_all(&mut v, "abs/sub/c").unwrap(), "ccc");
    // `..` stops at the root.
    assert_eq!(read_all(&mut v, "../../data/./b").unwrap(), "bbb");
    // Reading changes nothing.
    assert!(v.overlay().changes().unwrap().is_empty());
}

#[test]
fn an_image_files_digest_is_known_until_it_is_written() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let open = |v: &mut Vfs, path: &str| {
        let flags = OpenFlags {
            follow: true,
            ..Default::default()
        };
        v.open_at(root, Scope::Clamp, path, flags).unwrap()
    };
    let a = open(&mut v, "data/a");
    assert_eq!(v.content_digest(a), Some(crate::digest::Digest::of(b"aaa")));
    v.close(a);
    // Through a symlink: the file it leads to.
    let link = open(&mut v, "link");
    assert_eq!(
        v.content_digest(link),
        Some(crate::digest::Digest::of(b"aaa"))
    );
    v.close(link);
    // Written by the step: its bytes are its own now, not the image's.
    write_file(&mut v, "data/a", "new").unwrap();
    let a = open(&mut v, "data/a");
    assert_eq!(v.content_digest(a), None);
    v.close(a);
    let data = open(&mut v, "data");
    assert_eq!(v.content_digest(data), None);
    v.close(data);
}

#[test]
fn creating_through_a_dangling_symlink_creates_its_target() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let c = Scope::Clamp;
    v.symlink_at("data/new", root, c, "rel").unwrap();
    v.symlink_at("/data/sub/abs-new", root, c, "data/abs-link")
        .unwrap();
    v.symlink_at("rel", root, c, "chain").unwrap();
    write_file(&mut v, "rel", "r").unwrap();
    write_file(&mut v, "data/abs-link", "a").unwrap();
    assert_eq!(read_all(&mut v, "data/new").unwrap(), "r");
    assert_eq!(read_all(&mut v, "data/sub/abs-new").unwrap(), "a");
    v.unlink_at(root, c, "data/new").unwrap();
    write_file(&mut v, "chain", "c").unwrap();
    assert_eq!(read_all(&mut v, "data/new").unwrap(), "c");
    // A missing directory in the target is still ENOENT.
    v.symlink_at("nope/x", root, c, "deep").unwrap();
    assert_eq!(write_file(&mut v, "deep", "x"), Err(Errno::Noent));
    // Exclusive creation fails on the link itself.
    let excl = OpenFlags {
        create: true,
        exclusive: true,
        write: true,
        follow: true,
        ..Default::default()
    };
    v.symlink_at("data/new2", root, c, "rel2").unwrap();
    assert_eq!(v.open_at(root, c, "rel2", excl), Err(Errno::Exist));
    // Through a capability, an absolute target would leave it.
    v.symlink_at("/etc/new", root, c, "data/out").unwrap();
    let data = v.resolve(root, c, "data", true).unwrap();
    let create = OpenFlags {
        create: true,
        write: true,
        follow: true,
        ..Default::default()
    };
    assert_eq!(
        v.open_at(data, Scope::Deny, "out", create),
        Err(Errno::Notcapable)
    );
    assert_eq!(v.resolve(root, c, "etc/new", true), Err(Errno::Noent));
}

#[test]
fn directory_handles_are_capabilities() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let data = v.resolve(root, Scope::Clamp, "data", true).unwrap();
    assert_eq!(
        v.resolve(data, Scope::Deny, "sub/../a", true).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        v.resolve(data, Scope::Deny, "../etc/passwd", true),
        Err(Errno::Notcapable)
    );
    assert_eq!(
        v.resolve(data, Scope::Deny, "/etc/passwd", true),
        Err(Errno::Notcapable)
    );
    assert_eq!(
        v.resolve(root, Scope::Clamp, "/etc/passwd", true),
        Err(Errno::Notcapable)
    );
    // Absolute symlinks cannot be created or followed through a capability.
    assert_eq!(
        v.symlink_at("/etc", data, Scope::Deny, "x"),
        Err(Errno::Perm)
    );
    v.symlink_at("/etc", root, Scope::Clamp, "data/x").unwrap();
    assert_eq!(
        v.resolve(data, Scope::Deny, "x/passwd", true),
        Err(Errno::Notcapable)
    );
    assert!(v.resolve(root, Scope::Clamp, "data/x/passwd", true).is_ok());
}

#[test]
fn errors_match_posix() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let c = Scope::Clamp;
    assert_eq!(v.resolve(root, c, "nope", true), Err(Errno::Noent));
    assert_eq!(v.resolve(root, c, "data/a/x", true), Err(Errno::Notdir));
    assert_eq!(v.resolve(root, c, "", true), Err(Errno::Noent));
    assert_eq!(v.mkdir_at(root, c, "data"), Err(Errno::Exist));
    assert_eq!(v.rmdir_at(root, c, "data"), Err(Errno::Notempty));
    assert_eq!(v.rmdir_at(root, c, "data/a"), Err(Errno::Notdir));
    assert_eq!(v.unlink_at(root, c, "data"), Err(Errno::Isdir));
    assert_eq!(v.unlink_at(root, c, "data/a/"), Err(Errno::Notdir));
    assert_eq!(
        v.rename_at(root, c, "data", root, c, "data/sub/inside"),
        Err(Errno::Inval)
    );
    assert_eq!(
        v.rename_at(root, c, "data/a", root, c, "data/sub"),
        Err(Errno::Isdir)
    );
    assert_eq!(
        v.rename_at(root, c, "data/sub", root, c, "data/a"),
        Err(Errno::Notdir)
    );
    assert_eq!(
        v.link_at(root, c, "data", false, root, c, "d2"),
        Err(Errno::Perm)
    );
    let open = |v: &mut Vfs, path: &str, flags| v.open_at(root, c, path, flags).map(drop);
    let write = OpenFlags {
        write: true,
        ..Default::default()
    };
    assert_eq!(open(&mut v, "data", write), Err(Errno::Isdir));
    let dir_only = OpenFlags {
        directory: true,
        ..Default::default()
    };
    assert_eq!(open(&mut v, "data/a", dir_only), Err(Errno::Notdir));
    let excl = OpenFlags {
        create: true,
        exclusive: true,
        ..Default::default()
    };
    assert_eq!(open(&mut v, "data/a", excl), Err(Errno::Exist));
    assert_eq!(open(&mut v, "link", OpenFlags::default()), Err(Errno::Loop));
    v.symlink_at("loop", root, c, "loop").unwrap();
    assert_eq!(v.resolve(root, c, "loop", true), Err(Errno::Loop));
    let long = "x".repeat(300);
    assert_eq!(v.mkdir_at(root, c, &long), Err(Errno::Nametoolong));
}

#[test]
fn changes_record_creates_overwrites_and_deletes() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    write_file(&mut v, "data/a", "new a").unwrap();
    write_file(&mut v, "data/new", "fresh").unwrap();
    v.unlink_at(root, Scope::Clamp, "data/b").unwrap();
    v.mkdir_at(root, Scope::Clamp, "out").unwrap();
    write_file(&mut v, "out/f", "x").unwrap();
    v.symlink_at("out/f", root, Scope::Clamp, "out/l").unwrap();
    let changes = v.overlay().changes().unwrap();
    assert_eq!(
        summary(&changes),
        [
            "data dir",
            "data/a file(new a)",
            "data/b whiteout",
            "data/new file(fresh)",
            "out dir",
            "out/f file(x)",
            "out/l symlink(out/f)",
        ]
    );
    // New nodes take the step's clock.
    let Change::Put(Node::File(meta, _)) = &changes[&p("data/new")] else {
        panic!()
    };
    assert_eq!(meta.mtime, 5);
}

#[test]
fn renamed_and_replaced_directories() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let c = Scope::Clamp;
    // A lower directory moved: gone at the old path, whole at the new one,
    // its untouched files still referring to the store.
    v.rename_at(root, c, "data", root, c, "moved").unwrap();
    // A lower directory replaced by a new one: opaque.
    v.unlink_at(root, c, "etc/passwd").unwrap();
    v.rmdir_at(root, c, "etc").unwrap();
    v.mkdir_at(root, c, "etc").unwrap();
    write_file(&mut v, "etc/hosts", "h").unwrap();
    let changes = v.overlay().changes().unwrap();
    assert_eq!(
        summary(&changes),
        [
            "data whiteout",
            "etc opaque",
            "etc/hosts file(h)",
            "moved dir",
            "moved/a file(stored)",
            "moved/b file(stored)",
            "moved/sub dir",
            "moved/sub/c file(stored)",
        ]
    );
}

#[test]
fn hardlinks_are_written_once() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let c = Scope::Clamp;
    write_file(&mut v, "z", "shared").unwrap();
    v.link_at(root, c, "z", false, root, c, "a-link").unwrap();
    // A link to an unchanged lower file copies it (layers cannot link down).
    v.link_at(root, c, "data/b", false, root, c, "b-link")
        .unwrap();
    assert_eq!(v.stat_at(root, c, "z", false).unwrap().nlink, 2);
    let changes = v.overlay().changes().unwrap();
    assert_eq!(
        summary(&changes),
        [
            "a-link file(shared)",
            "b-link file(stored)",
            "z hardlink(/a-link)"
        ]
    );
}

#[test]
fn open_files_outlive_their_names() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let n = v
        .open_at(root, Scope::Clamp, "data/a", OpenFlags::default())
        .unwrap();
    v.unlink_at(root, Scope::Clamp, "data/a").unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(v.read(n, 0, &mut buf), Ok(3));
    assert_eq!(&buf, b"aaa");
    v.close(n);
    assert_eq!(v.stat(n), Err(Errno::Badf));
}

#[test]
fn big_files_spill_to_disk_and_limits_stop_writers() {
    let f = fixture();
    let mut v = vfs(&f);
    v.overlay().set_limits(WriteLimits {
        max_bytes: 2 << 20,
        max_files: 3,
    });
    let root = v.root();
    let flags = OpenFlags {
        create: true,
        write: true,
        ..Default::default()
    };
    let n = v.open_at(root, Scope::Clamp, "big", flags).unwrap();
    let chunk = vec![7u8; 64 << 10];
    for i in 0..16 {
        v.write(n, i * chunk.len() as u64, &chunk).unwrap();
    }
    assert_eq!(v.stat(n).unwrap().size, 1 << 20);
    assert_eq!(v.overlay().upper_bytes(), 1 << 20);
    let mut buf = [0u8; 4];
    assert_eq!(v.read(n, (1 << 20) - 2, &mut buf), Ok(2));
    // Past the byte limit: ENOSPC, and the limit is recorded.
    assert_eq!(v.write(n, 2 << 20, b"x"), Err(Errno::Nospc));
    assert_eq!(v.overlay().limit_hit(), Some(LimitHit::Bytes));
    v.close(n);
    let changes = v.overlay().changes().unwrap();
    assert_eq!(summary(&changes), [format!("big file({} bytes)", 1 << 20)]);
    v.mkdir_at(root, Scope::Clamp, "d1").unwrap();
    v.mkdir_at(root, Scope::Clamp, "d2").unwrap();
    assert_eq!(v.mkdir_at(root, Scope::Clamp, "d3"), Err(Errno::Nospc));
    assert_eq!(v.overlay().limit_hit(), Some(LimitHit::Files));
}

#[test]
fn mounts_never_reach_the_layer() {
    let f = fixture();
    let mut v = vfs(&f);
    let tmpfs = OverlayFs::new(Arc::new(Snapshot::empty()), f.store.clone(), 2, clock());
    v.mount(&p("run/secrets"), Box::new(tmpfs), true).unwrap();
    let tmp2 = OverlayFs::new(Arc::new(Snapshot::empty()), f.store.clone(), 3, clock());
    v.mount(&p("data/sub"), Box::new(tmp2), true).unwrap();
    let root = v.root();
    let c = Scope::Clamp;
    write_file(&mut v, "run/secrets/token", "s3cret").unwrap();
    assert_eq!(read_all(&mut v, "run/secrets/token").unwrap(), "s3cret");
    // The mount hides the lower contents of its mountpoint.
    assert_eq!(v.resolve(root, c, "data/sub/c", true), Err(Errno::Noent));
    write_file(&mut v, "data/sub/scratch", "x").unwrap();
    assert_eq!(v.rmdir_at(root, c, "run/secrets"), Err(Errno::Busy));
    assert_eq!(
        v.rename_at(root, c, "run/secrets/token", root, c, "token"),
        Err(Errno::Xdev)
    );
    let names: Vec<String> = v.read_dir(root).unwrap().into_iter().map(|e| e.0).collect();
    assert!(names.contains(&"run".to_string()));
    // Nothing of either mount, nor /run made for it, is in the layer.
    assert!(v.overlay().changes().unwrap().is_empty());
    // But a real file next to a mountpoint makes its directory real.
    write_file(&mut v, "run/other", "o").unwrap();
    assert_eq!(
        summary(&v.overlay().changes().unwrap()),
        ["run dir", "run/other file(o)"]
    );
}

#[test]
fn create_follows_dangling_symlinks_and_refuses_directories() {
    let f = fixture();
    let mut v = vfs(&f);
    let root = v.root();
    let c = Scope::Clamp;
    let create = OpenFlags {
        create: true,
        write: true,
        follow: true,
        ..Default::default()
    };
    // As open(O_CREAT): a dangling symlink is followed and the file made
    // where it points, through a chain of links too.
    v.symlink_at("data/made", root, c, "dangling").unwrap();
    v.symlink_at("dangling", root, c, "chain").unwrap();
    let n = v.open_at(root, c, "chain", create).unwrap();
    v.write(n, 0, b"m").unwrap();
    v.close(n);
    assert_eq!(read_all(&mut v, "data/made").unwrap(), "m");
    // An absolute target means the root of a Clamp handle...
    v.symlink_at("/data/abs-made", root, c, "data/to-abs")
        .unwrap();
    let n = v.open_at(root, c, "data/to-abs", create).unwrap();
    v.close(n);
    assert!(v.resolve(root, c, "data/abs-made", false).is_ok());
    // ...and leaves a Deny one.
    let data = v.resolve(root, c, "data", true).unwrap();
    v.symlink_at("/data/x", root, c, "data/to-abs2").unwrap();
    assert_eq!(
        v.open_at(data, Scope::Deny, "to-abs2", create).map(drop),
        Err(Errno::Notcapable)
    );
    // The target's directory must exist.
    v.symlink_at("nodir/x", root, c, "nowhere").unwrap();
    assert_eq!(
        v.open_at(root, c, "nowhere", create).map(drop),
        Err(Errno::Noent)
    );
    // Directories, a trailing slash, O_DIRECTORY: EISDIR / EINVAL.
    let open = |v: &mut Vfs, path: &str, flags| v.open_at(root, c, path, flags).map(drop);
    let read_create = OpenFlags {
        create: true,
        follow: true,
        ..Default::default()
    };
    assert_eq!(open(&mut v, "data", read_create), Err(Errno::Isdir));
    assert_eq!(open(&mut v, "abs", read_create), Err(Errno::Isdir));
    assert_eq!(open(&mut v, "data/a/", read_create), Err(Errno::Isdir));
    assert_eq!(open(&mut v, "fresh/", read_create), Err(Errno::Isdir));
    let excl = OpenFlags {
        exclusive: true,
        ..read_create
    };
    assert_eq!(open(&mut v, "data/", excl), Err(Errno::Isdir));
    assert_eq!(open(&mut v, "nowhere", excl), Err(Errno::Exist));
    let dir_create = OpenFlags {
        directory: true,
        ..read_create
    };
    assert_eq!(open(&mut v, "data", dir_create), Err(Errno::Inval));
    // Not following: ELOOP, as before.
    let nofollow = OpenFlags {
        follow: false,
        ..read_create
    };
    assert_eq!(open(&mut v, "link", nofollow), Err(Errno::Loop));
    // An existing file through a symlink opens it.
    assert!(open(&mut v, "link", read_create).is_ok());
    assert!(v.resolve(root, c, "fresh", false).is_err());
}
