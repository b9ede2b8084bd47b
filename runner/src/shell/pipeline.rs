//! A pipeline whose every stage is a program (`curl ... | tar -x`, `cat f
//! | grep x | sort > out`): handed to the host whole, which runs the
//! programs at the same time joined by pipes with backpressure
//! ([`Host::run_pipeline`]).
//!
//! A stage qualifies when it is a simple command whose name is written
//! literally and is neither a builtin nor a function, and redirects only
//! output: the last stage any (`> out`, `2>&1`), the others only their
//! errors (`make 2>&1 | tail`, `a 2>/dev/null | b`). Anything else (`cmd
//! | while read l; do ...; done`, `a > f | b`) runs stage by stage in
//! `interp.rs`. The test is on the text, before any expansion, so no
//! command substitution runs twice.

use super::ast::{Command, Part, RedirKind, Simple, Word};
use std::rc::Rc;

use super::host::{ErrTo, Exec, PipelineStreams, Stdin};
use super::interp::{R, Shell};
use super::io::{self, InReader, Out, OutWriter, Sink};

impl Shell<'_, '_> {
    /// Runs `commands` through [`Host::run_pipeline`](super::Host::run_pipeline)
    /// when every stage is a program; `None` when one is not.
    pub(super) fn program_stages(&mut self, commands: &[Command]) -> Option<R> {
        let last = commands.len() - 1;
        let mut stages = Vec::with_capacity(commands.len());
        for (i, c) in commands.iter().enumerate() {
            let Command::Simple(s) = c else {
                return None;
            };
            if !self.is_program(s, i == last) {
                return None;
            }
            stages.push(s);
        }
        // Each stage is a subshell: what its expansion assigns is its own.
        let mut prepared = Vec::with_capacity(stages.len());
        for s in &stages {
            let saved = self.st.clone();
            let expanded = self.expand_stage(s);
            self.st = saved;
            match expanded {
                Ok(p) => prepared.push(p),
                Err(flow) => return Some(Err(flow)),
            }
        }
        // Each stage's redirections, applied in turn from the pipeline's
        // descriptors: before the last stage only its errors may go
        // elsewhere (`2>&1` into the pipe, `2>/dev/null`, `2>file`).
        let base = self.fds.clone();
        let pipe = io::sink(Sink::Null);
        let mut applied = Vec::with_capacity(stages.len());
        let mut errs: Vec<Option<Out>> = Vec::with_capacity(stages.len());
        for (i, s) in stages.iter().enumerate() {
            if i != last {
                self.fds.stdout = pipe.clone();
            }
            match self.redirect(&s.redirs) {
                Ok(saved) => applied.push(saved),
                Err(msg) => {
                    self.fds = base.clone();
                    for saved in applied.into_iter().rev() {
                        self.restore(saved);
                    }
                    self.fds = base;
                    self.err(&format!("{}: {msg}", s.pos));
                    self.st.status = 1;
                    return Some(Ok(1));
                }
            }
            let into_pipe = i != last && Rc::ptr_eq(&self.fds.stderr, &pipe);
            errs.push((!into_pipe).then(|| self.fds.stderr.clone()));
            if i != last {
                self.fds = base.clone();
            }
        }
        let cwd = self.st.cwd.clone();
        let execs: Vec<Exec<'_>> = prepared
            .iter()
            .map(|(argv, env)| Exec {
                argv,
                env,
                cwd: &cwd,
            })
            .collect();
        let mut stdin = base.stdin.clone().map(InReader);
        let mut stdout = OutWriter {
            out: self.fds.stdout.clone(),
            tops: &self.tops,
        };
        let mut stderrs: Vec<Option<OutWriter<'_, '_>>> = errs
            .into_iter()
            .map(|out| {
                out.map(|out| OutWriter {
                    out,
                    tops: &self.tops,
                })
            })
            .collect();
        let statuses = self.host.run_pipeline(
            &execs,
            PipelineStreams {
                stdin: match &mut stdin {
                    Some(r) => Stdin::Bytes(r),
                    None => Stdin::Inherited,
                },
                stdout: &mut stdout,
                stderr: stderrs
                    .iter_mut()
                    .map(|w| match w {
                        Some(w) => ErrTo::Writer(w),
                        None => ErrTo::Stdout,
                    })
                    .collect(),
            },
        );
        drop((stdout, stderrs, stdin, execs));
        for saved in applied.into_iter().rev() {
            self.restore(saved);
        }
        self.fds = base;
        Some(Ok(self.pipeline_status(&statuses)))
    }

    /// Whether `s` is a program run as it is written (see the module docs).
    fn is_program(&self, s: &Simple, last: bool) -> bool {
        let Some(name) = s.words.first().and_then(literal) else {
            return false;
        };
        if super::builtins::is_special(&name)
            || super::builtins::is_regular(&name)
            || self.st.funcs.contains_key(&name)
        {
            return false;
        }
        // Only the last stage may redirect, and only its output.
        s.redirs.is_empty()
            || last
                && s.redirs.iter().all(|r| {
                    matches!(
                        r.kind,
                        RedirKind::Write(_) | RedirKind::Append(_) | RedirKind::DupOut(_)
                    ) && r.fd != Some(0)
                })
    }

    /// The argv and environment of a stage, traced under `set -x`.
    fn expand_stage(&mut self, s: &Simple) -> Result<Stage, super::interp::Flow> {
        let fields = self.expand_words(&s.words)?;
        let mut assigns = Vec::new();
        for (name, w) in &s.assigns {
            assigns.push((name.clone(), self.expand_string(w)?));
        }
        self.trace_command(&assigns, &fields);
        let env = self.command_env(&assigns);
        Ok((fields, env))
    }
}

/// A stage ready to run: its argv and environment.
type Stage = (Vec<String>, Vec<(String, String)>);

/// The text of a word with nothing to expand (no `$`, no glob, no `~`).
fn literal(w: &Word) -> Option<String> {
    let mut out = String::new();
    for p in &w.parts {
        match p {
            Part::Text(t) if !t.contains(['*', '?', '[']) => out.push_str(t),
            Part::Quoted(t) => out.push_str(t),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}
