//! RUN: a wasm step over the image so far, its changes becoming a layer.
//!
//! The command line follows Docker's two forms. The exec form is run as
//! written. The plain form is split into words with quotes respected and
//! `$VAR` expanded from the step's environment, as Docker's shell would;
//! anything that needs a shell (`&&`, `|`, redirects, `$(..)`, a
//! here-document) becomes `/bin/sh -c SCRIPT`, run by the image's own wasm
//! `/bin/sh` when it has one and by kiln's built-in shell (`crate::shell`)
//! when it does not. Either way the cache key is the script's text.
//!
//! The step's root is an overlay over the current snapshot, with the
//! `--mount`s attached (`mounts.rs`); it runs on a worker thread while this
//! thread streams its output into the progress under the step's number.

use std::io::{self, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::mounts;
use super::{Build, BuildError};
use crate::exec::Outcome;
use crate::frontend::{self, CommandLine, Span, Word};
use crate::layer::PendingChanges;
use crate::snapshot::{ImagePath, Node, Snapshot};
use crate::step::{self, StepSpec};
use crate::vfs::{OverlayFs, Vfs};

/// Lines of stderr kept to explain a failed step.
const STDERR_TAIL_LINES: usize = 20;

/// What the dispatcher knows of the stage when it runs a step.
pub(super) struct RunContext<'a> {
    pub snapshot: &'a std::sync::Arc<Snapshot>,
    pub env: Vec<(String, String)>,
    pub workdir: &'a ImagePath,
    /// `SHELL`, when the stage set one.
    pub shell: Option<&'a [String]>,
    pub owner: (u32, u32),
    pub step_id: usize,
    pub step_name: &'a str,
}

/// A RUN with its mounts parsed and its command line expanded: what its
/// cache key is made of, before anything runs.
pub(super) struct Prepared {
    pub mounts: Vec<(frontend::Mount, Span)>,
    pub argv: Vec<String>,
    /// The history line: `RUN`, the flags, the command as written.
    pub created_by: String,
    /// `--network=default`: the step gets the build's allowlist.
    pub network: bool,
}

/// Whether the image has a wasm `/bin/sh` to run shell syntax with.
pub(super) fn has_shell(snapshot: &Snapshot) -> bool {
    ["bin/sh", "bin/sh.wasm"].iter().any(|p| {
        let p = ImagePath::parse(p).expect("constant");
        snapshot
            .resolve(&p, true)
            .ok()
            .and_then(|r| snapshot.get(&r).cloned())
            .is_some_and(|n| matches!(n, Node::File(..)))
    })
}

/// The argv of a RUN. See the module docs.
fn argv(
    b: &Build<'_>,
    run: &frontend::Run,
    cx: &RunContext<'_>,
    span: &Span,
) -> Result<Vec<String>, BuildError> {
    let kf = b.kilnfile;
    match &run.command {
        CommandLine::Exec(words) => {
            if words.is_empty() {
                return Err(kf.error(span.clone(), "RUN needs a command").into());
            }
            Ok(words.iter().map(|w| w.raw.clone()).collect())
        }
        CommandLine::Shell(w) => {
            // A SHELL the Kilnfile chose runs every shell-form line, as in
            // Docker; the built-in shell checks the syntax when it is the
            // one that will run it.
            if let Some(shell) = cx.shell {
                let script = script(kf, run, w);
                let builtin = crate::shell::invocation::invocation(shell).is_some();
                if builtin && !has_shell(cx.snapshot) {
                    check_script(kf, &script)?;
                }
                return Ok(shell.iter().cloned().chain([script.raw]).collect());
            }
            if !run.heredocs.is_empty() || frontend::words::shell_syntax(&w.raw).is_some() {
                let script = script(kf, run, w);
                // Without a /bin/sh of the image's own, kiln's built-in
                // shell runs the script: its syntax is checked here, so an
                // error points into the Kilnfile before anything runs.
                if !has_shell(cx.snapshot) {
                    check_script(kf, &script)?;
                }
                return Ok(vec!["/bin/sh".into(), "-c".into(), script.raw]);
            }
            let env = &cx.env;
            let lookup = |k: &str| {
                env.iter()
                    .rev()
                    .find(|(ek, _)| ek == k)
                    .map(|(_, v)| v.as_str())
            };
            let mut out = Vec::new();
            for word in frontend::words::split_words(&w.raw, '\\') {
                let sub = Word {
                    raw: word.text.to_string(),
                    span: w.span.start + word.range.start..w.span.start + word.range.end,
                };
                out.push(kf.expand(&sub, &lookup)?);
            }
            if out.is_empty() {
                return Err(kf.error(span.clone(), "RUN needs a command").into());
            }
            Ok(out)
        }
    }
}

