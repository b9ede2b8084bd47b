//! The filesystem and stream hosts called directly, without a guest: the
//! corners a Rust program does not reach (flags, access rules, stream
//! errors, capabilities). Whole programs are in `runner/tests/wasi_p2.rs`.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::streams::{
    self, HostInputStream as _, HostOutputStream as _,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, StreamError};

use super::bindings::wasi::filesystem::preopens::Host as _;
use super::bindings::wasi::filesystem::types::{
    self, DescriptorFlags as D, DescriptorType, ErrorCode, Host as _, HostDescriptor as _,
    HostDirectoryEntryStream as _, NewTimestamp, OpenFlags as O, PathFlags as P,
};
use super::errors::{FsError, FsResult};
use super::filesystem::{Descriptor, FsView};
use super::streams::{FileStreams, IoView};
use crate::layer::{Content, LayerOptions, PendingChanges, write_layer};
use crate::snapshot::{Change, ImagePath, Meta, Node, Snapshot};
use crate::store::Store;
use crate::vfs::{Clock, OverlayFs, Scope, Vfs, WriteLimits};
use crate::wasi::Preopen;

/// A VFS over a lower image with `/data/{a,b}`, `/link -> data/a` and
/// `/abs -> /data`, a read-only mount at `/ro` (holding `f`), preopens `/`
/// and `/ro`, and the host's tables.
struct Host {
    _dir: tempfile::TempDir,
    vfs: Vfs,
    table: ResourceTable,
    files: FileStreams,
    preopens: Vec<Preopen>,
}

fn p(s: &str) -> ImagePath {
    ImagePath::parse(s).unwrap()
}

fn clock() -> Clock {
    Arc::new(|| 7_000_000_000)
}

