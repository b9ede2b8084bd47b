//! WASI 0.2 components against kiln's VFS: the `probe` guest built for
//! `wasm32-wasip2`, and a few components written in the text format for
//! what a Rust program cannot do on demand (`exit-with-code`, a failing
//! `wasi:cli/run`, an import kiln does not provide).
//!
//! The guest is built once per test process (see [`probe`]); set
//! `KILN_GUEST_P2` to a built `probe.wasm` to skip that.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kiln::digest::Digest;
use kiln::exec::{self, Engine, Limit, Outcome, Program, StepLimits};
use kiln::layer::{Content, LayerOptions, PendingChanges, write_layer};
use kiln::snapshot::{Change, ImagePath, Meta, Node, Snapshot};
use kiln::store::Store;
use kiln::vfs::{OpenFlags, OverlayFs, Scope, Vfs, WriteLimits, system_clock};
use kiln::wasi::p1::P1State;
use kiln::wasi::p2::P2State;
use kiln::wasi::{Clocks, Limiter, Preopen, SecureRandom, Stdio, StepState};

/// The `probe` guest for `wasm32-wasip2`, built on first use.
fn probe() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        if let Some(path) = std::env::var_os("KILN_GUEST_P2") {
            return std::fs::read(&path).expect("reading KILN_GUEST_P2");
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests/Cargo.toml");
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-guests");
        let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            // The outer build's flags and wrappers are for the host crates.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("running cargo for the guest programs");
        assert!(
            status.success(),
            "building the probe guest for wasm32-wasip2 failed; is the target installed?"
        );
        let path: PathBuf = target_dir.join("wasm32-wasip2/release/probe.wasm");
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    })
}

/// One engine for the whole test process: components are compiled once
/// and kept in its memory.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().expect("creating the engine"))
}

/// A store in its own temp directory, with a lower image of
/// `/etc/passwd`, `/data/{a,b}`, `/data/sub/c`, `/link -> data/a` and
/// `/abs -> /data`.
struct Image {
    _dir: tempfile::TempDir,
    store: Store,
    lower: Arc<Snapshot>,
}

fn path(s: &str) -> ImagePath {
    ImagePath::parse(s).unwrap()
}

fn image() -> Image {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = PendingChanges::new();
    let dir_node = || Change::Put(Node::Dir(Meta::root(0o755, 10)));
    let file = |s: &str| {
        Change::Put(Node::File(
            Meta::root(0o644, 10),
            Content::Bytes(s.as_bytes().to_vec()),
        ))
    };
    c.insert(path("etc"), dir_node());
    c.insert(path("etc/passwd"), file("root:x:0:0::/:/bin/sh\n"));
    c.insert(path("data"), dir_node());
    c.insert(path("data/a"), file("aaa"));
    c.insert(path("data/b"), file("bbb"));
    c.insert(path("data/sub"), dir_node());
    c.insert(path("data/sub/c"), file("ccc"));
    c.insert(
        path("link"),
        Change::Put(Node::Symlink(Meta::root(0o777, 10), "data/a".into())),
    );
    c.insert(
        path("abs"),
        Change::Put(Node::Symlink(Meta::root(0o777, 10), "/data".into())),
    );
    let layer = write_layer(&store, c, &LayerOptions::default()).unwrap();
    let mut snap = Snapshot::empty();
    snap.apply(&layer.changes);
    Image {
        _dir: dir,
        store,
        lower: Arc::new(snap),
    }
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    watch: Option<Arc<Watch>>,
}

/// Notes when the first write came.
#[derive(Default)]
struct Watch {
    first_write: Mutex<Option<Instant>>,
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        if let Some(w) = &self.watch {
            w.first_write
                .lock()
                .unwrap()
                .get_or_insert_with(Instant::now);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How to run a step.
struct Step<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    cwd: &'a str,
    stdout: Capture,
    write_limits: WriteLimits,
    cancel: Arc<AtomicBool>,
}

impl<'a> Step<'a> {
    fn new(args: &'a [&'a str]) -> Step<'a> {
        Step {
            args,
            env: &[],
            cwd: "/",
            stdout: Capture::default(),
            write_limits: WriteLimits::default(),
            cancel: exec::cancel_flag(),
        }
    }
}

