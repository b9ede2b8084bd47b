//! Stopping a guest without epoch checks: how a time limit and Ctrl-C hold.
//!
//! kiln compiles steps' code without epoch interruption: those checks, at
//! every loop back-edge and function entry, cost compute-heavy code 5 to 14%
//! of its speed, and they are the only way wasmtime has to stop a guest
//! that never calls out. kiln stops a step another way, in two tiers:
//!
//! - **At its next call into kiln.** The guest runs on a thread of its own.
//!   A wasmtime call hook marks, at every crossing, whether that thread runs
//!   the guest's code or kiln's, and once the step is stopped (its deadline
//!   passed, or the cancel flag set) it refuses every crossing into kiln with
//!   a trap. A guest that does I/O, sleeps or polls stops there, and its
//!   state comes back as it was.
//! - **Let go.** A guest seen in its own code [`GRACE`] after the step was
//!   stopped is one that computes without calling out; the step ends
//!   without it. Its standard streams are cut off ([`Severance`]), so whoever
//!   reads them sees their end, and the first call it makes into kiln traps
//!   it, so none of kiln's code runs for it again: it only computes, on its
//!   own thread, until it ends or kiln does. A build or `kiln run` whose
//!   step was stopped fails and exits, so that thread never outlives the
//!   command by more than its own cleanup.
//!
//! Why letting go is safe: the hook marks the thread as in kiln *before* it
//! looks at the stop, and the watcher sets the stop *before* it looks at the
//! mark (both sequentially consistent). So once the watcher has set the stop
//! and then seen the thread in the guest's code, any later crossing into
//! kiln sees the stop and traps; and a call into kiln that began before the
//! stop is seen as such, and waited for (kiln's own calls that block, like
//! a sleep or a read of a FIFO, watch the cancel flag and the deadline).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::wasi::Stdio;

/// How long a stopped guest has to make its next call into kiln (and stop
/// cleanly, its state handed back) before the step ends without it.
pub const GRACE: Duration = Duration::from_millis(100);

/// How often the watcher looks at the cancel flag while a guest runs.
pub const TICK: Duration = Duration::from_millis(10);

/// Why a step was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Stop {
    #[error("cancelled")]
    Cancelled,
    #[error("timed out")]
    Timeout,
}

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// What the guest's thread and its watcher share.
struct Shared {
    /// Ctrl-C: the flag every running step watches.
    cancel: Arc<AtomicBool>,
    /// [`RUNNING`], or why the watcher stopped the step.
    stop: AtomicU8,
    /// Whether the guest's thread runs the guest's code (not kiln's).
    in_guest: AtomicBool,
}

impl Shared {
    fn stopped(&self) -> Option<Stop> {
        match self.stop.load(Ordering::SeqCst) {
            RUNNING if self.cancel.load(Ordering::Relaxed) => Some(Stop::Cancelled),
            RUNNING => None,
            CANCELLED => Some(Stop::Cancelled),
            _ => Some(Stop::Timeout),
        }
    }
}

/// One run's watch: the call hook for its store, and the wait.
pub(super) struct Watch {
    shared: Arc<Shared>,
    deadline: Option<Instant>,
}

impl Watch {
    pub(super) fn new(cancel: Arc<AtomicBool>, deadline: Option<Instant>) -> Watch {
        Watch {
            shared: Arc::new(Shared {
                cancel,
                stop: AtomicU8::new(RUNNING),
                // The thread starts in kiln's code (instantiating).
                in_guest: AtomicBool::new(false),
            }),
            deadline,
        }
    }

    /// The store's call hook (see the module docs).
    pub(super) fn hook<T>(
        &self,
    ) -> impl FnMut(wasmtime::StoreContextMut<'_, T>, wasmtime::CallHook) -> wasmtime::Result<()>
    + Send
    + Sync
    + 'static {
        let shared = Arc::clone(&self.shared);
        move |_, hook| {
            if hook.entering_host() {
                shared.in_guest.store(false, Ordering::SeqCst);
                if let Some(stop) = shared.stopped() {
                    return Err(stop.into());
                }
            } else {
                if let Some(stop) = shared.stopped() {
                    return Err(stop.into());
                }
                shared.in_guest.store(true, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    /// Waits for the guest's thread to send its result; or, once the step is
    /// stopped and its guest has been in its own code for [`GRACE`], says
    /// why and lets it go.
    pub(super) fn wait<R>(&self, rx: &mpsc::Receiver<R>) -> Result<R, Waited> {
        let shared = &*self.shared;
        let mut stopped_at = None;
        loop {
            let wait = match self.deadline {
                Some(d) if stopped_at.is_none() => {
                    d.saturating_duration_since(Instant::now()).min(TICK)
                }
                _ => TICK,
            };
            match rx.recv_timeout(wait) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Waited::Gone),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let Some(at) = stopped_at else {
                let stop = if shared.cancel.load(Ordering::SeqCst) {
                    CANCELLED
                } else if self.deadline.is_some_and(|d| now >= d) {
                    TIMED_OUT
                } else {
                    continue;
                };
                // Set before the mark is read (see the module docs).
                shared.stop.store(stop, Ordering::SeqCst);
                stopped_at = Some(now);
                continue;
            };
            if now.duration_since(at) >= GRACE && shared.in_guest.load(Ordering::SeqCst) {
                let why = shared.stopped().expect("the stop is set");
                return Err(Waited::LetGo(why));
            }
        }
    }
}

/// Why [`Watch::wait`] has no result.
pub(super) enum Waited {
    /// The step was stopped, and its guest let go.
    LetGo(Stop),
    /// The guest's thread ended without a result: it panicked.
    Gone,
}

/// A step's standard streams, behind handles that can be cut off from
/// outside: what a guest that is let go holds of them.
pub(crate) struct Severance {
    stdin: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
    stdout: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
    stderr: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
}

impl Severance {
    /// `stdio` behind severable handles, and the means to sever them.
    pub(crate) fn of(stdio: Stdio) -> (Stdio, Severance) {
        let stdin = Arc::new(Mutex::new(Some(stdio.stdin)));
        let stdout = Arc::new(Mutex::new(Some(stdio.stdout)));
        let stderr = Arc::new(Mutex::new(Some(stdio.stderr)));
        let severable = Stdio {
            stdin: Box::new(Cut(Arc::clone(&stdin))),
            stdout: Box::new(Cut(Arc::clone(&stdout))),
            stderr: Box::new(Cut(Arc::clone(&stderr))),
            terminal: stdio.terminal,
        };
        (
            severable,
            Severance {
                stdin,
                stdout,
                stderr,
            },
        )
    }

    /// Drops the streams (flushing what they hold, as at a normal end):
    /// readers of their other ends see the end of input; the guest sees a
    /// broken pipe, should it write again.
    pub(crate) fn sever(self) {
        fn take<T>(m: &Mutex<Option<T>>) -> Option<T> {
            m.lock().unwrap_or_else(|e| e.into_inner()).take()
        }
        if let Some(mut w) = take(&self.stdout) {
            let _ = w.flush();
        }
        if let Some(mut w) = take(&self.stderr) {
            let _ = w.flush();
        }
        drop(take(&self.stdin));
    }
}

/// One severable stream.
struct Cut<T>(Arc<Mutex<Option<T>>>);

impl<T> Cut<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> io::Result<R>) -> io::Result<R> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(s) => f(s),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

impl Read for Cut<Box<dyn Read + Send>> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.with(|r| r.read(buf)) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
            r => r,
        }
    }
}

impl Write for Cut<Box<dyn Write + Send>> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with(|w| w.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with(|w| w.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(|w| w.flush())
    }
}
