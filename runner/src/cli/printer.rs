//! The one printer that owns terminal output.
//!
//! Progress, warnings and errors go to stderr; results (tables, JSON, the
//! built image id) go to stdout, so `kiln build -q . | xargs kiln history`
//! works. Progress has three looks:
//! - `plain`: BuildKit's plain style, one line per event
//!   (`#2 [1/3] FROM scratch`, `#2 DONE 0.0s`), stable for logs and tests;
//! - `tty`: a spinner per running step (several when stages run in
//!   parallel), one line per finished step;
//! - `quiet`: nothing but warnings and errors.
//!
//! Once a command has loaded its secrets, every line the printer writes
//! (results, progress, warnings, errors) goes through the same masking as
//! step output: a secret in a path the leak guard names, or in an error
//! that quotes a value, shows as `****`.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::build::{Event, Progress};
use crate::secrets::LeakScanner;

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
    mask: OnceLock<Arc<LeakScanner>>,
}

#[derive(Default)]
struct State {
    /// The running steps' spinners (tty mode), by step number.
    spinners: std::collections::BTreeMap<usize, (String, ProgressBar)>,
    /// What draws them, made with the first one.
    multi: Option<MultiProgress>,
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
            mask: OnceLock::new(),
        }
    }

    /// Masks the command's secrets in everything printed from now on.
    pub fn mask_secrets(&self, scanner: Arc<LeakScanner>) {
        let _ = self.mask.set(scanner);
    }

    fn masked<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.mask.get() {
            Some(scanner) => Cow::Owned(scanner.mask(text)),
            None => Cow::Borrowed(text),
        }
    }

    /// Writes a result line to stdout.
    pub fn out(&self, line: &str) {
        let line = self.masked(line);
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
        let line = self.masked(line);
        let state = self.state.lock().expect("printer lock");
        match &state.multi {
            Some(multi) if !state.spinners.is_empty() => multi.suspend(|| {
                let _ = writeln!(io::stderr().lock(), "{line}");
            }),
            _ => {
                let _ = writeln!(io::stderr().lock(), "{line}");
            }
        }
    }

    fn plain(&self, event: Event<'_>) {
        let line = match event {
            Event::Start { id, name } => format!("\n#{id} {name}"),
            Event::Log { id, text } => format!("#{id} {text}"),
            Event::Done { id, elapsed } => format!("#{id} DONE {}", secs(elapsed)),
            Event::Cached { id } => format!("#{id} CACHED"),
            Event::Failed { id, elapsed } => format!("#{id} ERROR {}", secs(elapsed)),
            Event::Warning(text) => return self.warn(text),
        };
        let line = self.masked(&line);
        let _ = writeln!(io::stderr().lock(), "{line}");
    }

    fn tty(&self, event: Event<'_>) {
        let mut state = self.state.lock().expect("printer lock");
        match event {
            Event::Start { id, name } => {
                let multi = state.multi.get_or_insert_with(MultiProgress::new);
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .expect("constant template")
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                let name = self.masked(name).into_owned();
                bar.set_message(format!("#{id} {name}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                state.spinners.insert(id, (name, bar));
            }
            Event::Log { id, text } => {
                if let Some((name, bar)) = state.spinners.get(&id) {
                    let text = self.masked(text);
                    bar.set_message(format!("#{id} {name} · {text}"));
                }
            }
            Event::Done { id, .. } | Event::Failed { id, .. } | Event::Cached { id } => {
                if let Some((name, bar)) = state.spinners.remove(&id) {
                    let (mark, after) = match event {
                        Event::Failed { elapsed, .. } => ("\x1b[31m✘\x1b[0m", secs(elapsed)),
                        Event::Done { elapsed, .. } => ("\x1b[32m✔\x1b[0m", secs(elapsed)),
                        _ => ("\x1b[32m✔\x1b[0m", "CACHED".to_string()),
                    };
                    let line = format!("{mark} #{id} {name} \x1b[2m{after}\x1b[0m");
                    match &state.multi {
                        Some(multi) => {
                            let _ = multi.println(line);
                            multi.remove(&bar);
                        }
                        None => {
                            let _ = writeln!(io::stderr().lock(), "{line}");
                        }
                    }
                    bar.finish_and_clear();
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

    /// The mode (`Auto` resolved).
    pub fn mode(&self) -> ProgressMode {
        self.mode
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