/// The script of a shell-form RUN that needs a shell. `RUN <<EOF` with
/// nothing else on its line runs the here-document as the script, as in
/// BuildKit; otherwise the command line and its here-documents, as
/// written, are the script (`RUN <<EOF python3` feeds python3).
fn script(kf: &frontend::Kilnfile, run: &frontend::Run, w: &Word) -> Word {
    let Some(last) = run.heredocs.last() else {
        return w.clone();
    };
    let alone = w.raw.split_whitespace().all(|t| t.starts_with("<<"));
    if alone && run.heredocs.len() == 1 {
        return last.clone();
    }
    let text = kf.source.text();
    let end = text[last.span.end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| last.span.end + i + 1);
    let span = w.span.start..end;
    Word {
        raw: kf.source.slice(&span).to_string(),
        span,
    }
}

/// Parses a script for the built-in shell; a syntax error points at its
/// line and column in the Kilnfile.
pub(super) fn check_script(kf: &frontend::Kilnfile, script: &Word) -> Result<(), BuildError> {
    crate::shell::parse(&script.raw).map(drop).map_err(|e| {
        let offset = script
            .raw
            .split_inclusive('\n')
            .take(e.pos.line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>();
        let column: usize = script.raw[offset..]
            .chars()
            .take(e.pos.column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        kf.word_error(
            script,
            offset + column,
            format!("shell syntax (kiln's built-in shell): {}", e.message),
        )
        .into()
    })
}

/// Parses a RUN's flags and expands its command line.
pub(super) fn prepare(
    b: &Build<'_>,
    run: &frontend::Run,
    span: &Span,
    cx: &RunContext<'_>,
) -> Result<Prepared, BuildError> {
    let kf = b.kilnfile;
    let env = cx.env.clone();
    let lookup = |k: &str| {
        env.iter()
            .rev()
            .find(|(ek, _)| ek == k)
            .map(|(_, v)| v.as_str())
    };
    let mut flags = Vec::new();
    let mut network = false;
    if let Some(w) = &run.network {
        let value = kf.expand(w, &lookup)?;
        frontend::check_network(&value).map_err(|e| kf.error(w.span.clone(), e))?;
        network = value == "default";
        if network && b.opts.network.allow.is_empty() {
            return Err(kf
                .error(w.span.clone(), crate::network::EMPTY_ALLOWLIST)
                .into());
        }
        flags.push(format!("--network={value}"));
    }
    let mut mounts = Vec::new();
    for m in &run.mounts {
        let (mount, text) = match &m.parsed {
            Some(parsed) => (parsed.clone(), m.spec.raw.clone()),
            None => {
                let text = kf.expand(&m.spec, &lookup)?;
                let parsed = frontend::Mount::parse(&text)
                    .map_err(|(_, msg)| kf.error(m.spec.span.clone(), msg))?;
                (parsed, text)
            }
        };
        if let Some(id) = mount
            .id
            .as_deref()
            .filter(|_| mount.origin.is_some() && !network)
        {
            return Err(kf
                .error(
                    m.spec.span.clone(),
                    crate::network::bound_without_network(id),
                )
                .into());
        }
        flags.push(format!("--mount={text}"));
        mounts.push((mount, m.spec.span.clone()));
    }
    let argv = argv(b, run, cx, span)?;
    let shown = match &run.command {
        CommandLine::Exec(words) => {
            serde_json::to_string(&words.iter().map(|w| &w.raw).collect::<Vec<_>>())
                .expect("strings serialize")
        }
        CommandLine::Shell(w) => w.raw.clone(),
    };
    let mut created_by = String::from("RUN ");
    for f in &flags {
        created_by.push_str(f);
        created_by.push(' ');
    }
    created_by.push_str(&shown);
    Ok(Prepared {
        mounts,
        argv,
        created_by,
        network,
    })
}

/// Runs a prepared RUN whose cache key is `key`; returns what it changed.
pub(super) fn run(
    b: &Build<'_>,
    prepared: Prepared,
    cx: RunContext<'_>,
    key: &crate::digest::Digest,
) -> Result<PendingChanges, BuildError> {
    let Prepared {
        mounts,
        argv,
        network,
        ..
    } = prepared;
    // With SOURCE_DATE_EPOCH, the step's clock starts at the epoch and its
    // random bytes are seeded by its cache key: same inputs, same bytes.
    let reproducible = b.reproducible.then(|| crate::wasi::Reproducible {
        epoch: b.epoch,
        seed: *key.as_bytes(),
    });
    let file_clock = match reproducible {
        Some(r) => {
            let at = r.epoch.saturating_mul(1_000_000_000);
            let clock: crate::vfs::Clock = std::sync::Arc::new(move || at);
            clock
        }
        None => crate::vfs::system_clock(),
    };
    // The step's filesystem. Its store handle records a damaged object the
    // guest met: the guest sees only "I/O error", kiln says what it is.
    let watched = b.store.watched();
    let mut overlay = OverlayFs::new(
        std::sync::Arc::clone(cx.snapshot),
        watched.clone(),
        1,
        file_clock.clone(),
    );
    let limits = b.opts.step_limits;
    overlay.set_owner_of_new(cx.owner.0, cx.owner.1);
    let mut vfs = Vfs::new(overlay);
    // One budget for everything the step writes: the layer and every mount.
    vfs.set_write_limits(crate::vfs::WriteLimits {
        max_bytes: limits.max_write,
        max_files: limits.max_files,
    });
    let _scratch = mounts::attach_all(b, &mut vfs, &mounts, cx.workdir, &file_clock, cx.step_id)?;
    let secret_mounts: Vec<&frontend::Mount> = mounts.iter().map(|(m, _)| m).collect();
    let secrets = crate::secrets::mount::attach(
        &mut vfs,
        &b.opts.secrets,
        &secret_mounts,
        cx.workdir,
        cx.snapshot,
        100,
    )
    .map_err(|message| BuildError::Step {
        step: cx.step_name.to_string(),
        message,
        stderr: String::new(),
    })?;
    for id in &secrets.missing {
        let provided = b.opts.secrets.provided();
        b.steps.warn(&format!(
            "{}: secret {id:?} was not provided ({provided}; pass --secret id={id},src=FILE); the step runs without it",
            cx.step_name
        ));
    }

    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    // Where kiln tells the step's log what the network refused: beside the
    // step's stderr, masked the same way.
    let net_log: crate::network::NetLog = std::sync::Arc::new(std::sync::Mutex::new(masked(
        Chunks {
            tx: tx.clone(),
            err: true,
        },
        b.scanner.clone(),
    )));
    let policy = if network {
        let mut bound = Vec::new();
        for (m, _) in &mounts {
            if let (Some(id), Some(_)) = (&m.id, &m.origin)
                && let Some(secret) = b.opts.secrets.get(id)
                && let Some(s) = crate::network::bind(m, secret.clone())
            {
                bound.push(s);
            }
        }
        let policy = b
            .opts
            .network
            .policy(bound, Some(net_log.clone()))
            .map_err(|message| BuildError::Step {
                step: cx.step_name.to_string(),
                message,
                stderr: String::new(),
            })?;
        Some(std::sync::Arc::new(policy))
    } else {
        None
    };
    let engine = b.engine()?;
    let mut env = cx.env.clone();
    env.extend(secrets.env);
    let spec = StepSpec {
        argv,
        env,
        cwd: cx.workdir.clone(),
        limits,
        preopens: secrets.preopens,
        reproducible,
        network: policy,
        net_log: Some(net_log),
    };
    let started = Instant::now();
    let out_tx = tx.clone();
    let cancel = b.opts.cancel.clone();
    let store = b.store;
    let mut tail: Vec<String> = Vec::new();
    // Output is masked before it leaves the step's thread: a secret never
    // reaches the progress printer, even split across writes.
    let stdout = masked(
        Chunks {
            tx: out_tx,
            err: false,
        },
        b.scanner.clone(),
    );
    let stderr = masked(Chunks { tx, err: true }, b.scanner.clone());
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let stdio = crate::wasi::Stdio {
                stdin: Box::new(io::empty()),
                stdout,
                stderr,
                terminal: false,
            };
            step::run(engine, store, vfs, spec, stdio, cancel)
        });
        let mut lines = LineSplitter::default();
        let mut take = |(err, bytes): (bool, Vec<u8>)| {
            for line in lines.push(err, &bytes) {
                emit(b, cx.step_id, started, &line, err, &mut tail);
            }
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(chunk) => take(chunk),
                // The step's output ends with its thread: a program let go
                // at a time limit (`exec/watch.rs`) may still hold a sender
                // (its network log), but it never writes again.
                Err(mpsc::RecvTimeoutError::Timeout) if worker.is_finished() => {
                    rx.try_iter().for_each(&mut take);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        for (err, line) in lines.finish() {
            emit(b, cx.step_id, started, &line, err, &mut tail);
        }
        worker.join().expect("the step thread panicked")
    });
    let finished = result.map_err(|e| match e {
        step::StepError::Cancelled => BuildError::Cancelled,
        e => BuildError::Step {
            step: cx.step_name.to_string(),
            message: e.to_string(),
            stderr: String::new(),
        },
    })?;
    let stderr = tail.join("\n");
    let fail = |message: String| BuildError::Step {
        step: cx.step_name.to_string(),
        message,
        stderr: stderr.clone(),
    };
    if let Some(damage) = watched.damage()
        && finished.outcome != Outcome::Cancelled
    {
        // Even a step that exits 0 after an I/O error built on bytes it
        // could not read: its result is not to be trusted or cached.
        return Err(fail(damage.to_string()));
    }
    match finished.outcome {
        Outcome::Exit(0) => {}
        Outcome::Exit(code) => {
            return Err(fail(format!(
                "{} exited with code {code}",
                finished.program
            )));
        }
        Outcome::Trap(trap) => return Err(fail(format!("{} trapped: {trap}", finished.program))),
        Outcome::Limit(limit) => return Err(fail(crate::exec::describe_limit(&limit))),
        Outcome::Cancelled => return Err(BuildError::Cancelled),
    }
    let mut vfs = finished
        .vfs
        .expect("a program that exited is back with its filesystem");
    vfs.overlay()
        .changes()
        .map_err(|e| fail(format!("reading what the step wrote: {e}")))
}

