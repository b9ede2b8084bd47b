//! Loading a program: a wasm binary -> a [`Program`] ready to instantiate,
//! under limits that hold before any code runs.
//!
//! In order: the header says module or component; a binary over
//! [`StepLimits::max_module`] is refused unread by the compiler; a program
//! already loaded in this process is reused; a failure remembered in the
//! compile cache (`cache.rs`) is returned at once; compiled code cached
//! for this engine is deserialized; otherwise the binary is compiled.
//!
//! Compiling cannot be interrupted (Cranelift has no cancellation point),
//! and a hostile module can keep it busy for
//! minutes. So it runs on its own thread and the caller waits for whichever
//! comes first: the compiled code, Ctrl-C (the step's cancel flag), or
//! [`StepLimits::compile_timeout`]. On cancel or timeout the caller returns
//! an error at once and the thread is left to finish on its own, its result
//! dropped; the CLI exits after a failed build, which ends it.
//!
//! A compile or link error is remembered by (module digest, engine
//! fingerprint), so retrying a module that cannot load costs nothing. A
//! timeout or cancellation is not remembered: it says nothing about the
//! module, and a larger limit may succeed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasmtime::component;

use super::cache::{CompileCache, ProgramKind};
use super::{Engine, LoadedFrom, Program, StepLimits, TICK};
use crate::digest::Digest;
use crate::store::Store;

/// Why a program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The binary has no wasm header; what it is instead, when kiln can
    /// tell (a native program, a script).
    #[error("{}", not_wasm_message(.0))]
    NotWasm(Option<NativeKind>),
    /// The binary is over [`StepLimits::max_module`].
    #[error(
        "the program is {} ({size} bytes), over the module size limit of {} \
         (raise it with --step-max-module)",
        crate::build::human_bytes(*size),
        crate::build::human_bytes(*limit)
    )]
    TooLarge {
        /// Its size, bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// Compiling took longer than [`StepLimits::compile_timeout`].
    #[error(
        "compiling the program took longer than its limit of {}s \
         (raise it with --step-compile-timeout)",
        .0.as_secs()
    )]
    CompileTimeout(Duration),
    /// The cancel flag was set (Ctrl-C) while compiling.
    #[error("cancelled while compiling")]
    Cancelled,
    /// wasmtime refused to compile it (invalid wasm, an unsupported feature).
    #[error("compiling: {0}")]
    Compile(String),
    /// The compiler thread could not start, or panicked: a fault of kiln
    /// or the host, not of the module, so it is not remembered.
    #[error("compiling: {0}")]
    CompilerThread(String),
    /// It compiled, but its imports are not what kiln provides.
    #[error("linking: {0}")]
    Link(String),
    /// An earlier attempt with this engine failed: that attempt's message,
    /// and the record that remembers it.
    #[error("{message} (remembered from an earlier attempt; delete {} to try again)", .record.display())]
    Remembered {
        /// The earlier attempt's error.
        message: String,
        /// The failure record in the compile cache.
        record: std::path::PathBuf,
    },
    /// The compile cache directory could not be opened.
    #[error("opening the compile cache: {0}")]
    Cache(#[source] std::io::Error),
}

/// What a program that is not WebAssembly is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeKind {
    /// ELF: a Linux (or other Unix) executable.
    Elf,
    /// Mach-O, thin or universal: a macOS executable.
    MachO,
    /// PE (`MZ`): a Windows executable.
    Pe,
    /// `#!`: a script for an interpreter.
    Script,
}

impl NativeKind {
    /// Recognises `bytes`' format by its magic number.
    pub fn detect(bytes: &[u8]) -> Option<NativeKind> {
        let magic: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        match magic {
            [0x7f, b'E', b'L', b'F'] => Some(NativeKind::Elf),
            [0xfe, 0xed, 0xfa, 0xce | 0xcf]
            | [0xce | 0xcf, 0xfa, 0xed, 0xfe]
            | [0xca, 0xfe, 0xba, 0xbe] => Some(NativeKind::MachO),
            [b'M', b'Z', ..] => Some(NativeKind::Pe),
            [b'#', b'!', ..] => Some(NativeKind::Script),
            _ => None,
        }
    }
}

