//! kiln's built-in shell as a step: `sh -c SCRIPT` (and `sh FILE`) in an
//! image that has no `sh` of its own. Shell-form `RUN`, `CMD` and
//! `ENTRYPOINT` become `/bin/sh -c TEXT` as in Docker, and `kiln run IMAGE
//! sh -c '...'` is the same call; `step::run` sends each here when the
//! image has no such program.
//!
//! The script runs on the calling thread. Each external command is a
//! program of the image, loaded by `step::load` and run by `step::execute`
//! on a thread of its own over the step's one `Vfs`, which goes from
//! command to command and comes back to the caller with everything the
//! script wrote. The command's output is streamed into the shell's
//! descriptors as it comes, so a long `make` in `cd src && make` shows its
//! lines while it runs.
//!
//! One budget for the whole script: its time limit runs from the start of
//! the script (a loop of builtins included), its writes share the `Vfs`'s
//! write limits, and the programs running at once share the step's memory
//! limit (one pool, `exec::limiter`). A limit hit or a Ctrl-C stops the
//! script and is the step's outcome, as for a single program.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use super::host::{ErrTo, Exec, Host, PathTest, PipelineStreams, Stdin, Streams};
use super::invocation::{Invocation, Source, invocation};
use super::step_files;
use crate::exec::{Engine, Limit, LoadedFrom, Outcome};
use crate::snapshot::ImagePath;
use crate::step::{self, Finished, StepError, StepSpec};
use crate::store::Store;
use crate::vfs::{LimitHit, Vfs};
use crate::wasi::Stdio;

/// How the built-in shell is named in messages (`... exited with code 1`).
pub(crate) const PROGRAM: &str = "sh (kiln's built-in shell)";

/// Runs `spec.argv` (an [`invocation`]) with the built-in shell over `vfs`.
pub(crate) fn run(
    engine: &Engine,
    store: &Store,
    vfs: Vfs,
    spec: StepSpec,
    stdio: Stdio,
    cancel: Arc<AtomicBool>,
) -> Result<Finished, StepError> {
    let Stdio {
        stdin,
        mut stdout,
        mut stderr,
        ..
    } = stdio;
    let invocation = invocation(&spec.argv).expect("step::run checked that argv calls sh");
    let total = spec.limits.timeout;
    let mut host = StepHost {
        engine,
        store,
        vfs: Some(vfs),
        stdin: Arc::new(Mutex::new(stdin)),
        started: Instant::now(),
        memory: Arc::default(),
        commands: 0,
        fatal: None,
        cancel,
        spec: StepSpec {
            argv: Vec::new(),
            ..spec
        },
    };
    let status = match invocation {
        Err(message) => {
            let _ = writeln!(stderr, "{message}");
            2
        }
        Ok(inv) => host.script(&inv, &mut stdout, &mut stderr),
    };
    let _ = stdout.flush();
    let _ = stderr.flush();
    let outcome = match host.fatal.take() {
        Some(Outcome::Limit(Limit::Time(_))) => Outcome::Limit(Limit::Time(total)),
        Some(outcome) => outcome,
        None => Outcome::Exit(status),
    };
    Ok(Finished {
        vfs: Some(
            host.vfs
                .take()
                .expect("the Vfs is back after every command"),
        ),
        outcome,
        program: PROGRAM.into(),
        loaded_from: LoadedFrom::Memory,
    })
}

/// The shell's [`Host`] over a step: programs of the image, its `Vfs`.
struct StepHost<'e> {
    engine: &'e Engine,
    store: &'e Store,
    /// Home between commands; taken by the command running.
    vfs: Option<Vfs>,
    /// The script's own standard input, shared by the commands that read
    /// it without a redirection.
    stdin: Arc<Mutex<Box<dyn Read + Send>>>,
    started: Instant,
    /// Commands run so far (each one's random bytes are seeded apart).
    commands: u64,
    /// What stopped the script: a limit hit, Ctrl-C.
    fatal: Option<Outcome>,
    /// What the programs running now hold of the step's memory limit.
    memory: Arc<AtomicUsize>,
    cancel: Arc<AtomicBool>,
    /// The step's spec, its argv unused: each command's starts from it.
    spec: StepSpec,
}

