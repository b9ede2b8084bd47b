//! Engine tests with tiny hand-written modules.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::snapshot::Snapshot;
use crate::store::Store;
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
        limits: wasi::Limiter::new(64 << 20),
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
    assert_eq!(
        run_wat(&engine, &store, SPIN, &limits),
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

const MIB: usize = 1 << 20;
/// 100 MiB in wasm pages.
const PAGES_100_MIB: usize = 1600;

fn limited(memory: usize) -> StepLimits {
    StepLimits {
        memory,
        ..StepLimits::default()
    }
}

#[test]
fn eight_memories_of_100_mib_hit_a_128m_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let memories = format!("(memory {PAGES_100_MIB})").repeat(8);
    let wat = format!(r#"(module {memories} (func (export "_start")))"#);
    assert_eq!(
        run_wat(&engine, &store, &wat, &limited(128 * MIB)),
        Outcome::Limit(Limit::Memory(128 * MIB))
    );
    // Each one alone is within the limit: it is the sum that is refused.
    let one = format!(r#"(module (memory {PAGES_100_MIB}) (func (export "_start")))"#);
    assert_eq!(
        run_wat(&engine, &store, &one, &limited(128 * MIB)),
        Outcome::Exit(0)
    );
}

#[test]
fn a_memory_growing_past_the_sum_of_all_memories_hits_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    // 100 MiB + 1 page, then the small memory grows by `$pages`: 400 pages
    // (25 MiB) keeps the sum under 128 MiB, 500 pages (31.25 MiB) does not,
    // though the grown memory alone stays far below the limit.
    let wat = |pages: u32| {
        format!(
            r#"(module (memory {PAGES_100_MIB}) (memory 1)
            (func (export "_start")
              (if (i32.eq (memory.grow 1 (i32.const {pages})) (i32.const -1)) (then unreachable))))"#
        )
    };
    assert_eq!(
        run_wat(&engine, &store, &wat(400), &limited(128 * MIB)),
        Outcome::Exit(0)
    );
    assert_eq!(
        run_wat(&engine, &store, &wat(500), &limited(128 * MIB)),
        Outcome::Limit(Limit::Memory(128 * MIB))
    );
}

#[test]
fn table_elements_count_against_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let elements = 2 * MIB / limiter::TABLE_ELEMENT_BYTES;
    let wat = format!(r#"(module (memory 1) (table {elements} funcref) (func (export "_start")))"#);
    assert_eq!(
        run_wat(&engine, &store, &wat, &limited(2 * MIB)),
        Outcome::Limit(Limit::Memory(2 * MIB))
    );
    assert_eq!(
        run_wat(&engine, &store, &wat, &limited(3 * MIB)),
        Outcome::Exit(0)
    );
}

/// A WASI command component whose `run` is in the first of `instances`
/// core instances of a module that also defines `items` (memories, tables).
fn component(instances: usize, items: &str) -> String {
    let mut wat = format!(
        r#"(component
          (core module $m
            {items}
            (func (export "run") (result i32) i32.const 0))
        "#
    );
    for i in 0..instances {
        wat.push_str(&format!("(core instance $i{i} (instantiate $m))\n"));
    }
    wat.push_str(
        r#"(func $run (result (result)) (canon lift (core func $i0 "run")))
          (instance $r (export "run" (func $run)))
          (export "wasi:cli/run@0.2.0" (instance $r)))"#,
    );
    wat
}

#[test]
fn a_component_is_counted_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    // Three core instances of 50 MiB each: each within 128 MiB, the
    // component not.
    let three = component(3, &format!("(memory {})", PAGES_100_MIB / 2));
    assert_eq!(
        run_wat(&engine, &store, &three, &limited(200 * MIB)),
        Outcome::Exit(0)
    );
    assert_eq!(
        run_wat(&engine, &store, &three, &limited(128 * MIB)),
        Outcome::Limit(Limit::Memory(128 * MIB))
    );
}

