//! HostFs tests: POSIX behavior over a temp directory, stable node ids, and
//! host symlinks that can be read but never followed.

use super::*;

/// A temp directory with `a` ("aaa"), `sub/b` ("bbb") and an empty `empty/`.
fn fixture() -> (tempfile::TempDir, HostFs) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "aaa").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/b"), "bbb").unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let fs = HostFs::open(dir.path(), false, 7).unwrap();
    (dir, fs)
}

fn read_all(fs: &mut HostFs, id: u64) -> String {
    let mut buf = vec![0u8; 1024];
    let n = fs.read(id, 0, &mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn names(fs: &mut HostFs, dir: u64) -> Vec<String> {
    fs.read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[test]
fn creates_reads_writes_and_lists() {
    let (dir, mut fs) = fixture();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    assert_eq!(read_all(&mut fs, a), "aaa");
    let f = fs.create_file(root, "new", 0o644).unwrap();
    fs.open(f).unwrap();
    assert_eq!(fs.write(f, 2, b"xy"), Ok(2));
    assert_eq!(read_all(&mut fs, f), "\0\0xy");
    fs.set_size(f, 1).unwrap();
    let st = fs.stat(f).unwrap();
    assert_eq!(
        (st.kind, st.size, st.dev, st.ino),
        (FileType::File, 1, 7, f)
    );
    fs.close(f);
    let d = fs.mkdir(root, "d", 0o755).unwrap();
    assert_eq!(fs.stat(d).unwrap().kind, FileType::Dir);
    assert_eq!(names(&mut fs, root), ["a", "d", "empty", "new", "sub"]);
    let sub = fs.lookup(root, "sub").unwrap();
    let listed = fs.read_dir(sub).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].kind),
        ("b", FileType::File)
    );
    assert_eq!(listed[0].id, fs.lookup(sub, "b").unwrap());
    assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), b"\0");
}

#[test]
fn node_ids_are_stable_across_lookups_and_renames() {
    let (dir, mut fs) = fixture();
    let root = fs.root();
    let sub = fs.lookup(root, "sub").unwrap();
    let b = fs.lookup(sub, "b").unwrap();
    assert_eq!(fs.lookup(root, "sub").unwrap(), sub);
    assert_eq!(fs.lookup(sub, "b").unwrap(), b);
    // Renaming a directory keeps the ids of it and everything under it.
    fs.rename(root, "sub", root, "moved").unwrap();
    assert_eq!(fs.lookup(root, "moved").unwrap(), sub);
    assert_eq!(read_all(&mut fs, b), "bbb");
    assert_eq!(fs.lookup(sub, "b").unwrap(), b);
    assert_eq!(fs.lookup(root, "sub"), Err(Errno::Noent));
    // A file moved between directories.
    let empty = fs.lookup(root, "empty").unwrap();
    fs.rename(sub, "b", empty, "c").unwrap();
    assert_eq!(fs.lookup(empty, "c").unwrap(), b);
    assert_eq!(read_all(&mut fs, b), "bbb");
    assert!(dir.path().join("empty/c").exists());
    // Replacing a file: the survivor keeps its id, the victim is gone.
    let a = fs.lookup(root, "a").unwrap();
    fs.rename(empty, "c", root, "a").unwrap();
    assert_eq!(fs.lookup(root, "a").unwrap(), b);
    assert_eq!(fs.stat(a), Err(Errno::Badf));
}

#[test]
fn open_files_outlive_unlink() {
    let (_dir, mut fs) = fixture();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    fs.open(a).unwrap();
    fs.unlink(root, "a").unwrap();
    assert_eq!(fs.lookup(root, "a"), Err(Errno::Noent));
    assert_eq!(read_all(&mut fs, a), "aaa");
    fs.write(a, 3, b"!").unwrap();
    assert_eq!(fs.stat(a).unwrap().size, 4);
    fs.set_times(a, SetTime::Keep, SetTime::At(1_000_000_000))
        .unwrap();
    assert_eq!(fs.stat(a).unwrap().mtime, 1_000_000_000);
    // A new file of the same name is a different node.
    let again = fs.create_file(root, "a", 0o644).unwrap();
    assert_ne!(again, a);
    fs.close(a);
    assert_eq!(fs.stat(a), Err(Errno::Badf));
    assert_eq!(fs.stat(again).unwrap().size, 0);
}