/// A finished step.
struct Ran {
    /// Keeps the store the VFS reads from.
    _image: Image,
    state: StepState,
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The layer's change set, as `path kind` lines.
    fn changes(&mut self) -> Vec<String> {
        let changes = self.state.vfs.overlay().changes().unwrap();
        changes
            .iter()
            .map(|(p, c)| {
                let what = match c {
                    Change::Put(Node::Dir(_)) => "dir".to_string(),
                    Change::Put(Node::File(..)) => "file".to_string(),
                    Change::Put(Node::Symlink(_, t)) => format!("symlink {t}"),
                    Change::Hardlink(t) => format!("hardlink {}", t.as_str()),
                    Change::Whiteout => "whiteout".into(),
                    Change::Opaque(_) => "opaque".into(),
                };
                format!("{} {what}", p.as_str())
            })
            .collect()
    }

    /// The contents of `p` in the step's filesystem after it ran.
    fn read(&mut self, p: &str) -> String {
        let vfs = &mut self.state.vfs;
        let root = vfs.root();
        let flags = OpenFlags {
            follow: true,
            ..Default::default()
        };
        let node = vfs.open_at(root, Scope::Clamp, p, flags).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = vfs.read(node, 0, &mut buf).unwrap();
        vfs.close(node);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

fn load(store: &Store, bytes: &[u8]) -> wasmtime::Result<Program> {
    Ok(engine().load(store, Digest::of(bytes), bytes)?.0)
}

fn run_bytes(bytes: &[u8], step: Step<'_>) -> Ran {
    let image = image();
    let program = load(&image.store, bytes).expect("loading the component");
    let mut vfs = Vfs::new(OverlayFs::new(
        Arc::clone(&image.lower),
        image.store.clone(),
        1,
        system_clock(),
    ));
    vfs.overlay().set_limits(step.write_limits);
    let root = vfs.root();
    let preopens = vec![Preopen {
        guest_path: "/".into(),
        node: root,
        scope: Scope::Clamp,
    }];
    let stderr = Capture::default();
    let mut stdio = Stdio {
        stdin: Box::new(io::empty()),
        stdout: Box::new(step.stdout.clone()),
        stderr: Box::new(stderr.clone()),
        terminal: false,
    };
    let args: Vec<String> = std::iter::once("probe")
        .chain(step.args.iter().copied())
        .map(String::from)
        .collect();
    let env: Vec<(String, String)> = step
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let clocks = Clocks::system();
    let p2 = P2State::new(&mut stdio, &clocks, None);
    let state = StepState {
        vfs,
        args,
        env,
        cwd: step.cwd.into(),
        p1: P1State::new(&preopens),
        preopens,
        stdio,
        clocks,
        random: Box::new(SecureRandom),
        cancel: step.cancel,
        deadline: None,
        p2,
        limits: Limiter::new(exec::DEFAULT_MEMORY),
    };
    let (state, outcome) = engine().run(&program, state, &StepLimits::default());
    Ran {
        _image: image,
        state: state.expect("the program ended (no test here lets one go)"),
        outcome,
        stdout: step.stdout.text(),
        stderr: stderr.text(),
    }
}

/// Runs `probe` with `args` from `/`.
fn run(args: &[&str]) -> Ran {
    run_bytes(probe(), Step::new(args))
}

fn assert_exit(ran: &Ran, code: i32) {
    assert_eq!(
        ran.outcome,
        Outcome::Exit(code),
        "stdout: {}\nstderr: {}",
        ran.stdout,
        ran.stderr
    );
}

#[test]
fn stdout_and_stderr_reach_the_step_writers() {
    let ran = run(&["echo", "hello", "world", "--", "stderr", "oops"]);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "hello world\n");
    assert_eq!(ran.stderr, "oops\n");
}

#[test]
fn stdout_is_streamed_while_the_guest_runs() {
    let watch = Arc::new(Watch::default());
    let stdout = Capture {
        watch: Some(Arc::clone(&watch)),
        ..Capture::default()
    };
    let args = ["echo", "early", "--", "sleep", "300", "--", "echo", "late"];
    let step = Step {
        stdout,
        ..Step::new(&args)
    };
    let ran = run_bytes(probe(), step);
    let ended = Instant::now();
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "early\nlate\n");
    // The guest sleeps 300 ms after its first line: that line must have
    // reached the writer then, not when the guest exited.
    let first = watch.first_write.lock().unwrap().expect("a write");
    assert!(
        ended - first >= Duration::from_millis(200),
        "the first line reached the writer only {:?} before the step ended",
        ended - first
    );
}

