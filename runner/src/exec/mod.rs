//! Running one step: a WASI program in wasmtime over a [`crate::vfs::Vfs`].
//!
//! [`Engine`] owns the wasmtime engine (one per process), the linkers with
//! kiln's WASI layers, and the compiled-code cache (`cache.rs`).
//! [`Engine::load_within`] (`load.rs`) turns a wasm binary into a
//! [`Program`] (compiled once per machine, on a thread the caller can stop
//! waiting for; instantiated through `InstancePre`); [`Engine::run`] runs it
//! with a [`StepState`] on a thread of its own, under the memory limit of
//! `limiter.rs` and the watch of `watch.rs` (the time limit and Ctrl-C,
//! without epoch checks in the compiled code), and reports an [`Outcome`]:
//! the exit code, a trap, a limit hit, or cancellation.

pub mod cache;
pub mod limiter;
mod load;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use wasmtime::component;
use wasmtime::error::Context as _;

pub use cache::{CompileCache, ProgramKind};
pub use load::{LoadError, NativeKind};
pub(crate) use watch::Severance;
pub use watch::{GRACE, TICK};

use crate::digest::Digest;
use crate::wasi::{self, StepState};

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
    modules: wasmtime::Linker<StepState>,
    components: component::Linker<StepState>,
    fingerprint: Digest,
    loaded: Mutex<HashMap<(Digest, ProgramKind), Program>>,
    compilations: AtomicU64,
}

impl Engine {
    /// Creates the engine.
    pub fn new() -> wasmtime::Result<Engine> {
        // Parallel compilation stays on (wasmtime's default): measured on two
        // busy cores with a 5.9 MB module of ten huge functions, it compiled
        // in 43-50 s at 240 MB peak against 61-77 s at 128 MB serially. The
        // peak grows with the functions compiled at once (one per core);
        // `--step-max-module` and `--step-compile-timeout` bound the rest.
        let mut config = wasmtime::Config::new();
        config
            // No checks at every loop and call: `watch.rs` stops steps.
            .epoch_interruption(false)
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
            // wasmtime's hash covers it; said again, so that no change there
            // could mix this code with the epoch-checked code kiln compiled
            // before.
            h.0.update(b"no epoch interruption");
            h.0.finish().0
        };
        Ok(Engine {
            engine,
            modules,
            components,
            fingerprint,
            loaded: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        })
    }

    /// The engine's compatibility fingerprint (part of compile-cache keys).
    pub fn fingerprint(&self) -> Digest {
        self.fingerprint
    }

    /// Runs `program` with `state` under `limits` until it exits, traps,
    /// hits a limit or is stopped (its deadline, or `state.cancel`). Returns
    /// the state (its VFS holds what the step wrote) and the outcome; no
    /// state when the guest computed on past the stop and was let go
    /// (`watch.rs`): then the caller must sever its streams.
    pub fn run(
        &self,
        program: &Program,
        mut state: StepState,
        limits: &StepLimits,
    ) -> (Option<StepState>, Outcome) {
        // One source of truth for the memory limit: the step's limits.
        state.limits.set_max_memory(limits.memory);
        // A timeout past the end of the clock means no deadline, not a panic.
        let deadline = Instant::now().checked_add(limits.timeout);
        state.deadline = deadline;
        if let Program::Module(_, shared) = program
            && !state.limits.reserve(*shared)
        {
            return (Some(state), Outcome::Limit(Limit::Memory(limits.memory)));
        }
        let watch = watch::Watch::new(Arc::clone(&state.cancel), deadline);
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.call_hook(watch.hook());
        let program = program.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        let guest = std::thread::Builder::new()
            .name("kiln-guest".into())
            .spawn(move || {
                let result = match &program {
                    Program::Module(pre, _) => run_module(&mut store, pre),
                    Program::Component(pre) => run_component(&mut store, pre),
                };
                let mut state = store.into_data();
                // Descriptors the guest left open hold VFS references;
                // release them so unlinked files' data is freed before the
                // changes are read.
                let wasi::StepState { p1, vfs, .. } = &mut state;
                p1.close_all(vfs);
                // A guest let go has nobody waiting.
                let _ = tx.send((state, result));
            });
        let guest = match guest {
            Ok(g) => g,
            Err(e) => {
                return (
                    None,
                    Outcome::Trap(format!("starting the step's thread: {e}")),
                );
            }
        };
        match watch.wait(&rx) {
            Ok((mut state, result)) => {
                let _ = guest.join();
                let outcome = classify(result, &mut state, limits);
                (Some(state), outcome)
            }
            Err(watch::Waited::LetGo(watch::Stop::Cancelled)) => (None, Outcome::Cancelled),
            Err(watch::Waited::LetGo(watch::Stop::Timeout)) => {
                (None, Outcome::Limit(Limit::Time(limits.timeout)))
            }
            Err(watch::Waited::Gone) => match guest.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the guest's thread sends its result before it ends"),
            },
        }
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
    // A cancel wins over however the guest ended: a sleep or a read it cut
    // short may let the guest exit 0 before its next call traps, and the
    // build must stop all the same.
    if state.cancel.load(Ordering::SeqCst) {
        return Outcome::Cancelled;
    }
    let write_hit = state.vfs.overlay().limit_hit();
    let outcome = match result {
        Ok(code) => Outcome::Exit(code),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Outcome::Exit(exit.0)
            } else if let Some(stop) = e.downcast_ref::<watch::Stop>() {
                match stop {
                    watch::Stop::Cancelled => return Outcome::Cancelled,
                    watch::Stop::Timeout => return Outcome::Limit(Limit::Time(limits.timeout)),
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
