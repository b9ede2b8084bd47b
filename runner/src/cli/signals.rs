//! Interrupts: Ctrl-C, SIGTERM and SIGHUP stop the running command cleanly.
//!
//! The first interrupt sets the cancel flag that every running step, secret
//! read and compile watches: the step stops, temp files go with their
//! owners, nothing half-written is published, and kiln exits with the code
//! shells expect for that signal (130 for SIGINT, 143 for SIGTERM, 129 for
//! SIGHUP). A second interrupt exits at once with the same code; what that
//! leaves in the store's temp area is swept by the next kiln to open it.
//!
//! On Unix the signals are read on a thread (`signal-hook`'s iterator), so
//! no code of ours runs in a signal handler. On Windows, Ctrl-C, Ctrl-Break,
//! closing the console, logoff and shutdown arrive through the console
//! control handler (`SetConsoleCtrlHandler`, on a thread Windows starts);
//! they all count as Ctrl-C (exit 130). For a closing console Windows ends
//! the process as soon as the handler returns, so that handler waits for
//! the build to stop cleanly (kiln's exit ends the wait) within the 5
//! seconds Windows grants.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first interrupt's signal number (0 until one arrives).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// SIGINT's number: what Ctrl-C is everywhere, and the default code.
const SIGINT: i32 = 2;

/// Starts listening; interrupts set `cancel`.
pub(super) fn install(cancel: Arc<AtomicBool>) {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("kiln-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    interrupted(&cancel, signal);
                }
            });
    }
    #[cfg(windows)]
    console::install(cancel);
    #[cfg(not(any(unix, windows)))]
    let _ = cancel;
}

/// Windows' console control handler (see the module docs).
#[cfg(windows)]
#[allow(unsafe_code)]
mod console {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use windows_sys::Win32::System::Console::{
        CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
        PHANDLER_ROUTINE, SetConsoleCtrlHandler,
    };
    use windows_sys::core::BOOL;

    /// The flag the handler sets, once installed.
    static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    /// How long a closing console (or logoff, shutdown) is held open while
    /// the build stops: under the 5 seconds after which Windows ends the
    /// process anyway.
    const CLOSE_GRACE: Duration = Duration::from_millis(4500);

    pub(super) fn install(cancel: Arc<AtomicBool>) {
        if CANCEL.set(cancel).is_err() {
            return;
        }
        let routine: PHANDLER_ROUTINE = Some(handler);
        // SAFETY: `handler` has the signature the API asks for and lives as
        // long as the process; it touches only a static set before this
        // call. A failure (no console) leaves the default handling.
        unsafe {
            SetConsoleCtrlHandler(routine, 1);
        }
    }

    /// Runs on a thread Windows starts for the event, not in a signal
    /// context: ordinary code is fine here.
    unsafe extern "system" fn handler(event: u32) -> BOOL {
        let Some(cancel) = CANCEL.get() else {
            return 0;
        };
        match event {
            CTRL_C_EVENT | CTRL_BREAK_EVENT => {
                super::interrupted(cancel, super::SIGINT);
                1
            }
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => {
                super::interrupted(cancel, super::SIGINT);
                // Returning would end the process now, mid-cleanup; kiln's
                // own exit ends this wait (and the process) earlier.
                std::thread::sleep(CLOSE_GRACE);
                1
            }
            _ => 0,
        }
    }
}

fn interrupted(cancel: &AtomicBool, signal: i32) {
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if cancel.swap(true, Ordering::SeqCst) {
        std::process::exit(exit_code());
    }
}

/// The exit code of a command an interrupt stopped: 128 + the signal.
pub(crate) fn exit_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 128 + SIGINT,
        n => 128 + n,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exit_code_is_128_plus_the_first_signal() {
        assert_eq!(super::exit_code(), 130, "no signal yet: Ctrl-C's code");
        let cancel = std::sync::atomic::AtomicBool::new(false);
        super::interrupted(&cancel, 15);
        assert!(cancel.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(super::exit_code(), 143);
    }
}