fn emit(b: &Build<'_>, id: usize, started: Instant, line: &str, err: bool, tail: &mut Vec<String>) {
    b.steps.log(
        id,
        &format!("{:.3} {line}", started.elapsed().as_secs_f64()),
    );
    if err {
        tail.push(line.to_string());
        if tail.len() > STDERR_TAIL_LINES {
            tail.remove(0);
        }
    }
}

/// `w`, with every secret `scanner` knows replaced by `****`.
pub(crate) fn masked<W: Write + Send + 'static>(
    w: W,
    scanner: Option<std::sync::Arc<crate::secrets::LeakScanner>>,
) -> Box<dyn Write + Send> {
    match scanner {
        Some(s) => Box::new(crate::secrets::MaskingWriter::new(w, s)),
        None => Box::new(w),
    }
}

/// Sends what a step writes to the build thread.
struct Chunks {
    tx: mpsc::Sender<(bool, Vec<u8>)>,
    err: bool,
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A closed channel means the build gave up; the step's output has
        // nowhere to go and is dropped.
        let _ = self.tx.send((self.err, buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Longest line shown before it is cut: a step printing a megabyte without
/// a newline must not hold it all in memory.
const MAX_LINE: usize = 16 << 10;

/// Splits stdout and stderr into lines, each stream on its own.
#[derive(Default)]
struct LineSplitter {
    out: Vec<u8>,
    err: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, err: bool, bytes: &[u8]) -> Vec<String> {
        let buf = if err { &mut self.err } else { &mut self.out };
        buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            lines.push(
                String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
        if buf.len() > MAX_LINE {
            let line = std::mem::take(buf);
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }

    fn finish(&mut self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        for (err, buf) in [(false, &mut self.out), (true, &mut self.err)] {
            if !buf.is_empty() {
                out.push((err, String::from_utf8_lossy(buf).into_owned()));
                buf.clear();
            }
        }
        out
    }
}