fn snapshot(store: &Store, entries: &[(&str, Option<&str>)]) -> Arc<Snapshot> {
    let mut c = PendingChanges::new();
    for (path, what) in entries {
        let node = match what {
            None => Node::Dir(Meta::root(0o755, 1)),
            Some(t) if t.starts_with("->") => Node::Symlink(Meta::root(0o777, 1), t[2..].into()),
            Some(t) => Node::File(Meta::root(0o644, 1), Content::Bytes(t.as_bytes().to_vec())),
        };
        c.insert(p(path), Change::Put(node));
    }
    let layer = write_layer(store, c, &LayerOptions::default()).unwrap();
    let mut snap = Snapshot::empty();
    snap.apply(&layer.changes);
    Arc::new(snap)
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lower = snapshot(
            &store,
            &[
                ("data", None),
                ("data/a", Some("aaa")),
                ("data/b", Some("bbb")),
                ("link", Some("->data/a")),
                ("abs", Some("->/data")),
            ],
        );
        let mut vfs = Vfs::new(OverlayFs::new(lower, store.clone(), 1, clock()));
        let mut ro = OverlayFs::new(snapshot(&store, &[("f", Some("fff"))]), store, 2, clock());
        ro.set_readonly(true);
        let ro = vfs.mount(&p("ro"), Box::new(ro), true).unwrap();
        let root = vfs.root();
        let preopens = vec![
            Preopen {
                guest_path: "/".into(),
                node: root,
                scope: Scope::Clamp,
            },
            Preopen {
                guest_path: "/ro".into(),
                node: ro,
                scope: Scope::Deny,
            },
        ];
        Host {
            _dir: dir,
            vfs,
            table: ResourceTable::new(),
            files: FileStreams::default(),
            preopens,
        }
    }

    fn fs(&mut self) -> FsView<'_> {
        FsView {
            table: &mut self.table,
            vfs: &mut self.vfs,
            preopens: &self.preopens,
            streams: &mut self.files,
        }
    }

    fn io(&mut self) -> IoView<'_> {
        IoView {
            table: &mut self.table,
            vfs: &mut self.vfs,
            files: &mut self.files,
        }
    }

    /// The preopens `/` and `/ro`.
    fn preopens(&mut self) -> (Resource<Descriptor>, Resource<Descriptor>) {
        let mut dirs = self.fs().get_directories().unwrap().into_iter();
        let (root, name) = dirs.next().unwrap();
        assert_eq!(name, "/");
        let (ro, name) = dirs.next().unwrap();
        assert_eq!(name, "/ro");
        (root, ro)
    }

    fn open(
        &mut self,
        base: &Resource<Descriptor>,
        path: &str,
        oflags: O,
        flags: D,
    ) -> FsResult<Resource<Descriptor>> {
        self.fs()
            .open_at(b(base), P::SYMLINK_FOLLOW, path.into(), oflags, flags)
    }

    fn read_stream(&mut self, fd: &Resource<Descriptor>, offset: u64) -> Resource<DynInputStream> {
        self.fs().read_via_stream(b(fd), offset).unwrap()
    }

    /// Everything a read stream from `offset` yields, in reads of `chunk`.
    fn read_all(&mut self, fd: &Resource<Descriptor>, offset: u64, chunk: u64) -> String {
        let s = self.read_stream(fd, offset);
        let mut out = Vec::new();
        loop {
            match self.io().blocking_read(b(&s), chunk) {
                Ok(bytes) => out.extend(bytes),
                Err(StreamError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        streams::HostInputStream::drop(&mut self.io(), s).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn write_stream(&mut self, s: &Resource<DynOutputStream>, data: &str) {
        self.io()
            .blocking_write_and_flush(b(s), data.as_bytes().to_vec())
            .unwrap();
    }
}

/// A borrow of `r`, as the guest passes `borrow<descriptor>`.
fn b<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

fn code<T: std::fmt::Debug>(r: FsResult<T>) -> ErrorCode {
    match r {
        Err(FsError::Code(c)) => c,
        other => panic!("expected an error code, got {other:?}"),
    }
}

/// Read and write.
fn rw() -> D {
    D::READ | D::WRITE
}

#[test]
fn preopens_come_in_order_with_their_capabilities() {
    let mut h = Host::new();
    let (root, ro) = h.preopens();
    assert_eq!(
        h.fs().get_flags(b(&root)).unwrap(),
        D::READ | D::MUTATE_DIRECTORY
    );
    // A read-only mount cannot be changed, and says so.
    assert_eq!(h.fs().get_flags(b(&ro)).unwrap(), D::READ);
    assert_eq!(
        code(h.fs().create_directory_at(b(&ro), "x".into())),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        code(h.open(&ro, "g", O::CREATE, D::WRITE)),
        ErrorCode::ReadOnly
    );
    let f = h.open(&ro, "f", O::empty(), D::READ).unwrap();
    assert_eq!(h.read_all(&f, 0, 2), "fff");
    // Through `/`, the mount refuses writes itself.
    assert_eq!(
        code(h.open(&root, "ro/f", O::empty(), D::WRITE)),
        ErrorCode::ReadOnly
    );
}

#[test]
fn open_at_honours_every_flag() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    assert_eq!(
        code(h.open(&root, "data/a", O::CREATE | O::EXCLUSIVE, rw())),
        ErrorCode::Exist
    );
    assert_eq!(
        code(h.open(&root, "data/a", O::DIRECTORY, D::READ)),
        ErrorCode::NotDirectory
    );
    assert_eq!(
        code(h.open(&root, "data", O::DIRECTORY | O::CREATE, D::READ)),
        ErrorCode::Invalid
    );
    assert_eq!(
        code(h.open(&root, "data", O::empty(), D::WRITE)),
        ErrorCode::IsDirectory
    );
    assert_eq!(
        code(h.open(&root, "nope", O::empty(), D::READ)),
        ErrorCode::NoEntry
    );
    // Without symlink-follow, a symlink at the end is ELOOP.
    let nofollow = h
        .fs()
        .open_at(b(&root), P::empty(), "link".into(), O::empty(), D::READ);
    assert_eq!(code(nofollow), ErrorCode::Loop);
    let link = h.open(&root, "link", O::empty(), D::READ).unwrap();
    assert_eq!(h.read_all(&link, 0, 64), "aaa");
    // Truncate empties; create makes an empty file.
    let a = h.open(&root, "data/a", O::TRUNCATE, D::WRITE).unwrap();
    assert_eq!(h.fs().stat(b(&a)).unwrap().size, 0);
    let n = h.open(&root, "data/new", O::CREATE, rw()).unwrap();
    assert_eq!(h.fs().get_type(b(&n)).unwrap(), DescriptorType::RegularFile);
    assert_eq!(h.fs().get_flags(b(&n)).unwrap(), rw());
    // Neither read nor write: readable.
    let plain = h.open(&root, "data/b", O::empty(), D::empty()).unwrap();
    assert_eq!(h.fs().get_flags(b(&plain)).unwrap(), D::READ);
}

#[test]
fn opened_directories_are_capabilities_and_root_clamps() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let data = h.open(&root, "data", O::DIRECTORY, D::READ).unwrap();
    assert_eq!(
        code(h.open(&data, "../abs", O::empty(), D::READ)),
        ErrorCode::NotPermitted
    );
    assert_eq!(
        code(h.open(&data, "/data/a", O::empty(), D::READ)),
        ErrorCode::NotPermitted
    );
    assert_eq!(
        code(h.fs().symlink_at(b(&data), "/etc".into(), "x".into())),
        ErrorCode::NotPermitted
    );
    // `..` at `/` stays at `/`, and absolute symlinks mean the image root.
    let a = h.open(&root, "../../abs/a", O::empty(), D::READ).unwrap();
    assert_eq!(h.read_all(&a, 0, 64), "aaa");
    // A directory opened without mutate-directory (as wasi-libc opens
    // them) still changes its subtree: the capability comes from `/`.
    h.fs().unlink_file_at(b(&data), "b".into()).unwrap();
    assert_eq!(
        code(h.open(&root, "data/b", O::empty(), D::READ)),
        ErrorCode::NoEntry
    );
}

#[test]
fn access_follows_the_open_mode() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let ro = h.open(&root, "data/a", O::empty(), D::READ).unwrap();
    let wo = h.open(&root, "data/b", O::empty(), D::WRITE).unwrap();
    let dir = h.open(&root, "data", O::empty(), D::READ).unwrap();
    assert_eq!(
        code(h.fs().write(b(&ro), b"x".to_vec(), 0)),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(h.fs().write_via_stream(b(&ro), 0)),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(h.fs().append_via_stream(b(&ro))),
        ErrorCode::BadDescriptor
    );
    assert_eq!(code(h.fs().set_size(b(&ro), 0)), ErrorCode::BadDescriptor);
    assert_eq!(code(h.fs().read(b(&wo), 10, 0)), ErrorCode::BadDescriptor);
    assert_eq!(
        code(h.fs().read_via_stream(b(&wo), 0)),
        ErrorCode::BadDescriptor
    );
    assert_eq!(code(h.fs().read(b(&dir), 10, 0)), ErrorCode::IsDirectory);
    assert_eq!(
        code(h.fs().read_via_stream(b(&dir), 0)),
        ErrorCode::IsDirectory
    );
    assert_eq!(
        code(h.fs().write(b(&dir), vec![1], 0)),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(h.fs().advise(b(&dir), 0, 0, types::Advice::Normal)),
        ErrorCode::BadDescriptor
    );
    h.fs()
        .advise(b(&ro), 0, 0, types::Advice::Sequential)
        .unwrap();
    assert_eq!(
        code(h.fs().create_directory_at(b(&ro), "x".into())),
        ErrorCode::NotDirectory
    );
    h.fs().sync(b(&wo)).unwrap();
    h.fs().sync_data(b(&dir)).unwrap();
}