#[test]
fn args_and_env_are_the_steps() {
    let args = ["args", "--", "env"];
    let step = Step {
        env: &[("PATH", "/bin"), ("HOME", "/root")],
        ..Step::new(&args)
    };
    let ran = run_bytes(probe(), step);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "probe\nargs\n--\nenv\nHOME=/root\nPATH=/bin\n");
}

/// A component that exits with the length of `initial-cwd` (255 if none).
/// Rust's standard library for `wasm32-wasip2` does not ask for it yet (its
/// wasi-libc starts every program in `/`), so the call is written out here.
const INITIAL_CWD_LEN: &str = r#"
(component
  (import "wasi:cli/environment@0.2.12" (instance $env
    (export "initial-cwd" (func (result (option string))))))
  (import "wasi:cli/exit@0.2.12" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (global.get $next))
      (global.set $next (i32.add (global.get $next) (local.get 3)))
      (local.get $at)))
  (core instance $libc (instantiate $libc))
  (core func $initial_cwd (canon lower (func $env "initial-cwd")
    (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core instance $host
    (export "initial-cwd" (func $initial_cwd))
    (export "exit-with-code" (func $exit_with_code)))
  (core module $main
    (import "libc" "memory" (memory 1))
    (import "host" "initial-cwd" (func $initial_cwd (param i32)))
    (import "host" "exit-with-code" (func $exit (param i32)))
    (func (export "run") (result i32)
      (call $initial_cwd (i32.const 0))
      (if (i32.eqz (i32.load8_u (i32.const 0)))
        (then (call $exit (i32.const 255))))
      (call $exit (i32.load (i32.const 8)))
      (i32.const 0)))
  (core instance $main (instantiate $main
    (with "libc" (instance $libc))
    (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))
"#;

#[test]
fn the_initial_cwd_is_the_workdir() {
    let bytes = wat::parse_str(INITIAL_CWD_LEN).unwrap();
    let step = Step {
        cwd: "/data/sub",
        ..Step::new(&[])
    };
    assert_exit(&run_bytes(&bytes, step), "/data/sub".len() as i32);
    assert_exit(&run_bytes(&bytes, Step::new(&[])), 1);
}

#[test]
fn relative_paths_resolve_from_the_root() {
    // wasi-libc starts in `/` and resolves relative paths against it.
    let mut ran = run(&["cat", "data/sub/c", "--", "write", "data/new", "x"]);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "ccc");
    assert_eq!(ran.read("data/new"), "x");
}

#[test]
fn exit_codes() {
    assert_exit(&run(&["noop"]), 0);
    // A failed operation: the probe reports it and exits with 1.
    let ran = run(&["cat", "/nope"]);
    assert_exit(&ran, 1);
    assert!(
        ran.stderr.contains("No such file or directory"),
        "{}",
        ran.stderr
    );
}

/// A component whose `wasi:cli/run` calls `exit-with-code(42)`: Rust's
/// standard library for `wasm32-wasip2` (its wasi-libc) still reports any
/// nonzero `exit` as `exit(err)`, so the call is written out here.
const EXIT_WITH_CODE: &str = r#"
(component
  (import "wasi:cli/exit@0.2.12" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "host" "exit-with-code" (func $exit (param i32)))
    (func (export "run") (result i32)
      (call $exit (i32.const 42))
      (i32.const 0)))
  (core instance $host (export "exit-with-code" (func $exit_with_code)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))
"#;

#[test]
fn exit_with_code_is_the_exit_code() {
    let bytes = wat::parse_str(EXIT_WITH_CODE).unwrap();
    assert_exit(&run_bytes(&bytes, Step::new(&[])), 42);
}

#[test]
fn a_failed_run_is_exit_code_1() {
    let bytes = wat::parse_str(
        r#"(component
             (core module $m (func (export "run") (result i32) (i32.const 1)))
             (core instance $i (instantiate $m))
             (func $run (result (result)) (canon lift (core func $i "run")))
             (instance $run (export "run" (func $run)))
             (export "wasi:cli/run@0.2.0" (instance $run)))"#,
    )
    .unwrap();
    assert_exit(&run_bytes(&bytes, Step::new(&[])), 1);
}

#[test]
fn imports_kiln_does_not_provide_fail_to_instantiate() {
    let bytes = wat::parse_str(
        r#"(component
             (import "wasi:sockets/ip-name-lookup@0.2.0" (instance
               (export "resolve-addresses" (func))))
             (core module $m (func (export "run") (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func $run (result (result)) (canon lift (core func $i "run")))
             (instance $run (export "run" (func $run)))
             (export "wasi:cli/run@0.2.0" (instance $run)))"#,
    )
    .unwrap();
    let image = image();
    let err = match load(&image.store, &bytes) {
        Ok(_) => panic!("a component importing wasi:sockets loaded"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        err.contains("wasi:sockets/ip-name-lookup@0.2.0") && err.contains("not found"),
        "the error should name the import: {err}"
    );
}

#[test]
fn a_trap_is_reported_as_a_trap() {
    let ran = run(&["trap"]);
    assert!(matches!(ran.outcome, Outcome::Trap(_)), "{:?}", ran.outcome);
}

#[test]
fn reads_lower_files_and_lists_sorted() {
    let ran = run(&[
        "cat",
        "/etc/passwd",
        "--",
        "ls",
        "/data",
        "--",
        "ls",
        "/",
        "--",
        "stat",
        "/data/a",
        "--",
        "stat",
        "/link",
        "--",
        "stat",
        "/data",
    ]);
    assert_exit(&ran, 0);
    assert_eq!(
        ran.stdout,
        "root:x:0:0::/:/bin/sh\na b sub\nabs data etc link\nfile 3\nsymlink 6\ndir 0\n"
    );
}

#[test]
fn dotdot_is_clamped_at_the_image_root() {
    let args = ["cat", "/../../etc/passwd", "--", "cat", "../../../data/a"];
    let step = Step {
        cwd: "/data",
        ..Step::new(&args)
    };
    let ran = run_bytes(probe(), step);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "root:x:0:0::/:/bin/sh\naaa");
}

#[test]
fn absolute_symlinks_resolve_inside_the_image() {
    let ran = run(&[
        "cat",
        "/abs/sub/c",
        "--",
        "cat",
        "/link",
        "--",
        "readlink",
        "/abs",
        "--",
        "ls",
        "/abs",
    ]);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "cccaaa/data\na b sub\n");
}

#[test]
fn file_changes_become_the_layer() {
    let mut ran = run(&[
        "write",
        "/new",
        "fresh",
        "--", // created
        "write",
        "/data/a",
        "AAAA",
        "--", // overwritten (a lower file)
        "append",
        "/data/b",
        "+",
        "--", // appended
        "rm",
        "/etc/passwd",
        "--", // deleted
        "mv",
        "/data/sub/c",
        "/moved",
        "--", // renamed
        "ln-s",
        "/data/b",
        "/sym",
        "--", // symlinked
        "ln",
        "/new",
        "/hard",
        "--", // hard-linked
        "mkdir",
        "/x/y/z",
    ]);
    assert_exit(&ran, 0);
    assert_eq!(
        ran.changes(),
        [
            "data/a file",
            "data/b file",
            "data/sub dir",
            "data/sub/c whiteout",
            "etc dir",
            "etc/passwd whiteout",
            "hard file",
            "moved file",
            "new hardlink hard",
            "sym symlink /data/b",
            "x dir",
            "x/y dir",
            "x/y/z dir",
        ]
    );
    assert_eq!(ran.read("new"), "fresh");
    assert_eq!(ran.read("hard"), "fresh");
    assert_eq!(ran.read("data/a"), "AAAA");
    assert_eq!(ran.read("data/b"), "bbb+");
    assert_eq!(ran.read("moved"), "ccc");
    assert_eq!(ran.read("sym"), "bbb+");
}

#[test]
fn directories_are_removed_recursively() {
    let mut ran = run(&["rm-r", "/data", "--", "exists", "/data", "--", "ls", "/"]);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "false\nabs etc link\n");
    assert_eq!(ran.changes(), ["data whiteout"]);
}