#[test]
fn hard_links_and_symlinks() {
    let (dir, mut fs) = fixture();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    fs.link(a, root, "a2").unwrap();
    if cfg!(unix) {
        assert_eq!(fs.lookup(root, "a2").unwrap(), a);
        assert_eq!(fs.stat(a).unwrap().nlink, 2);
    }
    fs.unlink(root, "a").unwrap();
    let a2 = fs.lookup(root, "a2").unwrap();
    assert_eq!(read_all(&mut fs, a2), "aaa");
    let s = fs.symlink(root, "s", "sub/b").unwrap();
    assert_eq!(fs.stat(s).unwrap().kind, FileType::Symlink);
    assert_eq!(fs.read_link(s).unwrap(), "sub/b");
    assert_eq!(fs.read_link(a2), Err(Errno::Inval));
    // A symlink is never opened or read through.
    let mut buf = [0u8; 4];
    assert_eq!(fs.read(s, 0, &mut buf), Err(Errno::Inval));
    fs.unlink(root, "s").unwrap();
    assert!(!dir.path().join("s").exists());
    assert!(dir.path().join("sub/b").exists());
}

#[test]
fn set_times_changes_the_node_itself() {
    let (dir, mut fs) = fixture();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    let before = fs.stat(a).unwrap();
    fs.set_times(a, SetTime::At(5_000_000_123), SetTime::Keep)
        .unwrap();
    let after = fs.stat(a).unwrap();
    assert_eq!(after.atime, 5_000_000_123);
    assert_eq!(after.mtime, before.mtime);
    fs.set_times(a, SetTime::Keep, SetTime::At(2_000_000_000))
        .unwrap();
    assert_eq!(fs.stat(a).unwrap().mtime, 2_000_000_000);
    // cap-std cannot set times before the epoch.
    assert_eq!(
        fs.set_times(a, SetTime::Keep, SetTime::At(-1)),
        Err(Errno::Inval)
    );
    // A symlink's own times, not its target's.
    let s = fs.symlink(root, "s", "a").unwrap();
    fs.set_times(s, SetTime::Keep, SetTime::At(9_000_000_000))
        .unwrap();
    assert_eq!(fs.stat(s).unwrap().mtime, 9_000_000_000);
    assert_eq!(fs.stat(a).unwrap().mtime, 2_000_000_000);
    fs.set_times(root, SetTime::Now, SetTime::Now).unwrap();
    assert!(std::fs::metadata(dir.path()).unwrap().modified().is_ok());
}

#[test]
fn errors_match_posix() {
    let (_dir, mut fs) = fixture();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    let sub = fs.lookup(root, "sub").unwrap();
    assert_eq!(fs.create_file(root, "a", 0o644), Err(Errno::Exist));
    assert_eq!(fs.mkdir(root, "sub", 0o755), Err(Errno::Exist));
    assert_eq!(fs.symlink(root, "a", "x"), Err(Errno::Exist));
    assert_eq!(fs.link(a, root, "sub"), Err(Errno::Exist));
    assert_eq!(fs.lookup(root, "nope"), Err(Errno::Noent));
    assert_eq!(fs.unlink(root, "nope"), Err(Errno::Noent));
    assert_eq!(fs.lookup(a, "x"), Err(Errno::Notdir));
    assert_eq!(fs.rmdir(root, "a"), Err(Errno::Notdir));
    assert_eq!(fs.read_dir(a), Err(Errno::Notdir));
    assert_eq!(fs.unlink(root, "sub"), Err(Errno::Isdir));
    let mut buf = [0u8; 1];
    assert_eq!(fs.read(sub, 0, &mut buf), Err(Errno::Isdir));
    assert_eq!(fs.rmdir(root, "sub"), Err(Errno::Notempty));
    assert_eq!(fs.rename(root, "empty", root, "sub"), Err(Errno::Notempty));
    assert_eq!(fs.rename(root, "a", root, "empty"), Err(Errno::Isdir));
    assert_eq!(fs.rename(root, "sub", root, "a"), Err(Errno::Notdir));
    assert_eq!(fs.rename(root, "sub", sub, "inside"), Err(Errno::Inval));
    assert_eq!(fs.link(sub, root, "sub2"), Err(Errno::Perm));
    assert_eq!(fs.lookup(root, ".."), Err(Errno::Inval));
    assert_eq!(fs.lookup(root, "a/b"), Err(Errno::Inval));
    assert_eq!(fs.lookup(root, &"x".repeat(300)), Err(Errno::Nametoolong));
    fs.rmdir(root, "empty").unwrap();
    assert_eq!(fs.lookup(root, "empty"), Err(Errno::Noent));
}

