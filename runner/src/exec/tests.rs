//! Engine tests with tiny hand-written modules.

use std::sync::Arc;

use super::*;
use crate::snapshot::Snapshot;
use crate::vfs::{OverlayFs, Scope, Vfs, system_clock};
use crate::wasi::{Clocks, Preopen, SecureRandom, Stdio};

fn state(store: &Store) -> StepState {
    let mut vfs = Vfs::new(OverlayFs::new(
        Arc::new(Snapshot::empty()),
        store.clone(),
        1,
        system_clock(),
    ));
    let preopens = vec![Preopen {
        guest_path: "/".into(),
        node: vfs.root(),
        scope: Scope::Clamp,
    }];
    StepState {
        p1: wasi::p1::P1State::new(&preopens),
        p2: wasi::p2::P2State::unused(),
        vfs,
        args: vec!["t".into()],
        env: Vec::new(),
        cwd: "/".into(),
        preopens,
        stdio: Stdio {
            stdin: Box::new(std::io::empty()),
            stdout: Box::new(std::io::sink()),
            stderr: Box::new(std::io::sink()),
            terminal: false,
        },
        clocks: Clocks::system(),
        random: Box::new(SecureRandom),
        cancel: cancel_flag(),
        deadline: None,
        limits: wasi::Limiter {
            max_memory: 64 << 20,
            hit: false,
        },
    }
}

fn run_wat(engine: &Engine, store: &Store, wat: &str, limits: &StepLimits) -> Outcome {
    let bytes = wat::parse_str(wat).unwrap();
    let (program, _) = engine.load(store, Digest::of(&bytes), &bytes).unwrap();
    engine.run(&program, state(store), limits).1
}

#[test]
fn modules_using_the_exceptions_proposal_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let wat = r#"(module
        (tag $e (param i32))
        (func (export "_start")
          (block $caught (result i32)
            (try_table (catch $e $caught)
              (throw $e (i32.const 42)))
            (unreachable))
          (drop)))"#;
    assert_eq!(
        run_wat(&engine, &store, wat, &StepLimits::default()),
        Outcome::Exit(0)
    );
}

#[test]
fn traps_timeouts_and_memory_limits_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let trap = run_wat(
        &engine,
        &store,
        r#"(module (func (export "_start") unreachable))"#,
        &StepLimits::default(),
    );
    assert!(
        matches!(trap, Outcome::Trap(ref m) if m.contains("unreachable")),
        "{trap:?}"
    );
    let limits = StepLimits {
        timeout: Duration::from_millis(200),
        ..StepLimits::default()
    };
    let spin = run_wat(
        &engine,
        &store,
        r#"(module (func (export "_start") (loop br 0)))"#,
        &limits,
    );
    assert_eq!(
        spin,
        Outcome::Limit(Limit::Time(Duration::from_millis(200)))
    );
    let limits = StepLimits {
        memory: 1 << 20,
        ..StepLimits::default()
    };
    let grow = r#"(module (memory 1)
        (func (export "_start") (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))))"#;
    assert_eq!(
        run_wat(&engine, &store, grow, &limits),
        Outcome::Limit(Limit::Memory(1 << 20))
    );
}

#[test]
fn compiled_code_comes_from_the_cache_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bytes = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let digest = Digest::of(&bytes);
    let first = Engine::new().unwrap();
    assert_eq!(
        first.load(&store, digest, &bytes).unwrap().1,
        LoadedFrom::Compiled
    );
    assert_eq!(
        first.load(&store, digest, &bytes).unwrap().1,
        LoadedFrom::Memory
    );
    let second = Engine::new().unwrap();
    assert_eq!(
        second.load(&store, digest, &bytes).unwrap().1,
        LoadedFrom::Cache
    );
    assert!(first.load(&store, Digest::of(b"junk"), b"junk").is_err());
    let no_start = wat::parse_str("(module)").unwrap();
    let (p, _) = first
        .load(&store, Digest::of(&no_start), &no_start)
        .unwrap();
    let out = first.run(&p, state(&store), &StepLimits::default()).1;
    assert!(
        matches!(out, Outcome::Trap(ref m) if m.contains("no _start")),
        "{out:?}"
    );
}

#[test]
fn a_timeout_past_the_end_of_the_clock_means_no_deadline_not_a_panic() {
    // `--step-timeout 18446744073709551615` once panicked in `now + timeout`.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let limits = StepLimits {
        timeout: Duration::MAX,
        ..StepLimits::default()
    };
    let wat = r#"(module (func (export "_start")))"#;
    assert_eq!(run_wat(&engine, &store, wat, &limits), Outcome::Exit(0));
}