#[test]
fn instance_memory_and_table_caps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let limits = StepLimits::default();
    let memories = "(memory 0)".repeat(limiter::MAX_MEMORIES + 1);
    let wat = format!(r#"(module {memories} (func (export "_start")))"#);
    assert_eq!(
        run_wat(&engine, &store, &wat, &limits),
        Outcome::Limit(Limit::Memories(limiter::MAX_MEMORIES))
    );
    // wasmparser allows 100 tables per module: the cap is over instances.
    let wat = component(
        limiter::MAX_TABLES / 100 + 1,
        &"(table 0 funcref)".repeat(100),
    );
    assert_eq!(
        run_wat(&engine, &store, &wat, &limits),
        Outcome::Limit(Limit::Tables(limiter::MAX_TABLES))
    );
    let wat = component(limiter::MAX_INSTANCES + 1, "");
    let out = run_wat(&engine, &store, &wat, &limits);
    assert_eq!(
        out,
        Outcome::Limit(Limit::Instances(limiter::MAX_INSTANCES))
    );
    let Outcome::Limit(cap) = out else {
        unreachable!()
    };
    assert!(describe_limit(&cap).contains("more than 256 wasm instances"));
    // At the caps, all is well.
    assert_eq!(
        run_wat(
            &engine,
            &store,
            &component(limiter::MAX_INSTANCES, ""),
            &limits
        ),
        Outcome::Exit(0)
    );
}

#[test]
fn atomics_run_on_unshared_and_shared_memories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    // What a program built with `+atomics` for one thread does: atomic
    // read-modify-writes on its (unshared) memory.
    for memory in ["(memory 1)", "(memory 1 2 shared)"] {
        let wat = format!(
            r#"(module {memory}
                (func (export "_start")
                  (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 5)))
                  (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 37)))
                  (if (i32.ne (i32.atomic.load (i32.const 8)) (i32.const 42))
                    (then unreachable))))"#
        );
        assert_eq!(
            run_wat(&engine, &store, &wat, &StepLimits::default()),
            Outcome::Exit(0),
            "{memory}"
        );
    }
}

#[test]
fn shared_memories_count_at_their_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    // wasmtime does not ask the limiter when a shared memory grows: kiln
    // counts its maximum before the program starts.
    let wat = format!(r#"(module (memory 1 {PAGES_100_MIB} shared) (func (export "_start")))"#);
    assert_eq!(
        run_wat(&engine, &store, &wat, &limited(64 << 20)),
        Outcome::Limit(Limit::Memory(64 << 20))
    );
    assert_eq!(
        run_wat(&engine, &store, &wat, &limited(128 << 20)),
        Outcome::Exit(0)
    );
    // Components may not have them (their instances are many; unbounded).
    let component = wat::parse_str(r#"(component (core module (memory 1 1 shared)))"#).unwrap();
    let Err(err) = engine.load(&store, Digest::of(&component), &component) else {
        panic!("a component with a shared memory loaded");
    };
    assert!(err.to_string().contains("shared memories"), "{err}");
}

/// A module of 1 MiB that takes measurably long to compile (half a second
/// on two cores, far above the 10 ms in which a cancel is seen): many
/// functions with long bodies.
fn slow_module() -> Vec<u8> {
    let mut wat = String::from("(module (memory 1)\n");
    for f in 0..200 {
        wat.push_str(&format!(
            "(func $f{f} (param i32) (result i32) (local i32 i32 i32 i32)\n"
        ));
        for i in 0..400 {
            let l = i % 5;
            wat.push_str(&format!(
                "(local.set {l} (i32.add (i32.mul (local.get {l}) (i32.const {i})) (i32.load (local.get 0))))\n"
            ));
        }
        wat.push_str("(local.get 1))\n");
    }
    wat.push_str(r#"(func (export "_start")))"#);
    wat::parse_str(&wat).unwrap()
}

/// The error of loading `bytes`, which must fail.
fn load_err(
    engine: &Engine,
    store: &Store,
    bytes: &[u8],
    limits: &StepLimits,
    cancel: &AtomicBool,
) -> LoadError {
    match engine.load_within(store, Digest::of(bytes), bytes, limits, cancel) {
        Ok(_) => panic!("the program loaded"),
        Err(e) => e,
    }
}

#[test]
fn programs_over_the_size_limit_are_refused_before_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let bytes = slow_module();
    let size = bytes.len() as u64;
    let limits = StepLimits {
        max_module: size - 1,
        ..StepLimits::default()
    };
    let err = load_err(&engine, &store, &bytes, &limits, &AtomicBool::new(false));
    assert!(
        matches!(err, LoadError::TooLarge { size: s, limit } if s == size && limit == size - 1),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("({size} bytes)")) && message.contains("--step-max-module"),
        "{message}"
    );
    assert_eq!(engine.compilations(), 0);
    let at_limit = StepLimits {
        max_module: size,
        ..StepLimits::default()
    };
    let loaded = engine.load_within(
        &store,
        Digest::of(&bytes),
        &bytes,
        &at_limit,
        &AtomicBool::new(false),
    );
    assert!(matches!(loaded, Ok((_, LoadedFrom::Compiled))));
    assert_eq!(engine.compilations(), 1);
}

