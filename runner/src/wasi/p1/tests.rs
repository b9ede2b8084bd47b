//! Preview1 host tests beyond the conformance suite
//! (`runner/tests/wasi_conformance.rs`): exit codes, cancellation of a
//! sleep, limits on guest-controlled sizes, VFS references of descriptors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::table::{Descriptor, Kind};
use super::types::{Fdflags, Rights};
use super::*;
use crate::digest::Digest;
use crate::exec::{Engine, Outcome, StepLimits};
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::vfs::{OpenFlags, OverlayFs, Scope, Vfs};
use crate::wasi::{Clocks, Limiter, Preopen, SecureRandom, Stdio};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    Fixture { _dir: dir, store }
}

fn vfs(f: &Fixture) -> Vfs {
    Vfs::new(OverlayFs::new(
        Arc::new(Snapshot::empty()),
        f.store.clone(),
        1,
        crate::vfs::system_clock(),
    ))
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn state(f: &Fixture, cancel: Arc<AtomicBool>, stdout: &Capture) -> StepState {
    let mut vfs = vfs(f);
    let preopens = vec![Preopen {
        guest_path: "/".into(),
        node: vfs.root(),
        scope: Scope::Clamp,
    }];
    StepState {
        vfs,
        args: vec!["test".into()],
        env: Vec::new(),
        cwd: "/".into(),
        p1: P1State::new(&preopens),
        preopens,
        stdio: Stdio {
            stdin: Box::new(std::io::empty()),
            stdout: Box::new(stdout.clone()),
            stderr: Box::new(std::io::sink()),
            terminal: false,
        },
        clocks: Clocks::system(),
        random: Box::new(SecureRandom),
        cancel,
        deadline: None,
        p2: crate::wasi::p2::P2State::unused(),
        limits: Limiter::new(1 << 30),
    }
}

/// Runs the module `wat` (which imports preview1 functions as needed).
fn run(engine: &Engine, f: &Fixture, wat: &str, cancel: Arc<AtomicBool>) -> (Outcome, String) {
    let bytes = wat::parse_str(wat).unwrap();
    let (program, _) = engine.load(&f.store, Digest::of(&bytes), &bytes).unwrap();
    let stdout = Capture::default();
    let (_, outcome) = engine.run(&program, state(f, cancel, &stdout), &StepLimits::default());
    let out = String::from_utf8(stdout.0.lock().unwrap().clone()).unwrap();
    (outcome, out)
}

#[test]
fn proc_exit_reports_the_exact_code() {
    let engine = Engine::new().unwrap();
    let f = fixture();
    for code in [0, 3, 42, 125, 255] {
        let wat = format!(
            r#"(module
                (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                (memory (export "memory") 1)
                (func (export "_start") (call $exit (i32.const {code}))))"#
        );
        let (outcome, _) = run(&engine, &f, &wat, Arc::new(AtomicBool::new(false)));
        assert_eq!(outcome, Outcome::Exit(code));
    }
}

#[test]
fn a_sleep_ends_promptly_on_cancel() {
    let engine = Engine::new().unwrap();
    let f = fixture();
    // Sleeps for 10 s at a time, forever: one subscription (48 bytes at 0)
    // of the monotonic clock (id 1) with a relative timeout, event at 64.
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "poll_oneoff"
            (func $poll (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
            (i32.store8 (i32.const 8) (i32.const 0))
            (i32.store (i32.const 16) (i32.const 1))
            (i64.store (i32.const 24) (i64.const 10000000000))
            (loop $again
                (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
                (br $again))))"#;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        flag.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let (outcome, _) = run(&engine, &f, wat, cancel);
    let ended = Instant::now();
    let cancelled_at = setter.join().unwrap();
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(ended.duration_since(cancelled_at) < Duration::from_secs(1));
}

#[test]
fn iovec_counts_are_capped() {
    let engine = Engine::new().unwrap();
    let f = fixture();
    // fd_write(1, iovs at 0, count, nwritten at 60000) with empty iovecs;
    // the errno becomes the exit code.
    let wat = |count: u32| {
        format!(
            r#"(module
                (import "wasi_snapshot_preview1" "fd_write"
                    (func $write (param i32 i32 i32 i32) (result i32)))
                (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                (memory (export "memory") 1)
                (func (export "_start")
                    (call $exit (call $write (i32.const 1) (i32.const 0)
                        (i32.const {count}) (i32.const 60000)))))"#
        )
    };
    let never = || Arc::new(AtomicBool::new(false));
    assert_eq!(
        run(&engine, &f, &wat(MAX_IOVECS), never()).0,
        Outcome::Exit(0)
    );
    let inval = types::Errno::Inval as i32;
    assert_eq!(
        run(&engine, &f, &wat(MAX_IOVECS + 1), never()).0,
        Outcome::Exit(inval)
    );
}

#[test]
fn stdout_writes_reach_the_step_writer() {
    let engine = Engine::new().unwrap();
    let f = fixture();
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "fd_write"
            (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 100) "hello, ")
        (data (i32.const 200) "world\n")
        (func (export "_start")
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 7))
            (i32.store (i32.const 8) (i32.const 200))
            (i32.store (i32.const 12) (i32.const 6))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))))"#;
    let (outcome, out) = run(&engine, &f, wat, Arc::new(AtomicBool::new(false)));
    assert_eq!(outcome, Outcome::Exit(0));
    assert_eq!(out, "hello, world\n");
}