#[test]
fn readonly_refuses_every_change() {
    let (dir, _) = fixture();
    let mut fs = HostFs::open(dir.path(), true, 1).unwrap();
    let root = fs.root();
    let a = fs.lookup(root, "a").unwrap();
    assert!(fs.readonly());
    assert_eq!(fs.create_file(root, "n", 0o644), Err(Errno::Rofs));
    assert_eq!(fs.mkdir(root, "n", 0o755), Err(Errno::Rofs));
    assert_eq!(fs.symlink(root, "n", "a"), Err(Errno::Rofs));
    assert_eq!(fs.link(a, root, "n"), Err(Errno::Rofs));
    assert_eq!(fs.unlink(root, "a"), Err(Errno::Rofs));
    assert_eq!(fs.rmdir(root, "empty"), Err(Errno::Rofs));
    assert_eq!(fs.rename(root, "a", root, "n"), Err(Errno::Rofs));
    assert_eq!(fs.write(a, 0, b"x"), Err(Errno::Rofs));
    assert_eq!(fs.set_size(a, 0), Err(Errno::Rofs));
    assert_eq!(
        fs.set_times(a, SetTime::Now, SetTime::Now),
        Err(Errno::Rofs)
    );
    // Reading still works, through an open handle too.
    fs.open(a).unwrap();
    assert_eq!(read_all(&mut fs, a), "aaa");
    fs.close(a);
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"aaa");
}

#[cfg(unix)]
#[test]
fn listing_skips_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, mut fs) = fixture();
    std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), "").unwrap();
    let root = fs.root();
    assert_eq!(names(&mut fs, root), ["a", "empty", "sub"]);
}

#[cfg(unix)]
#[test]
fn host_symlinks_out_of_the_directory_are_never_followed() {
    use crate::snapshot::{ImagePath, Snapshot};
    use crate::store::Store;
    use crate::vfs::{OpenFlags, OverlayFs, Scope, Vfs};
    use std::sync::Arc;

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
    let (dir, mut fs) = fixture();
    let root_path = dir.path();
    std::os::unix::fs::symlink(outside.path(), root_path.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root_path.join("file")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", root_path.join("up")).unwrap();
    let root = fs.root();
    let out = fs.lookup(root, "out").unwrap();
    let file = fs.lookup(root, "file").unwrap();
    // Readable as links...
    assert_eq!(fs.stat(out).unwrap().kind, FileType::Symlink);
    assert_eq!(fs.read_link(out).unwrap(), outside.path().to_str().unwrap());
    // ...but HostFs itself never goes through them.
    assert_eq!(fs.lookup(out, "secret"), Err(Errno::Notdir));
    let mut buf = [0u8; 16];
    assert_eq!(fs.read(file, 0, &mut buf), Err(Errno::Inval));
    assert_eq!(fs.write(file, 0, b"x"), Err(Errno::Inval));
    // Through the VFS, targets resolve inside the namespace: an absolute
    // target restarts at the VFS root, `..` stops there.
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let overlay = OverlayFs::new(
        Arc::new(Snapshot::empty()),
        store,
        1,
        crate::vfs::system_clock(),
    );
    let mut vfs = Vfs::new(overlay);
    vfs.mount(&ImagePath::root(), Box::new(fs), true).unwrap();
    let vroot = vfs.root();
    let follow = OpenFlags {
        follow: true,
        ..Default::default()
    };
    assert_eq!(
        vfs.open_at(vroot, Scope::Clamp, "out/secret", follow),
        Err(Errno::Noent)
    );
    assert_eq!(
        vfs.open_at(vroot, Scope::Clamp, "file", follow),
        Err(Errno::Noent)
    );
    let b = vfs
        .open_at(vroot, Scope::Clamp, "up/sub/b", follow)
        .unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(vfs.read(b, 0, &mut buf), Ok(3));
    assert_eq!(&buf, b"bbb");
    vfs.close(b);
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"s3cret"
    );
}