/// The message for a program that is not WebAssembly.
fn not_wasm_message(kind: &Option<NativeKind>) -> String {
    const ONLY: &str = "kiln runs only WebAssembly programs: build it for wasm32-wasip1 or \
                        wasm32-wasip2, or use a wasm build of the tool (see docs/writing-steps.md)";
    match kind {
        Some(NativeKind::Elf) => format!("it is a native Linux program (ELF), and {ONLY}"),
        Some(NativeKind::MachO) => format!("it is a native macOS program (Mach-O), and {ONLY}"),
        Some(NativeKind::Pe) => format!("it is a native Windows program (PE), and {ONLY}"),
        Some(NativeKind::Script) => format!(
            "it is a script (#!), and {ONLY}; run its interpreter's wasm build with the script \
             as an argument"
        ),
        None => "not a WebAssembly module or component (bad header)".to_string(),
    }
}

/// Compiled, not yet linked.
enum Compiled {
    Module(wasmtime::Module),
    Component(component::Component),
}

impl Engine {
    /// Loads the program `bytes` (whose sha256 is `digest`) under the
    /// default limits and with no way to cancel: for tests and tools. Steps
    /// use [`Engine::load_within`].
    pub fn load(
        &self,
        store: &Store,
        digest: Digest,
        bytes: &[u8],
    ) -> Result<(Program, LoadedFrom), LoadError> {
        self.load_within(
            store,
            digest,
            bytes,
            &StepLimits::default(),
            &AtomicBool::new(false),
        )
    }

    /// The program with contents `digest`, when this process has already
    /// loaded it: found without reading (or hashing) its bytes again.
    pub fn loaded(&self, digest: &Digest) -> Option<Program> {
        let loaded = self.loaded.lock().expect("lock");
        [ProgramKind::Module, ProgramKind::Component]
            .iter()
            .find_map(|kind| loaded.get(&(*digest, *kind)).cloned())
    }

    /// Loads the program `bytes` (whose sha256 is `digest`): from memory,
    /// from the store's compile cache, or by compiling it and caching it;
    /// within `limits.max_module` and `limits.compile_timeout`, giving up
    /// when `cancel` is set. See the module docs.
    pub fn load_within(
        &self,
        store: &Store,
        digest: Digest,
        bytes: &[u8],
        limits: &StepLimits,
        cancel: &AtomicBool,
    ) -> Result<(Program, LoadedFrom), LoadError> {
        let kind = ProgramKind::detect(bytes)
            .ok_or_else(|| LoadError::NotWasm(NativeKind::detect(bytes)))?;
        let size = bytes.len() as u64;
        if size > limits.max_module {
            return Err(LoadError::TooLarge {
                size,
                limit: limits.max_module,
            });
        }
        let shared = shared_memory_bytes(bytes);
        if kind == ProgramKind::Component && shared > 0 {
            return Err(LoadError::Compile(
                "shared memories are supported in core modules (wasm32-wasip1), not in components"
                    .into(),
            ));
        }
        if let Some(p) = self.loaded.lock().expect("lock").get(&(digest, kind)) {
            return Ok((p.clone(), LoadedFrom::Memory));
        }
        let cache = CompileCache::new(store, self.fingerprint).map_err(LoadError::Cache)?;
        if let Some((message, record)) = cache.failure(&digest, kind) {
            return Err(LoadError::Remembered { message, record });
        }
        let (compiled, from) = match cache
            .get(&digest, kind)
            .and_then(|path| self.deserialize_file(kind, &path).ok())
        {
            Some(c) => (c, LoadedFrom::Cache),
            None => {
                let (compiled, artifact) = match self.compile(kind, bytes, limits, cancel) {
                    Ok(done) => done,
                    Err(error @ LoadError::Compile(_)) => {
                        cache.remember_failure(store, &digest, kind, &error.to_string());
                        return Err(error);
                    }
                    Err(e) => return Err(e),
                };
                cache.put(store, &digest, kind, &artifact);
                (compiled, LoadedFrom::Compiled)
            }
        };
        let program = self.link(compiled, shared).map_err(|e| {
            let error = LoadError::Link(format!("{e:#}"));
            cache.remember_failure(store, &digest, kind, &error.to_string());
            error
        })?;
        self.loaded
            .lock()
            .expect("lock")
            .insert((digest, kind), program.clone());
        Ok((program, from))
    }