#[test]
fn descriptors_hold_and_release_vfs_references() {
    let f = fixture();
    let mut vfs = vfs(&f);
    let root = vfs.root();
    let preopen = Preopen {
        guest_path: "/".into(),
        node: root,
        scope: Scope::Clamp,
    };
    let mut p1 = P1State::new(&[preopen]);
    let open = |vfs: &mut Vfs, name: &str| {
        let flags = OpenFlags {
            create: true,
            write: true,
            ..Default::default()
        };
        let node = vfs.open_at(root, Scope::Clamp, name, flags).unwrap();
        Descriptor {
            kind: Kind::File { node, pos: 0 },
            base: Rights::FD_READ | Rights::FD_WRITE,
            inheriting: Rights::empty(),
            flags: Fdflags::empty(),
        }
    };
    let a = open(&mut vfs, "a");
    let a_node = a.node().unwrap();
    let fd_a = p1.insert(&mut vfs, a).unwrap();
    // Stdio is 0-2 and the preopen 3: the lowest free number is 4.
    assert_eq!(fd_a, 4);
    // An open descriptor keeps an unlinked file alive; closing frees it.
    vfs.unlink_at(root, Scope::Clamp, "a").unwrap();
    assert!(vfs.stat(a_node).is_ok());
    p1.close(&mut vfs, fd_a).unwrap();
    assert!(vfs.stat(a_node).is_err());
    assert_eq!(p1.close(&mut vfs, fd_a), Err(types::Errno::Badf));
    // Renumbering over a descriptor closes what it was.
    let b = open(&mut vfs, "b");
    let b_node = b.node().unwrap();
    let fd_b = p1.insert(&mut vfs, b).unwrap();
    let c = open(&mut vfs, "c");
    let c_node = c.node().unwrap();
    let fd_c = p1.insert(&mut vfs, c).unwrap();
    vfs.unlink_at(root, Scope::Clamp, "b").unwrap();
    vfs.unlink_at(root, Scope::Clamp, "c").unwrap();
    p1.renumber(&mut vfs, fd_c, fd_b).unwrap();
    assert!(vfs.stat(b_node).is_err());
    assert!(vfs.stat(c_node).is_ok());
    // Closing everything releases the rest, the preopen included.
    p1.close_all(&mut vfs);
    assert!(vfs.stat(c_node).is_err());
    assert_eq!(p1.close(&mut vfs, 3), Err(types::Errno::Badf));
}
