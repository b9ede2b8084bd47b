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
//! no code of ours runs in a signal handler. On Windows, Ctrl-C, Ctrl-Break
//! and closing the console arrive through the console control handler
//! (`ctrlc`); they all count as Ctrl-C (exit 130).

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
    #[cfg(not(unix))]
    {
        let _ = ctrlc::set_handler(move || interrupted(&cancel, SIGINT));
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