#[test]
fn big_files_round_trip_through_streams() {
    // Three mebibytes: several stream reads and writes, larger than one
    // host buffer.
    let ran = run(&[
        "big", "/big", "3", "--", "sum", "/big", "--", "stat", "/big",
    ]);
    assert_exit(&ran, 0);
    let mut sum = 0u64;
    for i in 0..3usize {
        for j in 0..(1usize << 20) {
            let b = i.wrapping_mul(31).wrapping_add(j) as u8;
            sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
    assert_eq!(
        ran.stdout,
        format!("{} {sum:x}\nfile {}\n", 3 << 20, 3 << 20)
    );
}

#[test]
fn errors_reach_the_guest_as_errno() {
    let ran = run(&["mkdir", "/data/a/x"]);
    assert_exit(&ran, 1);
    assert!(ran.stderr.contains("Not a directory"), "{}", ran.stderr);
    let ran = run(&["rmdir", "/data"]);
    assert_exit(&ran, 1);
    assert!(ran.stderr.contains("not empty"), "{}", ran.stderr);
}

#[test]
fn a_write_limit_reaches_the_guest_and_the_outcome() {
    let args = ["big", "/big", "2"];
    let step = Step {
        write_limits: WriteLimits {
            max_bytes: 1 << 20,
            max_files: u64::MAX,
        },
        ..Step::new(&args)
    };
    let ran = run_bytes(probe(), step);
    // The store fails with ENOSPC; Rust's wasi-libc does not ask
    // `filesystem-error-code` about stream errors, so the guest sees EIO.
    assert!(ran.stderr.contains("I/O error"), "{}", ran.stderr);
    assert_eq!(
        ran.outcome,
        Outcome::Limit(Limit::WriteBytes(StepLimits::default().max_write))
    );
}

#[test]
fn clocks_and_random_work() {
    let ran = run(&["time", "--", "random", "--", "random"]);
    assert_exit(&ran, 0);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t: u64 = lines[0].parse().unwrap();
    assert!(t.abs_diff(now) < 60, "{t} vs {now}");
    assert_eq!(lines[1].len(), 32);
    assert_ne!(lines[1], lines[2]);
}

#[test]
fn ctrl_c_stops_a_sleeping_guest() {
    let args = ["sleep", "60000"];
    let step = Step::new(&args);
    let cancel = Arc::clone(&step.cancel);
    let started = Instant::now();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, Ordering::Relaxed);
    });
    let ran = run_bytes(probe(), step);
    setter.join().unwrap();
    assert_eq!(ran.outcome, Outcome::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn writing_through_a_dangling_symlink_creates_its_target() {
    let mut ran = run(&[
        "ln-s",
        "/data/newfile",
        "/dangling",
        "--",
        "write",
        "/dangling",
        "hi",
        "--",
        "cat",
        "/data/newfile",
    ]);
    assert_exit(&ran, 0);
    assert_eq!(ran.stdout, "hi");
    assert_eq!(
        ran.changes(),
        [
            "dangling symlink /data/newfile",
            "data dir",
            "data/newfile file"
        ]
    );
}