impl StepHost<'_> {
    /// Runs the invocation's script; its exit status.
    fn script(&mut self, inv: &Invocation, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
        let cwd = self.spec.cwd.absolute();
        let text = match &inv.source {
            Source::Command(text) => text.clone(),
            Source::File(file) => {
                let path = super::redirect::absolute(&cwd, file);
                match self.read_file(&path) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => {
                        let _ = writeln!(stderr, "sh: cannot open {file}: {e}");
                        return 127;
                    }
                }
            }
        };
        let mut env = self.spec.env.clone();
        if !env.iter().any(|(k, _)| k == "PWD") {
            env.push(("PWD".into(), cwd.clone()));
        }
        let options = super::Options {
            env,
            cwd,
            name: inv.name.clone(),
            args: inv.args.clone(),
            set: inv.set.clone(),
        };
        match super::run(&text, self, &options, stdout, stderr) {
            Ok(status) => status,
            Err(e) => {
                let _ = writeln!(stderr, "sh: {e}");
                2
            }
        }
    }

    fn vfs(&mut self) -> &mut Vfs {
        self.vfs.as_mut().expect("the Vfs is home between commands")
    }

    /// Notes a write limit the shell's own writes hit.
    fn check_write_limit(&mut self) {
        let limits = self.spec.limits;
        if let Some(hit) = self.vfs().limit_hit() {
            self.fatal.get_or_insert(Outcome::Limit(match hit {
                LimitHit::Bytes => Limit::WriteBytes(limits.max_write),
                LimitHit::Files => Limit::Files(limits.max_files),
            }));
        }
    }

    /// Finds and loads a command's program; a failure is its status, after
    /// a message on `stderr`.
    fn load(
        &mut self,
        cmd: &Exec<'_>,
        vfs: &mut Vfs,
        stderr: &mut dyn Write,
    ) -> Result<(step::Loaded, StepSpec), i32> {
        let spec = self.command_spec(cmd).map_err(|e| {
            let _ = writeln!(stderr, "sh: {e}");
            126
        })?;
        match step::load(self.engine, self.store, vfs, &spec, &self.cancel) {
            Ok(loaded) => Ok((loaded, spec)),
            Err(e) => {
                let status = match e {
                    StepError::NotFound { .. } => 127,
                    StepError::Cancelled => {
                        self.fatal = Some(Outcome::Cancelled);
                        130
                    }
                    _ => 126,
                };
                let _ = match e {
                    StepError::NotFound { name, .. } if !name.contains('/') => {
                        let path = cmd
                            .env
                            .iter()
                            .rev()
                            .find(|(k, _)| k == "PATH")
                            .map_or(step::DEFAULT_PATH, |(_, v)| v.as_str());
                        writeln!(
                            stderr,
                            "sh: {name}: not found in PATH {path} (looked for {name} and {name}.wasm in each directory)"
                        )
                    }
                    e => writeln!(stderr, "sh: {e}"),
                };
                Err(status)
            }
        }
    }

    /// A program's outcome as a shell status; a limit or Ctrl-C also stops
    /// the script.
    fn status_of(&mut self, outcome: Outcome, program: &str, stderr: &mut dyn Write) -> i32 {
        match outcome {
            Outcome::Exit(code) => code,
            Outcome::Trap(trap) => {
                let _ = writeln!(stderr, "sh: {program} trapped: {trap}");
                134
            }
            Outcome::Limit(limit) => {
                self.fatal.get_or_insert(Outcome::Limit(limit));
                137
            }
            Outcome::Cancelled => {
                self.fatal = Some(Outcome::Cancelled);
                130
            }
        }
    }

    /// The spec of one command: the step's, with the command's argv, env
    /// and directory, the time left, and random bytes seeded apart.
    fn command_spec(&mut self, cmd: &Exec<'_>) -> Result<StepSpec, String> {
        let cwd = ImagePath::parse(cmd.cwd).map_err(|e| format!("{}: {e}", cmd.cwd))?;
        let mut limits = self.spec.limits;
        limits.timeout = limits.timeout.saturating_sub(self.started.elapsed());
        self.commands += 1;
        let reproducible = self.spec.reproducible.as_ref().map(|r| {
            let mut seed = r.seed.to_vec();
            seed.extend_from_slice(&self.commands.to_le_bytes());
            crate::wasi::Reproducible {
                epoch: r.epoch,
                seed: *crate::digest::Digest::of(&seed).as_bytes(),
            }
        });
        Ok(StepSpec {
            argv: cmd.argv.to_vec(),
            env: cmd.env.to_vec(),
            cwd,
            limits,
            preopens: self.spec.preopens.clone(),
            reproducible,
            network: self.spec.network.clone(),
            net_log: self.spec.net_log.clone(),
        })
    }
}

