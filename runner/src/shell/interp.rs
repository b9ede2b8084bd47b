//! Running the tree: lists, `&&`/`||`, pipelines, compound commands,
//! redirections, simple commands (assignments, functions, builtins,
//! external programs through the [`Host`]), and `set -e`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

use super::ast::*;
use super::host::{Exec, Host, Stdin, Streams};
use super::io::{self, Fds, In, InReader, OutWriter, Sink, Tops};

/// Why running stopped before the end of a list.
#[derive(Debug)]
pub(super) enum Flow {
    /// `exit`, or a fatal error: the (sub)shell ends with this status.
    Exit(i32),
    /// `return` from a function.
    Return(i32),
    /// `break N`.
    Break(u32),
    /// `continue N`.
    Continue(u32),
}

pub(super) type R = Result<i32, Flow>;

/// A shell variable.
#[derive(Clone, Debug)]
pub(super) struct Var {
    pub value: String,
    pub exported: bool,
}

/// `set` options.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Opts {
    pub errexit: bool,
    pub nounset: bool,
    pub xtrace: bool,
    pub pipefail: bool,
    pub noglob: bool,
}

/// Everything a subshell copies and throws away.
#[derive(Clone)]
pub(super) struct State {
    pub vars: HashMap<String, Var>,
    pub positional: Vec<String>,
    pub zero: String,
    pub cwd: String,
    pub opts: Opts,
    pub funcs: HashMap<String, Rc<Command>>,
    pub status: i32,
    /// Above 0 inside a condition, where `set -e` does not apply.
    pub cond: u32,
    /// Function calls in progress (for `return`, `local`).
    pub depth: u32,
    /// Saved values of `local` variables, one frame per call.
    pub locals: Vec<Vec<(String, Option<Var>)>>,
    /// Loops in progress (for `break`, `continue`).
    pub loops: u32,
    /// The status of the last command substitution in the command being
    /// expanded.
    pub sub_status: Option<i32>,
}

/// The interpreter.
pub(super) struct Shell<'h, 'a> {
    pub host: &'h mut dyn Host,
    pub tops: RefCell<Tops<'a>>,
    pub st: State,
    pub fds: Fds,
}

impl<'h, 'a> Shell<'h, 'a> {
    pub(super) fn new(host: &'h mut dyn Host, tops: Tops<'a>, st: State) -> Self {
        Shell {
            host,
            tops: RefCell::new(tops),
            st,
            fds: Fds {
                stdin: None,
                stdout: io::sink(Sink::Stdout),
                stderr: io::sink(Sink::Stderr),
            },
        }
    }

    /// Writes to the current standard output.
    pub(super) fn out(&self, bytes: &[u8]) {
        let mut w = OutWriter {
            out: self.fds.stdout.clone(),
            tops: &self.tops,
        };
        let _ = w.write_all(bytes);
    }

    /// Writes a message line to the current standard error.
    pub(super) fn err(&self, msg: &str) {
        let mut w = OutWriter {
            out: self.fds.stderr.clone(),
            tops: &self.tops,
        };
        let _ = writeln!(w, "sh: {msg}");
    }

    /// An error that ends the (sub)shell with status 2, after a message.
    pub(super) fn fatal(&self, pos: Pos, msg: &str) -> Flow {
        self.err(&format!("{pos}: {msg}"));
        Flow::Exit(2)
    }

    pub(super) fn run_list(&mut self, list: &List) -> R {
        let mut status = self.st.status;
        for ao in &list.0 {
            status = self.run_and_or(ao)?;
        }
        Ok(status)
    }

    /// Runs `list` as a condition: `set -e` does not apply inside.
    pub(super) fn run_cond(&mut self, list: &List) -> R {
        self.st.cond += 1;
        let r = self.run_list(list);
        self.st.cond -= 1;
        r
    }

    fn run_and_or(&mut self, ao: &AndOr) -> R {
        let last = ao.rest.len();
        let mut status = if last == 0 {
            self.run_pipeline(&ao.first)?
        } else {
            self.st.cond += 1;
            let r = self.run_pipeline(&ao.first);
            self.st.cond -= 1;
            r?
        };
        let mut ran_last = last == 0;
        let mut ran_bang = ao.first.bang;
        for (i, (conn, p)) in ao.rest.iter().enumerate() {
            let go = match conn {
                Connector::And => status == 0,
                Connector::Or => status != 0,
            };
            if !go {
                continue;
            }
            let is_last = i + 1 == last;
            if !is_last {
                self.st.cond += 1;
            }
            let r = self.run_pipeline(p);
            if !is_last {
                self.st.cond -= 1;
            }
            status = r?;
            ran_last = is_last;
            ran_bang = p.bang;
        }
        self.st.status = status;
        if status != 0 && ran_last && !ran_bang && self.st.opts.errexit && self.st.cond == 0 {
            return Err(Flow::Exit(status));
        }
        Ok(status)
    }

