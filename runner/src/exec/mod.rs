//! Running one step: a WASI program in wasmtime over a [`crate::vfs::Vfs`].
//!
//! [`Engine`] owns the wasmtime engine (one per process), the linkers with
//! kiln's WASI layers, the epoch ticker that enforces wall time and Ctrl-C,
//! and the compiled-code cache (`cache.rs`). Steps with no time limit run
//! on an engine without epoch interruption ([`Engine::for_limits`]): their
//! code has no checks at loops and calls, and cancellation stops them at
//! their next call into kiln. [`Engine::load_within`]
//! (`load.rs`) turns a wasm binary into a [`Program`] (compiled once per
//! machine, on a thread the caller can stop waiting for; instantiated
//! through `InstancePre`); [`Engine::run`] runs it with a [`StepState`]
//! under the memory limit of `limiter.rs` and reports an [`Outcome`]: the
//! exit code, a trap, a limit hit, or cancellation.

pub mod cache;
pub mod limiter;
mod load;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component;
use wasmtime::error::Context as _;

pub use cache::{CompileCache, ProgramKind};
pub use load::{LoadError, NativeKind};

use crate::digest::Digest;
use crate::wasi::{self, StepState};

/// How often the epoch advances: the granularity of time limits and how
/// quickly Ctrl-C stops a running step.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default memory a step may use: generous for compilers and bundlers,
/// small enough that a runaway step cannot take the machine down.
pub const DEFAULT_MEMORY: usize = 4 << 30;
/// Default wall time of one step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A time limit this long or longer is none: a century.
pub const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// Default bytes of file contents one step may write.
pub const DEFAULT_MAX_WRITE: u64 = 16 << 30;
/// Default number of files, directories and links one step may create.
pub const DEFAULT_MAX_FILES: u64 = 1_000_000;
/// Default size of a program kiln compiles: far above what real toolchains
/// emit (a compiler or language runtime built for wasm is tens of MiB,
/// rarely past 100 MiB). The compiler's memory grows with the binary (a
/// hostile 36 MB module took 1.3 GB), and nothing else bounds it.
pub const DEFAULT_MAX_MODULE: u64 = 256 << 20;
/// Default time compiling one program may take. Code is compiled once per
/// machine and then cached, so a generous limit costs nothing in normal use:
/// ordinary code compiles at about half a second per MB on two busy cores
/// (wasmtime 48), while code made to be slow to compile takes ten seconds
/// per MB or more, which is what this limit stops.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The limits of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepLimits {
    /// Linear memories and tables of all the step's instances, bytes.
    pub memory: usize,
    /// Wall time.
    pub timeout: Duration,
    /// Bytes of file contents written.
    pub max_write: u64,
    /// Files created.
    pub max_files: u64,
    /// Size of the program's wasm binary, bytes (checked before compiling).
    pub max_module: u64,
    /// Time compiling the program may take (cached code takes none).
    pub compile_timeout: Duration,
}

impl StepLimits {
    /// Whether the steps have a time limit (one shorter than
    /// [`NO_TIMEOUT`]).
    pub fn timed(&self) -> bool {
        self.timeout < NO_TIMEOUT
    }
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            memory: DEFAULT_MEMORY,
            timeout: DEFAULT_TIMEOUT,
            max_write: DEFAULT_MAX_WRITE,
            max_files: DEFAULT_MAX_FILES,
            max_module: DEFAULT_MAX_MODULE,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
        }
    }
}

/// Which limit a step hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`StepLimits::memory`].
    Memory(usize),
    /// [`StepLimits::timeout`].
    Time(Duration),
    /// [`StepLimits::max_write`].
    WriteBytes(u64),
    /// [`StepLimits::max_files`].
    Files(u64),
    /// [`limiter::MAX_INSTANCES`].
    Instances(usize),
    /// [`limiter::MAX_MEMORIES`].
    Memories(usize),
    /// [`limiter::MAX_TABLES`].
    Tables(usize),
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (0 is success).
    Exit(i32),
    /// It trapped (a wasm fault or an `abort`); the message has the backtrace.
    Trap(String),
    /// It hit a limit.
    Limit(Limit),
    /// Ctrl-C.
    Cancelled,
}

/// Why the epoch callback stopped a step.
#[derive(Debug, thiserror::Error)]
enum Interrupt {
    #[error("cancelled")]
    Cancelled,
    #[error("timed out")]
    Timeout,
}

/// A loaded program, ready to instantiate.
#[derive(Clone)]
pub enum Program {
    /// A core module, and the bytes its shared memories may reach (their
    /// declared maxima, counted against the memory limit up front:
    /// wasmtime does not ask the limiter when a shared memory grows).
    Module(wasmtime::InstancePre<StepState>, usize),
    /// A component.
    Component(component::InstancePre<StepState>),
}