#[test]
fn read_and_write_at_offsets() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let f = h.open(&root, "data/a", O::empty(), rw()).unwrap();
    assert_eq!(h.fs().read(b(&f), 2, 0).unwrap(), (b"aa".to_vec(), false));
    assert_eq!(h.fs().read(b(&f), 10, 1).unwrap(), (b"aa".to_vec(), true));
    assert_eq!(h.fs().read(b(&f), 10, 3).unwrap(), (vec![], true));
    // Writing past the end fills the gap with zeros.
    assert_eq!(h.fs().write(b(&f), b"zz".to_vec(), 5).unwrap(), 2);
    assert_eq!(h.fs().read(b(&f), 10, 0).unwrap().0, b"aaa\0\0zz");
    h.fs().set_size(b(&f), 2).unwrap();
    assert_eq!(h.read_all(&f, 0, 64), "aa");
}

#[test]
fn streams_read_write_and_append() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let f = h.open(&root, "data/new", O::CREATE, rw()).unwrap();
    let w = h.fs().write_via_stream(b(&f), 0).unwrap();
    assert_eq!(
        h.io().check_write(b(&w)).unwrap(),
        super::WRITE_PERMIT as u64
    );
    h.io().write(b(&w), b"hello".to_vec()).unwrap();
    h.io().flush(b(&w)).unwrap();
    // Visible at once to other descriptors, and read in small pieces.
    assert_eq!(h.read_all(&f, 0, 2), "hello");
    h.write_stream(&w, " world");
    streams::HostOutputStream::drop(&mut h.io(), w).unwrap();
    let w = h.fs().write_via_stream(b(&f), 1).unwrap();
    h.write_stream(&w, "E");
    let app = h.fs().append_via_stream(b(&f)).unwrap();
    h.write_stream(&app, "!");
    h.io().write_zeroes(b(&app), 1).unwrap();
    assert_eq!(h.read_all(&f, 0, 64), "hEllo world!\0");
    assert_eq!(h.read_all(&f, 6, 64), "world!\0");
    // skip advances, a read past the end is `closed`.
    let r = h.read_stream(&f, 0);
    assert_eq!(h.io().skip(b(&r), 6).unwrap(), 6);
    assert_eq!(h.io().read(b(&r), 5).unwrap(), b"world");
    assert_eq!(h.io().read(b(&r), 0).unwrap(), b"");
    h.io().read(b(&r), 5).unwrap();
    assert!(matches!(h.io().read(b(&r), 5), Err(StreamError::Closed)));
    // splice from a file into another file.
    let g = h.open(&root, "data/copy", O::CREATE, rw()).unwrap();
    let gw = h.fs().write_via_stream(b(&g), 0).unwrap();
    let r = h.read_stream(&f, 0);
    assert_eq!(h.io().blocking_splice(b(&gw), b(&r), 5).unwrap(), 5);
    assert_eq!(h.io().splice(b(&gw), b(&r), 100).unwrap(), 8);
    assert_eq!(h.read_all(&g, 0, 64), "hEllo world!\0");
}