    fn run_pipeline(&mut self, p: &Pipeline) -> R {
        // A script the host stopped (Ctrl-C, its time, a limit of the
        // step) ends here, loops of builtins included.
        if let Some(status) = self.host.stopped() {
            return Err(Flow::Exit(status));
        }
        if p.bang {
            self.st.cond += 1;
        }
        let r = self.run_stages(&p.commands);
        if p.bang {
            self.st.cond -= 1;
        }
        let status = r?;
        let status = if p.bang {
            i32::from(status == 0)
        } else {
            status
        };
        self.st.status = status;
        Ok(status)
    }

    /// The stages of a pipeline. When every stage is a program, the host
    /// runs them together (`pipeline.rs`); otherwise one after another,
    /// each one's output buffered as the next one's input.
    fn run_stages(&mut self, commands: &[Command]) -> R {
        if commands.len() == 1 {
            return self.run_command(&commands[0]);
        }
        if let Some(r) = self.program_stages(commands) {
            return r;
        }
        let saved = self.fds.clone();
        let mut statuses = Vec::new();
        let mut input: Option<In> = saved.stdin.clone();
        for (i, c) in commands.iter().enumerate() {
            let last = i + 1 == commands.len();
            let out = if last {
                saved.stdout.clone()
            } else {
                io::sink(Sink::Buf(Vec::new()))
            };
            self.fds.stdin = input.clone();
            self.fds.stdout = out.clone();
            let status = self.subshell(|sh| sh.run_command(c));
            statuses.push(status);
            if !last {
                let bytes = match std::mem::replace(&mut *out.borrow_mut(), Sink::Null) {
                    Sink::Buf(b) => b,
                    _ => Vec::new(),
                };
                input = Some(io::input(bytes));
            }
        }
        self.fds = saved;
        Ok(self.pipeline_status(&statuses))
    }

    /// A pipeline's status: its last stage's, or with `pipefail` the last
    /// non-zero one.
    pub(super) fn pipeline_status(&self, statuses: &[i32]) -> i32 {
        if self.st.opts.pipefail {
            return statuses
                .iter()
                .rev()
                .copied()
                .find(|s| *s != 0)
                .unwrap_or(0);
        }
        *statuses.last().unwrap_or(&0)
    }

    /// Runs `f` with a copy of the shell's state, restored afterwards; an
    /// `exit` inside ends only the copy.
    pub(super) fn subshell(&mut self, f: impl FnOnce(&mut Self) -> R) -> i32 {
        let saved = self.st.clone();
        self.st.depth = 0;
        self.st.loops = 0;
        self.st.locals.clear();
        let r = f(self);
        let status = match r {
            Ok(s) | Err(Flow::Exit(s)) | Err(Flow::Return(s)) => s,
            Err(Flow::Break(_) | Flow::Continue(_)) => self.st.status,
        };
        self.st = saved;
        status
    }

    pub(super) fn run_command(&mut self, c: &Command) -> R {
        match c {
            Command::Simple(s) => self.run_simple(s),
            Command::Function(name, body, _) => {
                self.st.funcs.insert(name.clone(), Rc::clone(body));
                self.st.status = 0;
                Ok(0)
            }
            Command::Compound(cc, redirs, pos) => {
                let saved = match self.redirect(redirs) {
                    Ok(s) => s,
                    Err(msg) => {
                        self.err(&format!("{pos}: {msg}"));
                        self.st.status = 1;
                        return Ok(1);
                    }
                };
                let r = self.run_compound(cc);
                self.restore(saved);
                let s = r?;
                self.st.status = s;
                Ok(s)
            }
        }
    }

