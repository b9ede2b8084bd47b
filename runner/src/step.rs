//! One step, from a command line to an outcome: find the program in the
//! step's filesystem, load it (compile cache), give it its arguments,
//! environment, working directory and streams, run it under its limits.
//!
//! Shared by `RUN` (output streamed into the build's progress, the upper
//! changes kept as a layer) and `kiln run` (the terminal's streams, the
//! changes thrown away).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::digest::Digest;
use crate::exec::{Engine, LoadError, LoadedFrom, Outcome, ProgramKind, StepLimits};
use crate::snapshot::ImagePath;
use crate::store::Store;
use crate::vfs::{Errno, FileType, OpenFlags, Scope, Vfs};
use crate::wasi::{self, Clocks, Limiter, Preopen, SecureRandom, Stdio, StepState};

/// The `PATH` searched when the environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What to run.
pub struct StepSpec {
    /// `argv`; `argv[0]` names the program (a path, or a name on `PATH`).
    pub argv: Vec<String>,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: ImagePath,
    /// Limits.
    pub limits: StepLimits,
    /// Directories preopened after `/` (secret mounts), as capabilities.
    pub preopens: Vec<ImagePath>,
    /// A virtual wall clock and seeded random bytes instead of the real
    /// ones (`SOURCE_DATE_EPOCH`).
    pub reproducible: Option<wasi::Reproducible>,
    /// The step's network (`--network=default`): `None`, no network.
    pub network: Option<Arc<crate::network::Policy>>,
    /// Where a refused network use is told (the step's log).
    pub net_log: Option<crate::network::NetLog>,
}

/// Why a step could not start.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The program was not found.
    #[error("program {name:?} not found{searched}")]
    NotFound {
        /// What argv[0] said.
        name: String,
        /// Where kiln looked.
        searched: String,
    },
    /// The program is not a wasm module or component, or failed to load
    /// (too large, failed to compile, took too long to compile).
    #[error("cannot load {path}: {error}")]
    Load {
        /// The program's path in the image.
        path: String,
        /// Why.
        error: LoadError,
    },
    /// Ctrl-C while the program was being loaded (compiled).
    #[error("cancelled")]
    Cancelled,
    /// Reading the program failed.
    #[error("reading {path}: {errno}")]
    Read {
        /// The program's path.
        path: String,
        /// The error.
        errno: Errno,
    },
    /// No argv.
    #[error("empty command: expected a program to run")]
    Empty,
    /// A core module (wasip1) in a step with network: WASI preview 1 has
    /// no network API.
    #[error(
        "{path} is a WASI preview 1 module, and preview 1 has no network API: --network=default needs a wasip2 component (built for wasm32-wasip2, using wasi:http or wasi:sockets)"
    )]
    NoNetworkApi {
        /// The program's path.
        path: String,
    },
}

/// A finished step.
pub struct Finished {
    /// The filesystem, with what the step wrote; none when the program
    /// computed on past a time limit or Ctrl-C and was let go (see
    /// `exec/watch.rs`).
    pub vfs: Option<Vfs>,
    /// How it ended.
    pub outcome: Outcome,
    /// The program's path in the image.
    pub program: String,
    /// Where its compiled code came from.
    pub loaded_from: LoadedFrom,
}

/// Finds `name` the way a shell would: a path (absolute, or relative to
/// `cwd`) when it has a `/`, else each `PATH` directory; each with and
/// without a `.wasm` suffix. Returns the absolute path of a regular file.
pub fn find_program(
    vfs: &mut Vfs,
    name: &str,
    env: &[(String, String)],
    cwd: &ImagePath,
) -> Result<String, StepError> {
    let root = vfs.root();
    let mut candidates = Vec::new();
    let mut searched_path = None;
    if name.contains('/') {
        let p = ImagePath::resolve(cwd, name).map_err(|e| StepError::NotFound {
            name: name.into(),
            searched: format!(": {e}"),
        })?;
        candidates.push(p.absolute());
    } else {
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        searched_path = Some(path);
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            candidates.push(format!("{}/{name}", dir.trim_end_matches('/')));
        }
    }
    let mut tried = Vec::new();
    let mut broken_link = None;
    for c in candidates {
        for path in [c.clone(), format!("{c}.wasm")] {
            if path.ends_with(".wasm.wasm") {
                continue;
            }
            let rel = path.trim_start_matches('/');
            if rel.is_empty() {
                continue;
            }
            match vfs.stat_at(root, Scope::Clamp, rel, true) {
                Ok(stat) if stat.kind == FileType::File => return Ok(path),
                // A dangling link: say where it leads, since the usual
                // surprise is a link in a bind mount that pointed to the
                // host, outside the mount's source.
                Err(_) if broken_link.is_none() => {
                    if let Ok(target) = vfs.read_link_at(root, Scope::Clamp, rel) {
                        broken_link = Some(format!(
                            "; {path} is a symbolic link to {target}, which leads to no file in the \
                             step's filesystem (links resolve there, never on the host: a link in \
                             a bind mount cannot reach outside the mount's source)"
                        ));
                    }
                }
                _ => {}
            }
            tried.push(path);
        }
    }
    let searched = match searched_path {
        Some(path) => format!(
            " in PATH {path} (looked for {name} and {name}.wasm in each directory; RUN [\"/abs/path\"] runs a program elsewhere)"
        ),
        None => format!(": looked for {}", tried.join(", ")),
    } + broken_link.as_deref().unwrap_or_default();
    Err(StepError::NotFound {
        name: name.into(),
        searched,
    })
}