impl Program {
    /// The kind.
    pub fn kind(&self) -> ProgramKind {
        match self {
            Program::Module(..) => ProgramKind::Module,
            Program::Component(_) => ProgramKind::Component,
        }
    }
}

/// How a program was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadedFrom {
    /// Already loaded in this process.
    Memory,
    /// Deserialized from the compile cache.
    Cache,
    /// Compiled now (and cached).
    Compiled,
}

/// The wasmtime engine and everything shared by steps. See the module docs.
pub struct Engine {
    engine: wasmtime::Engine,
    /// Whether compiled code checks the epoch: what enforces time limits.
    epochs: bool,
    modules: wasmtime::Linker<StepState>,
    components: component::Linker<StepState>,
    fingerprint: Digest,
    loaded: Mutex<HashMap<(Digest, ProgramKind), Program>>,
    compilations: AtomicU64,
}

impl Engine {
    /// Creates the engine and starts its epoch ticker.
    pub fn new() -> wasmtime::Result<Engine> {
        Engine::with_epochs(true)
    }

    /// The engine for steps with `limits`: without a time limit, one that
    /// compiles code without epoch checks. Those checks (a load and a
    /// compare at every loop back-edge and function entry) are what lets a
    /// time limit or Ctrl-C stop a guest that never calls out; they cost
    /// compute-heavy code about a seventh of its speed. Without them, Ctrl-C
    /// stops a step at its next call into kiln (a sleep or poll at once):
    /// a guest computing without a call runs on until the second Ctrl-C,
    /// which ends kiln. Its compiled code is cached apart (another
    /// fingerprint).
    pub fn for_limits(limits: &StepLimits) -> wasmtime::Result<Engine> {
        Engine::with_epochs(limits.timed())
    }

    fn with_epochs(epochs: bool) -> wasmtime::Result<Engine> {
        // Parallel compilation stays on (wasmtime's default): measured on two
        // busy cores with a 5.9 MB module of ten huge functions, it compiled
        // in 43-50 s at 240 MB peak against 61-77 s at 128 MB serially. The
        // peak grows with the functions compiled at once (one per core);
        // `--step-max-module` and `--step-compile-timeout` bound the rest.
        let mut config = wasmtime::Config::new();
        config
            .epoch_interruption(epochs)
            .wasm_component_model(true)
            .wasm_exceptions(true)
            // Atomics and shared memories (real programs built with
            // `+atomics` use them on one thread); a shared memory counts
            // against the memory limit at its maximum (`load.rs`).
            .wasm_threads(true)
            .shared_memory(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config)?;
        let mut modules = wasmtime::Linker::new(&engine);
        wasi::p1::add_to_linker(&mut modules)?;
        let mut components = component::Linker::new(&engine);
        wasi::p2::add_to_linker(&mut components)?;

        let fingerprint = {
            struct Sha(crate::digest::Hasher);
            impl std::hash::Hasher for Sha {
                fn finish(&self) -> u64 {
                    0
                }
                fn write(&mut self, bytes: &[u8]) {
                    self.0.update(bytes);
                }
            }
            let mut h = Sha(crate::digest::Hasher::new());
            std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
            h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
            if !epochs {
                // wasmtime's hash covers it; said again, so that no change
                // there could mix the two kinds of code.
                h.0.update(b"no epoch interruption");
            }
            h.0.finish().0
        };
        if epochs {
            Self::tick(&engine)?;
        }
        Ok(Engine {
            engine,
            epochs,
            modules,
            components,
            fingerprint,
            loaded: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        })
    }

    /// Starts the thread that advances `engine`'s epoch while it lives.
    fn tick(engine: &wasmtime::Engine) -> wasmtime::Result<()> {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("kiln-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| wasmtime::format_err!("starting the epoch thread: {e}"))?;
        Ok(())
    }

    /// The engine's compatibility fingerprint (part of compile-cache keys).
    pub fn fingerprint(&self) -> Digest {
        self.fingerprint
    }

    /// Runs `program` with `state` under `limits` until it exits, traps,
    /// hits a limit or `state.cancel` is set. Returns the state (its VFS
    /// holds what the step wrote) and the outcome.
    pub fn run(
        &self,
        program: &Program,
        mut state: StepState,
        limits: &StepLimits,
    ) -> (StepState, Outcome) {
        // One source of truth for the memory limit: the step's limits.
        state.limits.set_max_memory(limits.memory);
        // A timeout past the end of the clock means no deadline, not a panic.
        let deadline = Instant::now().checked_add(limits.timeout);
        state.deadline = deadline;
        if let Program::Module(_, shared) = program
            && !state.limits.reserve(*shared)
        {
            return (state, Outcome::Limit(Limit::Memory(limits.memory)));
        }
        let cancel = Arc::clone(&state.cancel);
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let interrupt = move || {
            if cancel.load(Ordering::Relaxed) {
                return Err(Interrupt::Cancelled);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Interrupt::Timeout);
            }
            Ok(())
        };
        if self.epochs {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                interrupt()?;
                Ok(wasmtime::UpdateDeadline::Continue(1))
            });
        } else {
            // No epoch checks: stop at the guest's next call into kiln.
            // (A time limit, which an engine without epochs is not made
            // for, would hold only there too.)
            debug_assert!(!limits.timed(), "a time limit needs epochs");
            store.call_hook(move |_, hook| match hook {
                wasmtime::CallHook::CallingHost => Ok(interrupt()?),
                _ => Ok(()),
            });
        }
        let result = match program {
            Program::Module(pre, _) => run_module(&mut store, pre),
            Program::Component(pre) => run_component(&mut store, pre),
        };
        let mut state = store.into_data();
        // Descriptors the guest left open hold VFS references; release them
        // so unlinked files' data is freed before the changes are read.
        let wasi::StepState { p1, vfs, .. } = &mut state;
        p1.close_all(vfs);
        let outcome = classify(result, &mut state, limits);
        (state, outcome)
    }
}

