//! The one printer that owns terminal output.
//!
//! Progress, warnings and errors go to stderr; results (tables, JSON, the
//! built image id) go to stdout, so `kiln build -q . | xargs kiln history`
//! works. Progress has three looks:
//! - `plain`: BuildKit's plain style, one line per event
//!   (`#2 [1/3] FROM scratch`, `#2 DONE 0.0s`), stable for logs and tests;
//! - `tty`: a spinner per running step, one line per finished step;
//! - `quiet`: nothing but warnings and errors.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::build::{Event, Progress};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// One line per event, BuildKit's plain style.
    Plain,
    /// Live spinners.
    Tty,
    /// Only warnings and errors.
    Quiet,
}

/// The printer. See the module docs.
pub struct Printer {
    mode: ProgressMode,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    spinner: Option<(usize, String, ProgressBar)>,
    warnings: usize,
}

impl Printer {
    /// A printer in `mode` (`Auto` is resolved here).
    pub fn new(mode: ProgressMode) -> Printer {
        let mode = match mode {
            ProgressMode::Auto if io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        Printer {
            mode,
            state: Mutex::new(State::default()),
        }
    }

    /// Writes a result line to stdout.
    pub fn out(&self, line: &str) {
        let mut out = io::stdout().lock();
        // A closed pipe (`kiln images | head -1`) is not an error worth a panic.
        let _ = writeln!(out, "{line}");
    }

    /// Writes raw bytes to stdout (JSON documents).
    pub fn out_raw(&self, bytes: &[u8]) {
        let mut out = io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Writes a status line to stderr (not progress: shown even when quiet).
    pub fn status(&self, line: &str) {
        self.err_line(line);
    }

    /// Writes a warning to stderr.
    pub fn warn(&self, text: &str) {
        self.state.lock().expect("printer lock").warnings += 1;
        self.err_line(&format!("warning: {text}"));
    }

    /// Renders a failed command's error and its causes.
    pub fn error(&self, err: &anyhow::Error) {
        let mut text = format!("error: {err}");
        for cause in err.chain().skip(1) {
            let cause = cause.to_string();
            // Errors that wrap their cause repeat it; show each once.
            if !text.contains(&cause) {
                text.push_str(&format!("\n  caused by: {cause}"));
            }
        }
        self.err_line(&text);
    }

    /// Writes a hint under an error.
    pub fn hint(&self, text: &str) {
        self.err_line(&format!("  hint: {text}"));
    }

    fn err_line(&self, line: &str) {
        let state = self.state.lock().expect("printer lock");
        match &state.spinner {
            Some((_, _, bar)) => bar.suspend(|| {
                let _ = writeln!(io::stderr().lock(), "{line}");
            }),
            None => {
                let _ = writeln!(io::stderr().lock(), "{line}");
            }
        }
    }

    fn plain(&self, event: Event<'_>) {
        let line = match event {
            Event::Start { id, name } => format!("\n#{id} {name}"),
            Event::Log { id, text } => format!("#{id} {text}"),
            Event::Done { id, elapsed } => format!("#{id} DONE {}", secs(elapsed)),
            Event::Failed { id, elapsed } => format!("#{id} ERROR {}", secs(elapsed)),
            Event::Warning(text) => return self.warn(text),
        };
        let _ = writeln!(io::stderr().lock(), "{line}");
    }

    fn tty(&self, event: Event<'_>) {
        let mut state = self.state.lock().expect("printer lock");
        match event {
            Event::Start { id, name } => {
                let bar =
                    ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .expect("constant template")
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                bar.set_message(format!("#{id} {name}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                state.spinner = Some((id, name.to_string(), bar));
            }
            Event::Log { id, text } => {
                if let Some((sid, name, bar)) = &state.spinner
                    && *sid == id
                {
                    bar.set_message(format!("#{id} {name} · {text}"));
                }
            }
            Event::Done { id, elapsed } | Event::Failed { id, elapsed } => {
                let failed = matches!(event, Event::Failed { .. });
                if let Some((_, name, bar)) = state.spinner.take() {
                    bar.finish_and_clear();
                    let mark = if failed {
                        "\x1b[31m✘\x1b[0m"
                    } else {
                        "\x1b[32m✔\x1b[0m"
                    };
                    let _ = writeln!(
                        io::stderr().lock(),
                        "{mark} #{id} {name} \x1b[2m{}\x1b[0m",
                        secs(elapsed)
                    );
                }
            }
            Event::Warning(text) => {
                drop(state);
                self.warn(text);
            }
        }
    }

    /// How many warnings were shown.
    pub fn warnings(&self) -> usize {
        self.state.lock().expect("printer lock").warnings
    }

    /// Whether progress is quiet.
    pub fn is_quiet(&self) -> bool {
        self.mode == ProgressMode::Quiet
    }
}

impl Progress for Printer {
    fn event(&self, event: Event<'_>) {
        match self.mode {
            ProgressMode::Plain | ProgressMode::Auto => self.plain(event),
            ProgressMode::Tty => self.tty(event),
            ProgressMode::Quiet => {
                if let Event::Warning(text) = event {
                    self.warn(text);
                }
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