/// The program at `path`: a file of the image this process has already
/// loaded is found by the digest the image records, without reading it;
/// anything else is read (within `max` bytes) and loaded.
fn load_program(
    engine: &Engine,
    store: &Store,
    vfs: &mut Vfs,
    path: &str,
    limits: &crate::exec::StepLimits,
    cancel: &AtomicBool,
) -> Result<(crate::exec::Program, LoadedFrom), StepError> {
    let err = |errno| StepError::Read {
        path: path.into(),
        errno,
    };
    let root = vfs.root();
    let node = vfs
        .open_at(
            root,
            Scope::Clamp,
            path.trim_start_matches('/'),
            OpenFlags {
                follow: true,
                ..Default::default()
            },
        )
        .map_err(err)?;
    let read = read_open_program(engine, vfs, node, path, limits.max_module);
    vfs.close(node);
    let (known, bytes) = match read? {
        Program::Known(program) => return Ok((program, LoadedFrom::Memory)),
        Program::Read { known, bytes } => (known, bytes),
    };
    let digest = known.unwrap_or_else(|| Digest::of(&bytes));
    engine
        .load_within(store, digest, &bytes, limits, cancel)
        .map_err(|error| match error {
            LoadError::Cancelled => StepError::Cancelled,
            error => StepError::Load {
                path: path.into(),
                error,
            },
        })
}

/// A program found in memory, or its bytes (and their digest when the
/// filesystem knows it).
enum Program {
    Known(crate::exec::Program),
    Read {
        known: Option<Digest>,
        bytes: Vec<u8>,
    },
}

fn read_open_program(
    engine: &Engine,
    vfs: &mut Vfs,
    node: crate::vfs::NodeRef,
    path: &str,
    max: u64,
) -> Result<Program, StepError> {
    let err = |errno| StepError::Read {
        path: path.into(),
        errno,
    };
    let size = vfs.stat(node).map_err(err)?.size;
    if size > max {
        return Err(StepError::Load {
            path: path.into(),
            error: LoadError::TooLarge { size, limit: max },
        });
    }
    let known = vfs.content_digest(node);
    if let Some(program) = known.as_ref().and_then(|d| engine.loaded(d)) {
        return Ok(Program::Known(program));
    }
    let bytes = read_node(vfs, node, size).map_err(err)?;
    Ok(Program::Read { known, bytes })
}

/// A program found, read and compiled, with the preopens it gets: all
/// that can fail before it runs, done without taking the step's `Vfs`.
pub struct Loaded {
    program: crate::exec::Program,
    path: String,
    loaded_from: LoadedFrom,
    preopens: Vec<Preopen>,
}

/// The first `size` bytes of an open file (fewer if it is shorter).
pub(crate) fn read_node(
    vfs: &mut Vfs,
    node: crate::vfs::NodeRef,
    size: u64,
) -> Result<Vec<u8>, Errno> {
    let mut bytes = vec![0u8; size as usize];
    let mut done = 0;
    while done < bytes.len() {
        match vfs.read(node, done as u64, &mut bytes[done..])? {
            0 => break,
            n => done += n,
        }
    }
    bytes.truncate(done);
    Ok(bytes)
}

/// Runs a step. Standard streams are the caller's.
///
/// `sh -c SCRIPT` (or `/bin/sh`, `sh FILE`) in an image with no `sh` of
/// its own runs kiln's built-in shell (`crate::shell::step_host`), whose
/// every command is a program of the image run by [`load`] and
/// [`execute`].
pub fn run(
    engine: &Engine,
    store: &Store,
    mut vfs: Vfs,
    spec: StepSpec,
    stdio: Stdio,
    cancel: Arc<AtomicBool>,
) -> Result<Finished, StepError> {
    let loaded = match load(engine, store, &mut vfs, &spec, &cancel) {
        Err(StepError::NotFound { .. })
            if crate::shell::invocation::invocation(&spec.argv).is_some() =>
        {
            return crate::shell::step_host::run(engine, store, vfs, spec, stdio, cancel);
        }
        loaded => loaded?,
    };
    Ok(execute(
        engine,
        loaded,
        vfs,
        spec,
        stdio,
        cancel,
        Arc::default(),
    ))
}