fn run_module(
    store: &mut wasmtime::Store<StepState>,
    pre: &wasmtime::InstancePre<StepState>,
) -> wasmtime::Result<i32> {
    let instance = pre.instantiate(&mut *store)?;
    let start = instance
        .get_typed_func::<(), ()>(&mut *store, "_start")
        .context("the module has no _start function: is it a WASI command?")?;
    start.call(&mut *store, ())?;
    Ok(0)
}

fn run_component(
    store: &mut wasmtime::Store<StepState>,
    pre: &component::InstancePre<StepState>,
) -> wasmtime::Result<i32> {
    let command = wasmtime_wasi::p2::bindings::sync::CommandPre::new(pre.clone())
        .context("the component is not a WASI command (it does not export wasi:cli/run)")?;
    let command = command.instantiate(&mut *store)?;
    match command.wasi_cli_run().call_run(&mut *store)? {
        Ok(()) => Ok(0),
        Err(()) => Ok(1),
    }
}

fn classify(result: wasmtime::Result<i32>, state: &mut StepState, limits: &StepLimits) -> Outcome {
    // An interrupt wins over however the guest ended: a sleep or a read the
    // interrupt cut short may let it exit 0 before the epoch check traps,
    // and the build must stop all the same.
    if state.cancel.load(Ordering::SeqCst) {
        return Outcome::Cancelled;
    }
    let write_hit = state.vfs.overlay().limit_hit();
    let outcome = match result {
        Ok(code) => Outcome::Exit(code),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Outcome::Exit(exit.0)
            } else if let Some(i) = e.downcast_ref::<Interrupt>() {
                match i {
                    Interrupt::Cancelled => return Outcome::Cancelled,
                    Interrupt::Timeout => return Outcome::Limit(Limit::Time(limits.timeout)),
                }
            } else if let Some(cap) = limiter::cap_hit(&e) {
                return Outcome::Limit(cap);
            } else {
                Outcome::Trap(format!("{e:?}"))
            }
        }
    };
    // A limit the step ran into explains its failure better than the
    // failure itself (a guest's "disk full" or "out of memory").
    let failed = outcome != Outcome::Exit(0);
    match write_hit {
        Some(crate::vfs::LimitHit::Bytes) if failed => {
            Outcome::Limit(Limit::WriteBytes(limits.max_write))
        }
        Some(crate::vfs::LimitHit::Files) if failed => {
            Outcome::Limit(Limit::Files(limits.max_files))
        }
        _ if failed && state.limits.hit() => Outcome::Limit(Limit::Memory(limits.memory)),
        _ => outcome,
    }
}

/// What a limit means, for messages: which one, its value, and the flag
/// that raises it.
pub fn describe_limit(limit: &Limit) -> String {
    match limit {
        Limit::Memory(n) => format!(
            "the step hit its memory limit of {} (raise it with --step-memory)",
            crate::build::human_bytes(*n as u64)
        ),
        Limit::Time(d) => format!(
            "the step ran longer than its time limit of {}s (raise it with --step-timeout)",
            d.as_secs()
        ),
        Limit::WriteBytes(n) => format!(
            "the step wrote more than its limit of {} (raise it with --step-max-write)",
            crate::build::human_bytes(*n)
        ),
        Limit::Files(n) => format!(
            "the step created more than its limit of {n} files (raise it with --step-max-files)"
        ),
        Limit::Instances(n) => {
            format!("the program creates more than {n} wasm instances, the most one step may have")
        }
        Limit::Memories(n) => {
            format!("the program creates more than {n} linear memories, the most one step may have")
        }
        Limit::Tables(n) => {
            format!("the program creates more than {n} tables, the most one step may have")
        }
    }
}

/// A cancellation flag for steps, set by Ctrl-C.
pub fn cancel_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[cfg(test)]
mod tests;
