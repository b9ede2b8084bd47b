//! How pulls and pushes look: on a terminal a bar per blob, like
//! `docker pull`; otherwise one line per blob when it is done, stable for
//! logs (`3f2a9c01b2d4: pulled 12.4 MiB`).

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::printer::{Printer, ProgressMode};
use crate::build::human_bytes;
use crate::digest::Digest;
use crate::registry::{Outcome, TransferProgress};

/// Draws transfer events through a [`Printer`].
pub(super) struct TransferView<'p> {
    printer: &'p Printer,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    by_blob: HashMap<Digest, (ProgressBar, u64)>,
    sizes: HashMap<Digest, u64>,
}

impl<'p> TransferView<'p> {
    /// A view printing through `printer` in its mode.
    pub(super) fn new(printer: &'p Printer) -> TransferView<'p> {
        TransferView {
            printer,
            bars: Mutex::new(Bars::default()),
        }
    }

    fn tty(&self) -> bool {
        self.printer.mode() == ProgressMode::Tty
    }
}

/// The short id docker shows for a blob: 12 hex digits.
fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

impl TransferProgress for TransferView<'_> {
    fn begin(&self, digest: &Digest, size: u64, what: &str) {
        let mut bars = self.bars.lock().expect("bars lock");
        bars.sizes.insert(*digest, size);
        if !self.tty() || bars.by_blob.contains_key(digest) {
            return;
        }
        let multi = bars
            .multi
            .get_or_insert_with(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .clone();
        let bar = multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg:<8} [{bar:30}] {bytes}/{total_bytes}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(short(digest));
        bar.set_message(what.to_string());
        bars.by_blob.insert(*digest, (bar, size));
    }

    fn advance(&self, digest: &Digest, done: u64) {
        if let Some((bar, _)) = self.bars.lock().expect("bars lock").by_blob.get(digest) {
            bar.set_position(done);
        }
    }

    fn finish(&self, digest: &Digest, outcome: &Outcome) {
        let mut bars = self.bars.lock().expect("bars lock");
        let size = bars.sizes.get(digest).copied().unwrap_or(0);
        let text = match outcome {
            Outcome::Pulled => format!("pulled {}", human_bytes(size)),
            Outcome::Pushed => format!("pushed {}", human_bytes(size)),
            Outcome::Present => "already there".to_string(),
            Outcome::Mounted(from) => format!("mounted from {from}"),
        };
        match bars.by_blob.remove(digest) {
            Some((bar, _)) => {
                bar.set_style(
                    ProgressStyle::with_template("{prefix} {msg}").expect("a valid template"),
                );
                bar.finish_with_message(text);
            }
            None if self.printer.is_quiet() => {}
            None => self.printer.status(&format!("{}: {text}", short(digest))),
        }
    }

    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        self.printer.warn(&format!(
            "{what}: attempt {attempt} of {} failed ({error}); retrying",
            crate::registry::session::ATTEMPTS
        ));
    }

    fn note(&self, text: &str) {
        if !self.printer.is_quiet() {
            self.printer.status(text);
        }
    }
}