/// Finds, reads and compiles the program `spec.argv[0]` names, and
/// resolves the preopens; the `Vfs` is only borrowed, so a caller keeps it
/// whatever fails.
pub(crate) fn load(
    engine: &Engine,
    store: &Store,
    vfs: &mut Vfs,
    spec: &StepSpec,
    cancel: &Arc<AtomicBool>,
) -> Result<Loaded, StepError> {
    let name = spec.argv.first().cloned().ok_or(StepError::Empty)?;
    let program_path = find_program(vfs, &name, &spec.env, &spec.cwd)?;
    let (program, loaded_from) =
        load_program(engine, store, vfs, &program_path, &spec.limits, cancel)?;
    if program.kind() != ProgramKind::Component && spec.network.is_some() {
        return Err(StepError::NoNetworkApi { path: program_path });
    }
    let root = vfs.root();
    let mut preopens = vec![Preopen {
        guest_path: "/".into(),
        node: root,
        scope: Scope::Clamp,
    }];
    for dir in &spec.preopens {
        let node = vfs
            .resolve(root, Scope::Clamp, dir.as_str(), true)
            .map_err(|errno| StepError::Read {
                path: dir.absolute(),
                errno,
            })?;
        preopens.push(Preopen {
            guest_path: dir.absolute(),
            node,
            scope: Scope::Deny,
        });
    }
    Ok(Loaded {
        program,
        path: program_path,
        loaded_from,
        preopens,
    })
}

/// Runs a loaded program over `vfs`; nothing here fails before the program
/// runs. Its memories count against `memory` with those of every program
/// given the same pool (a pipeline's, at once): together they stay within
/// the step's memory limit.
pub(crate) fn execute(
    engine: &Engine,
    loaded: Loaded,
    vfs: Vfs,
    spec: StepSpec,
    stdio: Stdio,
    cancel: Arc<AtomicBool>,
    memory: Arc<std::sync::atomic::AtomicUsize>,
) -> Finished {
    let Loaded {
        program,
        path: program_path,
        loaded_from,
        preopens,
    } = loaded;
    let mut env = spec.env;
    let cwd = spec.cwd.absolute();
    if !spec.cwd.is_root() && !env.iter().any(|(k, _)| k == "PWD") {
        // WASI has no working directory for core modules, and wasi-libc
        // starts every program in `/` (it ignores wasip2's initial-cwd too):
        // PWD is how a program learns WORKDIR, as a shell would tell it.
        // No preopen can stand in: wasi-libc strips the leading `/` of
        // absolute paths and names `.` and `/` alike (the empty prefix), so
        // a `.` preopen would take absolute paths too. The program reaches
        // WORKDIR with `chdir($PWD)` (docs/writing-steps.md).
        // In `/` there is nothing to tell, and the environment stays as given.
        env.push(("PWD".into(), cwd.clone()));
    }
    let p1 = wasi::p1::P1State::new(&preopens);
    let (stdio, severance) = crate::exec::Severance::of(stdio);
    let mut state = StepState {
        vfs,
        args: spec.argv,
        env,
        cwd,
        preopens,
        stdio,
        clocks: match spec.reproducible {
            Some(r) => Clocks::reproducible(r.epoch),
            None => Clocks::system(),
        },
        random: match &spec.reproducible {
            Some(r) => Box::new(wasi::SeededRandom::new(&r.seed, "p1 random")),
            None => Box::new(SecureRandom),
        },
        cancel,
        deadline: None,
        p1,
        p2: wasi::p2::P2State::unused(),
        limits: Limiter::sharing(spec.limits.memory, memory),
    };
    if program.kind() == ProgramKind::Component {
        let seed = spec.reproducible.as_ref().map(|r| &r.seed);
        wasi::p2::P2State::install(&mut state, seed);
        state.p2.set_network(wasi::p2::Net {
            policy: spec.network,
            log: spec.net_log,
        });
    }
    let (state, outcome) = engine.run(&program, state, &spec.limits);
    let vfs = state.map(|mut state| {
        // The environment may hold secrets (`env=` secret mounts): zero it.
        // (A program let go keeps its copy until kiln exits.)
        for (_, value) in state.env.iter_mut() {
            zeroize::Zeroize::zeroize(value);
        }
        state.vfs
    });
    // The streams end with the step, whether or not its program did.
    severance.sever();
    Finished {
        vfs,
        outcome,
        program: program_path,
        loaded_from,
    }
}
