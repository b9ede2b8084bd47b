//! The WASI host layers: what a step's program can call.
//!
//! [`StepState`] is the data of one wasmtime `Store`: the step's [`Vfs`],
//! its arguments, environment, standard streams, clocks and random source,
//! and the state of each host layer:
//! - [`p1`]: our own `wasi_snapshot_preview1` for core modules (wiggle over
//!   the preview1 witx), every call answered from the VFS, so exit codes and
//!   every preview1 detail are exact;
//! - [`p2`]: WASI 0.2 for components: our own `wasi:filesystem` over the VFS,
//!   with `wasi:io`, `wasi:cli`, `wasi:clocks` and `wasi:random` reused from
//!   wasmtime-wasi, and `wasi:http` and `wasi:sockets` filtered by the
//!   step's network policy (nothing reaches out without one).
//!
//! Nothing here reaches the host: no host directory, no host environment,
//! and the network only as a step's [`Policy`](crate::network::Policy)
//! allows. The step sees exactly what [`StepState`] holds.

pub mod p1;
pub mod p2;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use crate::exec::limiter::Limiter;
use crate::vfs::{NodeRef, Scope, Vfs};

/// A directory the step gets as a preopen, with the name it is known by.
#[derive(Clone, Debug)]
pub struct Preopen {
    /// The guest path (`/`, `/run/secrets`...).
    pub guest_path: String,
    /// The directory.
    pub node: NodeRef,
    /// `Clamp` for `/`, `Deny` for others.
    pub scope: Scope,
}

/// Where a step's random bytes come from.
pub trait Random: Send {
    /// Fills `buf`.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's secure random source.
pub struct SecureRandom;

impl Random for SecureRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random source failed");
    }
}

/// A reproducible random source: the SHA-256 of a seed and a block counter,
/// block after block. The same seed gives the same bytes on every host;
/// kiln seeds it from the step's cache key when `SOURCE_DATE_EPOCH` is set.
/// It is not a secret generator: anyone who knows the inputs of the step
/// can compute its output, which is the point.
pub struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// A generator for `seed`, and `stream` (to draw independent sequences
    /// from one seed).
    pub fn new(seed: &[u8; 32], stream: &str) -> SeededRandom {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"kiln seeded random\0");
        h.update(seed);
        h.update(stream.as_bytes());
        SeededRandom {
            seed: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn next_block(&mut self) {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        self.block = h.finalize().into();
        self.counter += 1;
        self.used = 0;
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            if self.used == self.block.len() {
                self.next_block();
            }
            let n = (buf.len() - done).min(self.block.len() - self.used);
            buf[done..done + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            done += n;
        }
    }
}

impl rand_core::TryRng for SeededRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

/// What makes a step reproducible (`SOURCE_DATE_EPOCH`): its wall clock
/// starts at `epoch` and its random bytes come from `seed`.
#[derive(Clone, Copy)]
pub struct Reproducible {
    /// Seconds since the Unix epoch.
    pub epoch: i64,
    /// The seed of every random source of the step.
    pub seed: [u8; 32],
}

impl std::fmt::Debug for Reproducible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reproducible(epoch {})", self.epoch)
    }
}

/// The step's clocks, in nanoseconds.
pub struct Clocks {
    /// Wall-clock time since the Unix epoch.
    pub wall: crate::vfs::Clock,
    /// Start of the monotonic clock.
    pub start: Instant,
}

impl Clocks {
    /// The real clocks.
    pub fn system() -> Clocks {
        Clocks {
            wall: crate::vfs::system_clock(),
            start: Instant::now(),
        }
    }

    /// Clocks whose wall clock starts at `epoch` (seconds) and advances one
    /// microsecond each time it is read, whatever the real time: a program
    /// that writes the time writes the same bytes on every run, and two
    /// readings still differ and increase. The monotonic clock stays real
    /// (it measures durations, and sleeping must take real time).
    pub fn reproducible(epoch: i64) -> Clocks {
        let base = epoch.saturating_mul(1_000_000_000);
        let ticks = std::sync::atomic::AtomicI64::new(0);
        Clocks {
            wall: Arc::new(move || base.saturating_add(ticks.fetch_add(1_000, Ordering::Relaxed))),
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn wall_now(&self) -> i64 {
        (self.wall)()
    }

    /// Nanoseconds since the step started.
    pub fn monotonic_now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A step's standard streams.
pub struct Stdio {
    /// Standard input.
    pub stdin: Box<dyn Read + Send>,
    /// Standard output.
    pub stdout: Box<dyn Write + Send>,
    /// Standard error.
    pub stderr: Box<dyn Write + Send>,
    /// Whether the streams are terminals (`kiln run` on a tty).
    pub terminal: bool,
}

/// Everything a step's program may see. See the module docs.
pub struct StepState {
    /// The filesystem.
    pub vfs: Vfs,
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// The working directory (absolute guest path).
    pub cwd: String,
    /// Preopened directories; `/` first.
    pub preopens: Vec<Preopen>,
    /// Standard streams.
    pub stdio: Stdio,
    /// Clocks.
    pub clocks: Clocks,
    /// Random bytes.
    pub random: Box<dyn Random>,
    /// Set by Ctrl-C: blocking host calls give up as soon as they see it.
    pub cancel: Arc<AtomicBool>,
    /// When the step's time is up (set by [`crate::exec::Engine::run`]):
    /// blocking host calls give up then too.
    pub deadline: Option<Instant>,
    /// The preview1 layer's state (its descriptor table).
    pub p1: p1::P1State,
    /// The component layer's state.
    pub p2: p2::P2State,
    /// Memory and table limits (the sum over all of the step's instances).
    pub limits: Limiter,
}

impl StepState {
    /// Whether a blocking call must give up: the step was cancelled or its
    /// time is up. The guest then runs again and the engine's epoch check
    /// ends it, reporting which.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}