    fn run_compound(&mut self, c: &Compound) -> R {
        match c {
            Compound::Brace(l) => self.run_list(l),
            Compound::Subshell(l) => Ok(self.subshell(|sh| sh.run_list(l))),
            Compound::If(arms, otherwise) => {
                for (cond, body) in arms {
                    if self.run_cond(cond)? == 0 {
                        return self.run_list(body);
                    }
                }
                match otherwise {
                    Some(l) => self.run_list(l),
                    None => Ok(0),
                }
            }
            Compound::Loop { until, cond, body } => {
                let mut status = 0;
                self.st.loops += 1;
                let r = loop {
                    match self.run_cond(cond) {
                        Ok(s) if (s == 0) == *until => break Ok(status),
                        Ok(_) => {}
                        Err(e) => break Err(e),
                    }
                    match self.loop_body(body) {
                        Ok(Some(s)) => status = s,
                        Ok(None) => break Ok(self.st.status),
                        Err(e) => break Err(e),
                    }
                };
                self.st.loops -= 1;
                r
            }
            Compound::For(var, words, body) => {
                let items = match words {
                    Some(ws) => self.expand_words(ws)?,
                    None => self.st.positional.clone(),
                };
                let mut status = 0;
                self.st.loops += 1;
                let mut r = Ok(0);
                for item in items {
                    self.set_var(var, item);
                    match self.loop_body(body) {
                        Ok(Some(s)) => status = s,
                        Ok(None) => {
                            status = self.st.status;
                            break;
                        }
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                self.st.loops -= 1;
                r.map(|_| status)
            }
            Compound::Case(word, items) => {
                let subject = self.expand_string(word)?;
                let subject: Vec<char> = subject.chars().collect();
                let mut matched = false;
                let mut status = 0;
                for item in items {
                    if !matched {
                        for p in &item.patterns {
                            let pat = self.expand_pattern(p)?;
                            if super::pattern::matches(&pat, &subject) {
                                matched = true;
                                break;
                            }
                        }
                    }
                    if matched {
                        status = self.run_list(&item.body)?;
                        if !item.fallthrough {
                            break;
                        }
                    }
                }
                Ok(status)
            }
            Compound::Arith(text) => {
                let v = self.arith(text, Pos::default())?;
                Ok(i32::from(v == 0))
            }
        }
    }

    /// A loop body: `Some(status)` to go on, `None` after `break`.
    fn loop_body(&mut self, body: &List) -> Result<Option<i32>, Flow> {
        match self.run_list(body) {
            Ok(s) => Ok(Some(s)),
            Err(Flow::Break(n)) if n > 1 => Err(Flow::Break(n - 1)),
            Err(Flow::Break(_)) => Ok(None),
            Err(Flow::Continue(n)) if n > 1 => Err(Flow::Continue(n - 1)),
            Err(Flow::Continue(_)) => Ok(Some(self.st.status)),
            Err(e) => Err(e),
        }
    }

    fn run_simple(&mut self, s: &Simple) -> R {
        self.st.sub_status = None;
        let mut fields = self.expand_words(&s.words)?;
        let mut assigns = Vec::new();
        for (name, w) in &s.assigns {
            assigns.push((name.clone(), self.expand_string(w)?));
        }
        // The status of the last command substitution, if any ran.
        let sub_status = self.st.sub_status.unwrap_or(0);
        self.trace_command(&assigns, &fields);
        let saved = match self.redirect(&s.redirs) {
            Ok(saved) => saved,
            Err(msg) => {
                self.err(&format!("{}: {msg}", s.pos));
                self.st.status = 1;
                return Ok(1);
            }
        };
        let r = if fields.is_empty() {
            for (n, v) in assigns {
                self.set_var(&n, v);
            }
            Ok(sub_status)
        } else {
            let name = fields.remove(0);
            self.dispatch(&name, fields, assigns, s.pos)
        };
        self.restore(saved);
        let status = r?;
        self.st.status = status;
        Ok(status)
    }

    /// `set -x`: the command as it will run, through [`Host::trace`].
    pub(super) fn trace_command(&mut self, assigns: &[(String, String)], fields: &[String]) {
        if !self.st.opts.xtrace {
            return;
        }
        let mut line = String::from("+");
        for (n, v) in assigns {
            line.push(' ');
            line.push_str(&format!("{n}={}", super::builtins::quote(v)));
        }
        for f in fields {
            line.push(' ');
            line.push_str(&super::builtins::quote(f));
        }
        if line.len() > 1 {
            let mut w = OutWriter {
                out: self.fds.stderr.clone(),
                tops: &self.tops,
            };
            self.host.trace(&line, &mut w);
        }
    }

    fn dispatch(
        &mut self,
        name: &str,
        args: Vec<String>,
        assigns: Vec<(String, String)>,
        pos: Pos,
    ) -> R {
        if super::builtins::is_special(name) {
            for (n, v) in assigns {
                self.set_var(&n, v);
            }
            return self
                .builtin(name, &args, pos)
                .expect("special builtins exist");
        }
        // Assignments before a function or a regular builtin last as long
        // as the command.
        let mut old = Vec::new();
        let func = self.st.funcs.get(name).cloned();
        let is_builtin = super::builtins::is_regular(name);
        if func.is_some() || is_builtin {
            for (n, v) in &assigns {
                old.push((n.clone(), self.st.vars.get(n).cloned()));
                self.set_var(n, v.clone());
            }
        }
        let r = if let Some(body) = func {
            self.call_function(name, &body, args)
        } else if is_builtin {
            self.builtin(name, &args, pos)
                .expect("regular builtins exist")
        } else {
            Ok(self.external(name, args, &assigns))
        };
        for (n, v) in old {
            match v {
                Some(v) => self.st.vars.insert(n, v),
                None => self.st.vars.remove(&n),
            };
        }
        r
    }

    fn call_function(&mut self, name: &str, body: &Command, args: Vec<String>) -> R {
        if self.st.depth > 200 {
            self.err(&format!("{name}: functions nested too deeply"));
            return Err(Flow::Exit(2));
        }
        let saved_args = std::mem::replace(&mut self.st.positional, args);
        let saved_loops = std::mem::take(&mut self.st.loops);
        self.st.depth += 1;
        self.st.locals.push(Vec::new());
        let r = self.run_command(body);
        for (n, v) in self.st.locals.pop().unwrap_or_default().into_iter().rev() {
            match v {
                Some(v) => self.st.vars.insert(n, v),
                None => self.st.vars.remove(&n),
            };
        }
        self.st.depth -= 1;
        self.st.loops = saved_loops;
        self.st.positional = saved_args;
        match r {
            Err(Flow::Return(s)) => Ok(s),
            r => r,
        }
    }

    fn external(&mut self, name: &str, args: Vec<String>, assigns: &[(String, String)]) -> i32 {
        let mut argv = vec![name.to_string()];
        argv.extend(args);
        let env = self.command_env(assigns);
        let mut reader = self.fds.stdin.clone().map(InReader);
        let mut stdout = OutWriter {
            out: self.fds.stdout.clone(),
            tops: &self.tops,
        };
        let mut stderr = OutWriter {
            out: self.fds.stderr.clone(),
            tops: &self.tops,
        };
        let cwd = self.st.cwd.clone();
        self.host.run(
            &Exec {
                argv: &argv,
                env: &env,
                cwd: &cwd,
            },
            Streams {
                stdin: match &mut reader {
                    Some(r) => Stdin::Bytes(r),
                    None => Stdin::Inherited,
                },
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        )
    }

    /// The environment of an external command: the exported variables and
    /// the command's own assignments.
    pub(super) fn command_env(&self, assigns: &[(String, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .st
            .vars
            .iter()
            .filter(|(k, v)| v.exported && !assigns.iter().any(|(n, _)| n == *k))
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        env.extend(assigns.iter().cloned());
        env.sort();
        env
    }

    /// Sets a variable (keeping whether it is exported).
    pub(super) fn set_var(&mut self, name: &str, value: String) {
        match self.st.vars.get_mut(name) {
            Some(v) => v.value = value,
            None => {
                self.st.vars.insert(
                    name.to_string(),
                    Var {
                        value,
                        exported: false,
                    },
                );
            }
        }
    }

    /// Runs `list` with standard output captured (`$(...)`), in a subshell.
    pub(super) fn capture(&mut self, list: &List) -> (String, i32) {
        let saved = self.fds.stdout.clone();
        let buf = io::sink(Sink::Buf(Vec::new()));
        self.fds.stdout = buf.clone();
        let status = self.subshell(|sh| sh.run_list(list));
        self.fds.stdout = saved;
        let bytes = match std::mem::replace(&mut *buf.borrow_mut(), Sink::Null) {
            Sink::Buf(b) => b,
            _ => Vec::new(),
        };
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        while s.ends_with('\n') {
            s.pop();
        }
        (s, status)
    }
}