#[test]
fn open_files_past_the_handle_cap_are_reopened_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let count = 3 * MAX_HOST_FILE_HANDLES;
    for i in 0..count {
        std::fs::write(dir.path().join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let mut fs = HostFs::open(dir.path(), false, 7).unwrap();
    let root = fs.root();
    let ids: Vec<u64> = (0..count)
        .map(|i| {
            let id = fs.lookup(root, &format!("f{i}")).unwrap();
            fs.open(id).unwrap();
            assert_eq!(read_all(&mut fs, id), format!("file {i}"));
            id
        })
        .collect();
    assert_eq!(fs.file_handles.len(), MAX_HOST_FILE_HANDLES);
    // The first ones were evicted: reads, writes and removal still work.
    assert!(fs.nodes[&ids[0]].handle.is_none());
    assert_eq!(fs.write(ids[0], 0, b"FILE"), Ok(4));
    assert_eq!(read_all(&mut fs, ids[0]), "FILE 0");
    assert!(fs.nodes[&ids[1]].handle.is_none());
    fs.unlink(root, "f1").unwrap();
    assert_eq!(read_all(&mut fs, ids[1]), "file 1");
    for (i, id) in ids.iter().enumerate().rev().filter(|(i, _)| *i > 1) {
        assert_eq!(read_all(&mut fs, *id), format!("file {i}"));
    }
    assert!(fs.file_handles.len() <= MAX_HOST_FILE_HANDLES);
    for id in ids {
        fs.close(id);
    }
    assert_eq!(fs.file_handles.len(), 0);
    assert_eq!(std::fs::read(dir.path().join("f0")).unwrap(), b"FILE 0");
}

#[cfg(unix)]
#[test]
fn an_evicted_handle_is_not_reopened_on_another_file() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..=MAX_HOST_FILE_HANDLES {
        std::fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
    }
    let mut fs = HostFs::open(dir.path(), true, 7).unwrap();
    let root = fs.root();
    for i in 0..=MAX_HOST_FILE_HANDLES {
        let id = fs.lookup(root, &format!("f{i}")).unwrap();
        fs.open(id).unwrap();
    }
    let first = fs.lookup(root, "f0").unwrap();
    assert!(fs.nodes[&first].handle.is_none());
    // Replaced behind kiln's back (another build sharing a cache).
    std::fs::write(dir.path().join("other"), "y").unwrap();
    std::fs::remove_file(dir.path().join("f0")).unwrap();
    std::fs::rename(dir.path().join("other"), dir.path().join("f0")).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(fs.read(first, 0, &mut buf), Err(Errno::Io));
}

#[test]
fn lookups_through_kept_directory_handles_follow_renames_and_replacements() {
    let (dir, mut fs) = fixture();
    let root = fs.root();
    let sub = fs.lookup(root, "sub").unwrap();
    let b = fs.lookup(sub, "b").unwrap();
    assert_eq!(fs.kind(b), Ok(FileType::File));
    assert_eq!(fs.kind(sub), Ok(FileType::Dir));
    // Renamed: the same node, its children found under the new name.
    fs.rename(root, "sub", root, "moved").unwrap();
    assert_eq!(fs.lookup(sub, "b"), Ok(b));
    assert_eq!(read_all(&mut fs, b), "bbb");
    // A new directory under the old name is another node, with its own
    // children, never the kept handle of the first.
    let fresh = fs.mkdir(root, "sub", 0o755).unwrap();
    assert_ne!(fresh, sub);
    assert_eq!(fs.lookup(fresh, "b"), Err(Errno::Noent));
    std::fs::write(dir.path().join("sub/c"), "ccc").unwrap();
    let c = fs.lookup(fresh, "c").unwrap();
    assert_eq!(read_all(&mut fs, c), "ccc");
    // Removed: gone for lookups and for its kind, like stat says.
    fs.unlink(fresh, "c").unwrap();
    fs.rmdir(root, "sub").unwrap();
    assert!(fs.lookup(fresh, "c").is_err());
    assert!(fs.kind(fresh).is_err());
    assert_eq!(fs.kind(fresh), fs.stat(fresh).map(|s| s.kind));
    // Many directories: past the handles kept, lookups still work.
    for i in 0..20 {
        let d = fs.mkdir(root, &format!("d{i}"), 0o755).unwrap();
        fs.create_file(d, "f", 0o644).unwrap();
    }
    for i in (0..20).rev() {
        let d = fs.lookup(root, &format!("d{i}")).unwrap();
        let f = fs.lookup(d, "f").unwrap();
        assert_eq!(fs.kind(f), Ok(FileType::File));
    }
}