#[test]
fn an_open_file_outlives_its_name() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let f = h.open(&root, "data/a", O::empty(), D::READ).unwrap();
    let r = h.read_stream(&f, 0);
    types::HostDescriptor::drop(&mut h.fs(), f).unwrap();
    h.fs().unlink_file_at(b(&root), "data/a".into()).unwrap();
    assert_eq!(h.io().blocking_read(b(&r), 10).unwrap(), b"aaa");
    streams::HostInputStream::drop(&mut h.io(), r).unwrap();
}

#[test]
fn stream_write_failures_are_reported_once_then_closed() {
    let mut h = Host::new();
    h.vfs.overlay().set_limits(WriteLimits {
        max_bytes: 4,
        max_files: u64::MAX,
    });
    let (root, _) = h.preopens();
    let f = h.open(&root, "data/new", O::CREATE, rw()).unwrap();
    let w = h.fs().write_via_stream(b(&f), 0).unwrap();
    // The write is accepted; storing it fails; the next call says why.
    h.io().write(b(&w), b"too long".to_vec()).unwrap();
    let err = match h.io().check_write(b(&w)) {
        Err(e @ StreamError::LastOperationFailed(_)) => e,
        other => panic!("{other:?}"),
    };
    let streams::StreamError::LastOperationFailed(err) =
        streams::Host::convert_stream_error(&mut h.io(), err).unwrap()
    else {
        panic!("not last-operation-failed")
    };
    assert_eq!(
        h.fs().filesystem_error_code(b(&err)).unwrap(),
        Some(ErrorCode::InsufficientSpace)
    );
    assert!(matches!(
        h.io().check_write(b(&w)),
        Err(StreamError::Closed)
    ));
    // A blocking write reports its own failure.
    let w = h.fs().write_via_stream(b(&f), 0).unwrap();
    assert!(matches!(
        h.io().blocking_write_and_flush(b(&w), b"too long".to_vec()),
        Err(StreamError::LastOperationFailed(_))
    ));
}

#[test]
fn directories_list_sorted_without_dots() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let s = h.fs().read_directory(b(&root)).unwrap();
    let mut entries = Vec::new();
    while let Some(e) = h.fs().read_directory_entry(b(&s)).unwrap() {
        entries.push((e.name, e.type_));
    }
    types::HostDirectoryEntryStream::drop(&mut h.fs(), s).unwrap();
    use DescriptorType as T;
    assert_eq!(
        entries,
        [
            ("abs".to_string(), T::SymbolicLink),
            ("data".to_string(), T::Directory),
            ("link".to_string(), T::SymbolicLink),
            ("ro".to_string(), T::Directory),
        ]
    );
    let a = h.open(&root, "data/a", O::empty(), D::READ).unwrap();
    assert_eq!(code(h.fs().read_directory(b(&a))), ErrorCode::NotDirectory);
}