    /// How many times this engine started compiling a binary.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles on a thread of its own; waits for it, `cancel` or the limit.
    fn compile(
        &self,
        kind: ProgramKind,
        bytes: &[u8],
        limits: &StepLimits,
        cancel: &AtomicBool,
    ) -> Result<(Compiled, Vec<u8>), LoadError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(LoadError::Cancelled);
        }
        // `None`: a limit too large to add to now, which is no limit.
        let deadline = Instant::now().checked_add(limits.compile_timeout);
        let (tx, rx) = mpsc::sync_channel(1);
        let engine = self.engine.clone();
        // The thread may outlive this call (on cancel or timeout), so it
        // owns its copy of the binary.
        let bytes = bytes.to_vec();
        self.compilations.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("kiln-compile".into())
            .spawn(move || {
                let compiled = compile_now(&engine, kind, &bytes);
                // The caller may have stopped waiting: then nobody receives.
                let _ = tx.send(compiled.map_err(|e| format!("{e:#}")));
            })
            .map_err(|e| LoadError::CompilerThread(format!("starting a thread: {e}")))?;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(LoadError::Cancelled);
            }
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(LoadError::CompileTimeout(limits.compile_timeout));
                    }
                    left.min(TICK)
                }
                None => TICK,
            };
            match rx.recv_timeout(wait) {
                Ok(result) => return result.map_err(LoadError::Compile),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(LoadError::CompilerThread("the compiler panicked".into()));
                }
            }
        }
    }

    fn link(&self, compiled: Compiled, shared: usize) -> wasmtime::Result<Program> {
        Ok(match compiled {
            Compiled::Module(m) => Program::Module(self.modules.instantiate_pre(&m)?, shared),
            Compiled::Component(c) => Program::Component(self.components.instantiate_pre(&c)?),
        })
    }

    #[allow(unsafe_code)]
    fn deserialize_file(
        &self,
        kind: ProgramKind,
        path: &std::path::Path,
    ) -> wasmtime::Result<Compiled> {
        Ok(match kind {
            ProgramKind::Module => {
                // SAFETY: `path` comes from the compile cache, which only
                // holds what `Module::serialize` of an engine with this exact
                // fingerprint wrote, checked against its sha256 (or unchanged
                // since it was), and never changed in place (a new artifact
                // is renamed over it), so the mapping stays what was checked.
                Compiled::Module(unsafe { wasmtime::Module::deserialize_file(&self.engine, path)? })
            }
            ProgramKind::Component => {
                // SAFETY: as above, for `Component::serialize`.
                Compiled::Component(unsafe {
                    component::Component::deserialize_file(&self.engine, path)?
                })
            }
        })
    }
}

/// The bytes the shared memories a binary defines (its own and those of
/// nested modules) may reach: their declared maxima. A binary wasmparser
/// cannot read counts 0; wasmtime then refuses to compile it anyway.
fn shared_memory_bytes(bytes: &[u8]) -> usize {
    let mut total = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::MemorySection(reader)) = payload else {
            if payload.is_err() {
                break;
            }
            continue;
        };
        for memory in reader.into_iter().flatten() {
            if memory.shared {
                // Validation requires a maximum for a shared memory.
                let pages = memory.maximum.unwrap_or(memory.initial);
                let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                let size = usize::try_from(pages.saturating_mul(page)).unwrap_or(usize::MAX);
                total = total.saturating_add(size);
            }
        }
    }
    total
}

/// Compiles and serializes (the artifact the compile cache keeps).
fn compile_now(
    engine: &wasmtime::Engine,
    kind: ProgramKind,
    bytes: &[u8],
) -> wasmtime::Result<(Compiled, Vec<u8>)> {
    Ok(match kind {
        ProgramKind::Module => {
            let m = wasmtime::Module::new(engine, bytes)?;
            let artifact = m.serialize()?;
            (Compiled::Module(m), artifact)
        }
        ProgramKind::Component => {
            let c = component::Component::new(engine, bytes)?;
            let artifact = c.serialize()?;
            (Compiled::Component(c), artifact)
        }
    })
}