#[test]
fn failures_to_compile_or_link_are_remembered_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let limits = StepLimits::default();
    let no = AtomicBool::new(false);
    // Invalid: the function's body leaves no result.
    let invalid = wat::parse_str("(module (func (result i32)))").unwrap();
    let first = Engine::new().unwrap();
    let err = load_err(&first, &store, &invalid, &limits, &no);
    assert!(matches!(err, LoadError::Compile(_)), "{err}");
    assert_eq!(first.compilations(), 1);
    // A new process (a new engine, nothing in memory) does not compile it
    // again: the failure is on disk.
    let second = Engine::new().unwrap();
    let err = load_err(&second, &store, &invalid, &limits, &no);
    let LoadError::Remembered { message, record } = err else {
        panic!("not remembered: {err}");
    };
    assert!(message.starts_with("compiling: "), "{message}");
    assert_eq!(second.compilations(), 0);
    // Deleting the record (as the message says) forgets it.
    std::fs::remove_file(&record).unwrap();
    let err = load_err(&second, &store, &invalid, &limits, &no);
    assert!(matches!(err, LoadError::Compile(_)), "{err}");
    assert_eq!(second.compilations(), 1);

    // Compiles, but imports what kiln does not provide.
    let unlinkable =
        wat::parse_str(r#"(module (import "nope" "f" (func)) (func (export "_start")))"#).unwrap();
    let err = load_err(&first, &store, &unlinkable, &limits, &no);
    assert!(
        matches!(err, LoadError::Link(ref m) if m.contains("nope")),
        "{err}"
    );
    let third = Engine::new().unwrap();
    let err = load_err(&third, &store, &unlinkable, &limits, &no);
    assert!(
        matches!(err, LoadError::Remembered { ref message, .. } if message.starts_with("linking: ")),
        "{err}"
    );
}

#[test]
fn a_compile_cancelled_through_the_flag_returns_without_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let limits = StepLimits::default();
    let bytes = slow_module();
    // Cancelled before: nothing is compiled.
    let err = load_err(&engine, &store, &bytes, &limits, &AtomicBool::new(true));
    assert!(matches!(err, LoadError::Cancelled), "{err}");
    assert_eq!(engine.compilations(), 0);
    // Cancelled once compiling has started: the caller stops waiting.
    let cancel = AtomicBool::new(false);
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            while engine.compilations() == 0 {
                std::thread::yield_now();
            }
            cancel.store(true, Ordering::Relaxed);
        });
        load_err(&engine, &store, &bytes, &limits, &cancel)
    });
    assert!(matches!(err, LoadError::Cancelled), "{err}");
    assert_eq!(engine.compilations(), 1);
    // Not remembered as a failure of the module.
    let cache = CompileCache::new(&store, engine.fingerprint()).unwrap();
    assert!(
        cache
            .failure(&Digest::of(&bytes), ProgramKind::Module)
            .is_none()
    );
}