#[test]
fn stat_times_and_identity() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let link = h.fs().stat_at(b(&root), P::empty(), "link".into()).unwrap();
    assert_eq!((link.type_, link.size), (DescriptorType::SymbolicLink, 6));
    let a = h
        .fs()
        .stat_at(b(&root), P::SYMLINK_FOLLOW, "link".into())
        .unwrap();
    assert_eq!(
        (a.type_, a.size, a.link_count),
        (DescriptorType::RegularFile, 3, 1)
    );
    let when = wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
        seconds: 1_000,
        nanoseconds: 5,
    };
    h.fs()
        .set_times_at(
            b(&root),
            P::SYMLINK_FOLLOW,
            "link".into(),
            NewTimestamp::NoChange,
            NewTimestamp::Timestamp(when),
        )
        .unwrap();
    let a = h
        .fs()
        .stat_at(b(&root), P::empty(), "data/a".into())
        .unwrap();
    let mtime = a
        .data_modification_timestamp
        .map(|d| (d.seconds, d.nanoseconds));
    assert_eq!(mtime, Some((when.seconds, when.nanoseconds)));

    // Identity and metadata hashes: the same node through two paths.
    let x = h.open(&root, "link", O::empty(), D::READ).unwrap();
    let y = h.open(&root, "data/a", O::empty(), rw()).unwrap();
    let z = h.open(&root, "data/b", O::empty(), D::READ).unwrap();
    assert!(h.fs().is_same_object(b(&x), b(&y)).unwrap());
    assert!(!h.fs().is_same_object(b(&x), b(&z)).unwrap());
    let hash = |v: types::MetadataHashValue| (v.lower, v.upper);
    let hx = hash(h.fs().metadata_hash(b(&x)).unwrap());
    let hat = hash(
        h.fs()
            .metadata_hash_at(b(&root), P::SYMLINK_FOLLOW, "link".into())
            .unwrap(),
    );
    assert_eq!(hx, hat);
    assert_ne!(hx, hash(h.fs().metadata_hash(b(&z)).unwrap()));
    h.fs().write(b(&y), b"changed".to_vec(), 0).unwrap();
    assert_ne!(hx, hash(h.fs().metadata_hash(b(&x)).unwrap()));
}

#[test]
fn names_are_made_and_removed() {
    let mut h = Host::new();
    let (root, _) = h.preopens();
    let data = h.open(&root, "data", O::DIRECTORY, D::READ).unwrap();
    h.fs().create_directory_at(b(&data), "d".into()).unwrap();
    assert_eq!(
        code(h.fs().create_directory_at(b(&data), "d".into())),
        ErrorCode::Exist
    );
    h.fs()
        .rename_at(b(&root), "data/a".into(), b(&data), "d/a2".into())
        .unwrap();
    h.fs()
        .link_at(b(&data), P::empty(), "d/a2".into(), b(&root), "hard".into())
        .unwrap();
    h.fs()
        .symlink_at(b(&root), "/data/d/a2".into(), "sym".into())
        .unwrap();
    assert_eq!(
        h.fs().readlink_at(b(&root), "sym".into()).unwrap(),
        "/data/d/a2"
    );
    assert_eq!(
        code(h.fs().readlink_at(b(&root), "hard".into())),
        ErrorCode::Invalid
    );
    let sym = h.open(&root, "sym", O::empty(), D::READ).unwrap();
    assert_eq!(h.read_all(&sym, 0, 64), "aaa");
    assert_eq!(
        code(h.fs().remove_directory_at(b(&data), "d".into())),
        ErrorCode::NotEmpty
    );
    assert_eq!(
        code(h.fs().unlink_file_at(b(&data), "d".into())),
        ErrorCode::IsDirectory
    );
    h.fs().unlink_file_at(b(&data), "d/a2".into()).unwrap();
    h.fs().remove_directory_at(b(&data), "d".into()).unwrap();
    assert_eq!(
        h.fs()
            .stat_at(b(&root), P::empty(), "hard".into())
            .unwrap()
            .link_count,
        1
    );
    // Across mounts: EXDEV.
    let (_, ro) = h.preopens();
    assert_eq!(
        code(
            h.fs()
                .link_at(b(&ro), P::empty(), "f".into(), b(&root), "f".into())
        ),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        code(
            h.fs()
                .rename_at(b(&root), "hard".into(), b(&root), "ro/hard".into())
        ),
        ErrorCode::CrossDevice
    );
}
