//! The WASI preview1 conformance suite (WebAssembly/wasi-testsuite, the
//! wasm32-wasip1 tests for Rust, C and AssemblyScript) run through kiln's
//! own preview1 host over the VFS, as a step would run them: an overlay
//! root over an empty image, the test's `root` folder (copied to a temp
//! directory) mounted at `/` through a read-write [`HostFs`], `/` preopened
//! with [`Scope::Clamp`], stdout and stderr captured.
//!
//! Every test runs in one test function so one report names every failure
//! and why. A test listed in [`EXPECTED_FAILURES`] must fail, for the reason
//! given there; if it starts to pass, this test says so.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln::digest::Digest;
use kiln::exec::{Engine, Outcome, StepLimits};
use kiln::snapshot::{ImagePath, Snapshot};
use kiln::store::Store;
use kiln::vfs::{HostFs, OverlayFs, Scope, Vfs, system_clock};
use kiln::wasi::p1::P1State;
use kiln::wasi::p2::P2State;
use kiln::wasi::{Clocks, Limiter, Preopen, SecureRandom, Stdio, StepState};

/// Where the prebuilt suite lives: `shared/wasi-testsuite` beside the
/// workspace, as in CI.
const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/wasi-testsuite");

/// Tests that cannot pass in kiln, with the reason.
const EXPECTED_FAILURES: &[(&str, &str)] = &[(
    "c/sock_shutdown-invalid_fd",
    "the test calls shutdown(3) assuming fd 3 is not open (the reference \
     runner preopens nothing for a test without a root); kiln always \
     preopens `/` at fd 3, and shutdown of an open descriptor that is not a \
     socket is ENOTSOCK (as in wasmtime), not the EBADF the test expects",
)];

/// A test's `NAME.json` (missing keys take the defaults of the suite's
/// README).
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Spec {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    root: Option<String>,
    exit_code: i32,
    stdout: String,
    stderr: String,
}

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// Copies the folder `from` to `to`, leaving out `*.cleanup` entries (tests
/// leave them behind on purpose).
fn copy_root(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".cleanup") {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_root(&entry.path(), &to.join(&name))?;
        } else if kind.is_symlink() {
            copy_symlink(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_symlink(from: &Path, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
}

#[cfg(not(unix))]
fn copy_symlink(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to).map(drop)
}

/// The state a test runs with.
fn step_state(
    store: &Store,
    root: Option<&Path>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdout: &Capture,
    stderr: &Capture,
) -> StepState {
    let overlay = OverlayFs::new(
        Arc::new(Snapshot::empty()),
        store.clone(),
        1,
        system_clock(),
    );
    let mut vfs = Vfs::new(overlay);
    if let Some(root) = root {
        let host = HostFs::open(root, false, 2).expect("opening the test root");
        vfs.mount(&ImagePath::root(), Box::new(host), true)
            .expect("mounting the test root");
    }
    let preopens = vec![Preopen {
        guest_path: "/".into(),
        node: vfs.root(),
        scope: Scope::Clamp,
    }];
    StepState {
        vfs,
        args,
        env,
        cwd: "/".into(),
        p1: P1State::new(&preopens),
        preopens,
        stdio: Stdio {
            stdin: Box::new(std::io::empty()),
            stdout: Box::new(stdout.clone()),
            stderr: Box::new(stderr.clone()),
            terminal: false,
        },
        clocks: Clocks::system(),
        random: Box::new(SecureRandom),
        cancel: Arc::new(AtomicBool::new(false)),
        deadline: None,
        p2: P2State::unused(),
        limits: Limiter::new(4 << 30),
    }
}

/// Runs one test; `Err` says why it failed.
fn run_test(engine: &Engine, store: &Store, dir: &Path, name: &str) -> Result<(), String> {
    let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).map_err(|e| e.to_string())?;
    let spec: Spec = match std::fs::read(dir.join(format!("{name}.json"))) {
        Ok(json) => serde_json::from_slice(&json).map_err(|e| format!("bad json: {e}"))?,
        Err(_) => Spec::default(),
    };
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = match &spec.root {
        Some(root) => {
            let copy = scratch.path().join("root");
            copy_root(&dir.join(root), &copy).map_err(|e| format!("copying the root: {e}"))?;
            Some(copy)
        }
        None => None,
    };
    let (program, _) = engine
        .load(store, Digest::of(&bytes), &bytes)
        .map_err(|e| format!("loading: {e:?}"))?;
    let args = std::iter::once(name.to_string())
        .chain(spec.args.iter().cloned())
        .collect();
    let env = spec.env.clone().into_iter().collect();
    let (stdout, stderr) = (Capture::default(), Capture::default());
    let state = step_state(store, root.as_deref(), args, env, &stdout, &stderr);
    let (_, outcome) = engine.run(&program, state, &StepLimits::default());
    let (out, err) = (stdout.text(), stderr.text());
    let mut why = Vec::new();
    if outcome != Outcome::Exit(spec.exit_code) {
        let ended = match &outcome {
            // The wasm backtrace and cause, not the host's backtrace.
            Outcome::Trap(msg) => format!(
                "Trap({:?})",
                msg.split("\nStack backtrace").next().unwrap_or(msg)
            ),
            other => format!("{other:?}"),
        };
        why.push(format!(
            "ended with {ended}, expected exit code {}",
            spec.exit_code
        ));
    }
    if !out.starts_with(&spec.stdout) {
        why.push(format!("stdout does not start with {:?}", spec.stdout));
    }
    if !err.starts_with(&spec.stderr) {
        why.push(format!("stderr does not start with {:?}", spec.stderr));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n      stdout: {out:?}\n      stderr: {err:?}",
            why.join("; ")
        ))
    }
}

/// Every `NAME.wasm` of the suite, as (suite folder, NAME), sorted.
fn tests() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for suite in ["assemblyscript", "c", "rust"] {
        let dir = Path::new(SUITE).join(suite);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".wasm").map(str::to_string))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| (dir.clone(), n)));
    }
    out
}

#[test]
fn wasi_testsuite_preview1_passes() {
    let engine = Engine::new().expect("creating the engine");
    let store_dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(store_dir.path()).expect("opening a store");
    let tests = tests();
    assert_eq!(tests.len(), 72, "the suite has 72 wasm32-wasip1 tests");
    let mut failures = Vec::new();
    let mut passed = 0;
    for (dir, name) in &tests {
        let suite = dir.file_name().unwrap_or_default().to_string_lossy();
        let id = format!("{suite}/{name}");
        let expected = EXPECTED_FAILURES.iter().find(|(t, _)| *t == id);
        match (run_test(&engine, &store, dir, name), expected) {
            (Ok(()), None) => passed += 1,
            (Ok(()), Some(_)) => failures.push(format!(
                "{id}: passes now; remove it from EXPECTED_FAILURES"
            )),
            (Err(why), None) => failures.push(format!("{id}: {why}")),
            (Err(_), Some(_)) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{passed}/{} wasi-testsuite tests passed ({} expected failures); unexpected:\n  {}",
        tests.len(),
        EXPECTED_FAILURES.len(),
        failures.join("\n  ")
    );
}