#[test]
fn a_compile_over_its_time_limit_fails_and_is_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let bytes = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let no_time = StepLimits {
        compile_timeout: Duration::ZERO,
        ..StepLimits::default()
    };
    let err = load_err(&engine, &store, &bytes, &no_time, &AtomicBool::new(false));
    assert!(
        matches!(err, LoadError::CompileTimeout(Duration::ZERO)),
        "{err}"
    );
    assert!(err.to_string().contains("--step-compile-timeout"), "{err}");
    // A limit too large to add to the clock is no limit, not a panic; and
    // the timeout was not remembered.
    let forever = StepLimits {
        compile_timeout: Duration::MAX,
        ..StepLimits::default()
    };
    let loaded = engine.load_within(
        &store,
        Digest::of(&bytes),
        &bytes,
        &forever,
        &AtomicBool::new(false),
    );
    assert!(matches!(loaded, Ok((_, LoadedFrom::Compiled))));
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

/// A guest that computes for seconds without a call into kiln (a bounded
/// loop, so that a test's thread let go ends on its own).
const SPIN: &str = r#"(module (func (export "_start") (local $i i64)
    (loop (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br_if 0 (i64.lt_u (local.get $i) (i64.const 3000000000))))))"#;

/// A guest that calls into kiln forever.
const CALLS_FOREVER: &str = r#"(module
    (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
    (memory (export "memory") 1)
    (func (export "_start") (loop (drop (call $yield)) (br 0))))"#;

/// Runs `wat` with Ctrl-C after 100 ms, or with a 100 ms time limit:
/// whether its state came back, the outcome, and how long it took.
fn stopped(engine: &Engine, store: &Store, wat: &str, ctrl_c: bool) -> (bool, Outcome, Duration) {
    let bytes = wat::parse_str(wat).unwrap();
    let (program, _) = engine.load(store, Digest::of(&bytes), &bytes).unwrap();
    let st = state(store);
    let cancel = Arc::clone(&st.cancel);
    let limits = StepLimits {
        timeout: if ctrl_c {
            NO_TIMEOUT
        } else {
            Duration::from_millis(100)
        },
        ..StepLimits::default()
    };
    let started = Instant::now();
    let press = ctrl_c.then(|| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    });
    let (state, outcome) = engine.run(&program, st, &limits);
    let took = started.elapsed();
    if let Some(press) = press {
        press.join().unwrap();
    }
    (state.is_some(), outcome, took)
}

#[test]
fn a_stopped_guest_ends_at_its_next_call_or_is_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new().unwrap();
    let time = Outcome::Limit(Limit::Time(Duration::from_millis(100)));
    // A guest that calls into kiln stops there, its state handed back.
    for (ctrl_c, expected) in [(true, &Outcome::Cancelled), (false, &time)] {
        let (back, outcome, took) = stopped(&engine, &store, CALLS_FOREVER, ctrl_c);
        assert_eq!((back, &outcome), (true, expected));
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // A guest that computes on is let go after the grace: the step ends
    // long before its loop would.
    for (ctrl_c, expected) in [(true, &Outcome::Cancelled), (false, &time)] {
        let (back, outcome, took) = stopped(&engine, &store, SPIN, ctrl_c);
        assert_eq!((back, &outcome), (false, expected));
        assert!(took >= Duration::from_millis(100) + GRACE, "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // Without a stop, it runs to its end.
    let bytes = wat::parse_str(
        r#"(module (func (export "_start") (local $i i32)
        (loop (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if 0 (i32.lt_u (local.get $i) (i32.const 1000000))))))"#,
    )
    .unwrap();
    let (program, _) = engine.load(&store, Digest::of(&bytes), &bytes).unwrap();
    let limits = StepLimits {
        timeout: NO_TIMEOUT,
        ..StepLimits::default()
    };
    assert_eq!(
        engine.run(&program, state(&store), &limits).1,
        Outcome::Exit(0)
    );
}