impl Host for StepHost<'_> {
    fn run(&mut self, cmd: &Exec<'_>, streams: Streams<'_>) -> i32 {
        let statuses = self.run_pipeline(
            std::slice::from_ref(cmd),
            PipelineStreams {
                stdin: streams.stdin,
                stdout: streams.stdout,
                stderr: vec![ErrTo::Writer(streams.stderr)],
            },
        );
        statuses[0]
    }

    fn run_pipeline(&mut self, cmds: &[Exec<'_>], streams: PipelineStreams<'_>) -> Vec<i32> {
        let n = cmds.len();
        if let Some(status) = self.stopped() {
            return vec![status; n];
        }
        let PipelineStreams {
            stdin,
            stdout,
            stderr,
        } = streams;
        // What reaches the shell: target 0 is the last program's output,
        // the others the programs' errors; `None`: into the program's own
        // output, the pipe to the next (`2>&1`).
        let mut targets: Vec<&mut dyn Write> = vec![stdout];
        let mut err_to: Vec<Option<usize>> = Vec::with_capacity(n);
        for (i, e) in stderr.into_iter().enumerate() {
            match e {
                ErrTo::Writer(w) => {
                    err_to.push(Some(targets.len()));
                    targets.push(w);
                }
                ErrTo::Stdout if i + 1 == n => err_to.push(Some(0)),
                ErrTo::Stdout => err_to.push(None),
            }
        }
        // Load every program first: one that cannot be found or loaded
        // has its status now (its message where its errors go), and its
        // neighbours see a closed pipe.
        let mut vfs = self.vfs.take().expect("the Vfs is home between commands");
        let mut stages = Vec::with_capacity(n);
        let mut early: Vec<Vec<u8>> = vec![Vec::new(); n];
        for (i, cmd) in cmds.iter().enumerate() {
            let err: &mut dyn Write = match err_to[i] {
                Some(t) => &mut *targets[t],
                None => &mut early[i],
            };
            stages.push(self.load(cmd, &mut vfs, err));
        }
        let load_failed: Vec<Option<i32>> =
            stages.iter().map(|s| s.as_ref().err().copied()).collect();
        // The first program reads the shell's input; each next one the
        // pipe from the one before; the last writes to the shell.
        let consumed = Arc::new(AtomicU64::new(0));
        let (first_stdin, mut input): (Box<dyn Read + Send>, _) = match stdin {
            Stdin::Inherited => (Box::new(Shared(Arc::clone(&self.stdin))), None),
            Stdin::Bytes(input) => (
                Box::new(Counted {
                    bytes: io::Cursor::new(input.peek()),
                    read: Arc::clone(&consumed),
                }),
                Some(input),
            ),
        };
        let mut stdins: Vec<Option<Box<dyn Read + Send>>> = vec![Some(first_stdin)];
        let mut pipes: Vec<Option<super::pipe::PipeWriter>> = Vec::new();
        for _ in 1..n {
            let (w, r) = super::pipe::pipe();
            pipes.push(Some(w));
            stdins.push(Some(Box::new(r)));
        }
        // Bounded: a program writing faster than the shell's descriptors
        // take its output waits for them.
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(16);
        let broken: Vec<Arc<AtomicBool>> = (0..targets.len()).map(|_| Arc::default()).collect();
        let flags = broken.clone();
        // Owns the sender: once it and every program's streams are gone,
        // the shell's loop below ends.
        let chunks = move |target: usize| -> Box<dyn Write + Send> {
            Box::new(Chunks {
                tx: tx.clone(),
                target,
                broken: Arc::clone(&flags[target]),
            })
        };
        let (engine, cancel) = (self.engine, &self.cancel);
        let outcomes: Vec<Option<(Outcome, String)>> = std::thread::scope(|scope| {
            let mut workers = Vec::with_capacity(n);
            for (i, stage) in stages.into_iter().enumerate() {
                let program_stdin = stdins[i].take().expect("one input a program");
                let pipe = pipes.get_mut(i).and_then(Option::take);
                let program_stderr: Box<dyn Write + Send> = match (err_to[i], &pipe) {
                    (Some(t), _) => chunks(t),
                    (None, Some(pipe)) => Box::new(pipe.clone()),
                    (None, None) => unreachable!("only a stage before the last has a pipe"),
                };
                let mut program_stdout: Box<dyn Write + Send> = match pipe {
                    Some(pipe) => Box::new(pipe),
                    None => chunks(0),
                };
                let Ok((loaded, spec)) = stage else {
                    // Closed now: the neighbours see the end of input and
                    // a broken pipe.
                    let _ = program_stdout.write_all(&early[i]);
                    drop((program_stdin, program_stdout, program_stderr));
                    workers.push(None);
                    continue;
                };
                let (vfs, cancel) = (vfs.share(), Arc::clone(cancel));
                let memory = Arc::clone(&self.memory);
                workers.push(Some(scope.spawn(move || {
                    let stdio = Stdio {
                        stdin: program_stdin,
                        stdout: program_stdout,
                        stderr: program_stderr,
                        terminal: false,
                    };
                    let finished = step::execute(engine, loaded, vfs, spec, stdio, cancel, memory);
                    (finished.outcome, finished.program)
                })));
            }
            drop(chunks);
            for (target, bytes) in rx {
                if targets[target].write_all(&bytes).is_err() {
                    broken[target].store(true, Ordering::SeqCst);
                }
            }
            workers
                .into_iter()
                .map(|w| w.map(|w| w.join().expect("a program's thread panicked")))
                .collect()
        });
        // The shell's input moves on by what the program read, no more:
        // `while read f; do prog; done <list` goes on with the next line
        // when prog reads nothing.
        if let Some(input) = input.as_mut() {
            let n = consumed.load(Ordering::SeqCst);
            let _ = io::copy(&mut input.take(n), &mut io::sink());
        }
        self.vfs = Some(vfs);
        let mut statuses = Vec::with_capacity(n);
        for (i, (outcome, failed)) in outcomes.into_iter().zip(load_failed).enumerate() {
            // A message about a program whose errors went into the pipe
            // has nowhere left to go.
            let mut lost = io::sink();
            let err: &mut dyn Write = match err_to[i] {
                Some(t) => &mut *targets[t],
                None => &mut lost,
            };
            statuses.push(match (failed, outcome) {
                (Some(status), _) => status,
                (None, Some((outcome, program))) => self.status_of(outcome, &program, err),
                (None, None) => unreachable!("a loaded program has an outcome"),
            });
        }
        statuses
    }

    fn read_file(&mut self, path: &str) -> io::Result<Vec<u8>> {
        let max = self.spec.limits.memory as u64;
        step_files::read(self.vfs(), path, max)
    }

    fn open_write(&mut self, path: &str, append: bool) -> io::Result<()> {
        let result = step_files::open_write(self.vfs(), path, append);
        self.check_write_limit();
        result
    }

    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let result = step_files::append(self.vfs(), path, data);
        self.check_write_limit();
        result
    }

    fn test(&mut self, path: &str, what: PathTest) -> bool {
        step_files::test(self.vfs(), path, what)
    }

    fn list_dir(&mut self, path: &str) -> io::Result<Vec<String>> {
        step_files::list(self.vfs(), path)
    }

    fn stopped(&mut self) -> Option<i32> {
        if self.fatal.is_none() {
            if self.cancel.load(Ordering::SeqCst) {
                self.fatal = Some(Outcome::Cancelled);
            } else if self.started.elapsed() >= self.spec.limits.timeout {
                self.fatal = Some(Outcome::Limit(Limit::Time(self.spec.limits.timeout)));
            }
        }
        self.fatal.as_ref().map(|outcome| match outcome {
            Outcome::Cancelled => 130,
            _ => 137,
        })
    }
}

/// The script's own standard input, read by one command at a time.
struct Shared(Arc<Mutex<Box<dyn Read + Send>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).read(buf)
    }
}

/// Bytes given to a program as its standard input, counting what it read.
struct Counted {
    bytes: io::Cursor<Vec<u8>>,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.bytes.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// A program's output on its way to the shell's thread.
struct Chunks {
    tx: mpsc::SyncSender<(usize, Vec<u8>)>,
    /// Which of the shell's descriptors it goes to.
    target: usize,
    broken: Arc<AtomicBool>,
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        // The shell thread reads until every sender is gone; a send fails
        // only if it stopped, and then the output has nowhere to go.
        let _ = self.tx.send((self.target, buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
