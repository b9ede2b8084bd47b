//! The Kilnfile frontend: Dockerfile syntax in, typed stages out. Pure: no I/O.
//!
//! [`parse`] reads the text with the `parse-dockerfile` crate (parser
//! directives, comments, line continuations, JSON and plain forms,
//! here-documents) and turns its syntax tree into [`Kilnfile`]: stages of
//! typed instructions whose values are still unexpanded [`Word`]s. Anything
//! kiln does not understand is an error that names the file, line and column
//! and what was expected: an unknown instruction, flag or `--mount` key is
//! never ignored.
//!
//! Expansion of `$VAR` happens later, in the builder, through
//! [`Kilnfile::expand`] ([`expand`] has the rules). Read `instruction.rs` for
//! the types, `mount.rs` for `--mount`, then `crate::build`.

mod diagnostic;
pub mod expand;
mod instruction;
mod limits;
pub mod mount;
pub mod words;

pub use diagnostic::{Diagnostic, Source, Span};
pub use instruction::*;
pub use limits::{MAX_CONFIG_ENTRIES, MAX_INSTRUCTIONS};
pub use mount::{Mount, MountType, Sharing};

use parse_dockerfile as pd;

/// The instructions kiln supports, for error messages.
pub const SUPPORTED: &str = "FROM, ARG, ENV, WORKDIR, LABEL, USER, COPY, RUN, CMD, ENTRYPOINT, SHELL, EXPOSE, VOLUME, STOPSIGNAL, MAINTAINER";

/// Largest Kilnfile kiln reads. A build definition is text written by people;
/// anything this big is a mistake (a binary passed with `-f`), not a build.
pub const MAX_KILNFILE_BYTES: usize = 4 << 20;

/// Parses a Kilnfile. `name` is how the file is shown in errors.
///
/// CRLF line endings read as LF, here-documents included: a Kilnfile
/// checked out on Windows (git's `autocrlf`) builds the same image as on
/// Linux. A lone CR stays what it is.
pub fn parse(name: &str, text: &str) -> Result<Kilnfile, Diagnostic> {
    let lf;
    let text = if text.contains("\r\n") {
        lf = text.replace("\r\n", "\n");
        lf.as_str()
    } else {
        text
    };
    let source = Source::new(name, text);
    if text.len() > MAX_KILNFILE_BYTES {
        return Err(source.error_at(
            1,
            1,
            format!(
                "the Kilnfile is {} bytes; expected at most {MAX_KILNFILE_BYTES}",
                text.len()
            ),
        ));
    }
    let df = pd::parse(text).map_err(|e| syntax_error(&source, &e))?;
    let escape = df
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let syntax = df
        .parser_directives
        .syntax
        .as_ref()
        .map(|d| d.value.value.to_string());
    let cx = Cx {
        source: &source,
        escape,
    };

    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut budget = limits::Budget::default();
    for inst in &df.instructions {
        match inst {
            pd::Instruction::From(from) => {
                budget.instruction(&source, &from.from.span)?;
                let stage = cx.from(from, stages.len())?;
                if let Some(name) = &stage.name
                    && stages.iter().any(|s| s.name.as_deref() == Some(name))
                {
                    return Err(source.error(
                        from.as_
                            .as_ref()
                            .map_or(from.from.span.clone(), |(_, n)| n.span.clone()),
                        format!("duplicate stage name {name:?}: each AS name must be unique"),
                    ));
                }
                stages.push(stage);
            }
            other => {
                let converted = cx.instruction(other)?;
                budget.instruction(&source, &converted.span)?;
                budget.entries(&source, &converted)?;
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(converted),
                    None => match converted.kind {
                        InstructionKind::Arg(args) => global_args.extend(args),
                        kind => {
                            return Err(source.error(
                                converted.span,
                                format!(
                                    "{} before the first FROM: only ARG may come before FROM",
                                    kind.keyword()
                                ),
                            ));
                        }
                    },
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(source.error_at(1, 1, "no FROM instruction: expected at least one stage"));
    }
    Ok(Kilnfile {
        source,
        escape,
        syntax,
        global_args,
        stages,
    })
}

/// parse-dockerfile's errors carry a correct line but not always a correct
/// column, so the column is recomputed from the line where we can.
fn syntax_error(source: &Source, e: &pd::Error) -> Diagnostic {
    let message = format!("{e:#}");
    let line = e.line().max(1);
    let text = source.line_text(line);
    let first_word_col = text.len() - text.trim_start().len() + 1;
    if let Some(word) = message
        .strip_prefix("unknown instruction '")
        .and_then(|m| m.strip_suffix('\''))
    {
        let hint = match word.to_ascii_uppercase().as_str() {
            "ADD" | "HEALTHCHECK" | "ONBUILD" => String::new(),
            _ => format!("; expected one of {SUPPORTED}"),
        };
        let mut d = source.error_at(
            line,
            first_word_col,
            format!("unknown instruction {word:?}{hint}"),
        );
        d.width = word.chars().count().max(1);
        return d;
    }
    if message == "expected FROM" {
        return source.error_at(
            line,
            first_word_col,
            "expected FROM: only ARG may come before FROM",
        );
    }
    let column = if message.contains("instruction requires") || message == "invalid JSON" {
        first_word_col
    } else {
        e.column().clamp(1, text.chars().count() + 1)
    };
    source.error_at(line, column, message)
}

struct Cx<'s> {
    source: &'s Source,
    escape: char,
}

fn word(s: &pd::UnescapedString<'_>) -> Word {
    Word {
        raw: s.value.to_string(),
        span: s.span.clone(),
    }
}

impl Cx<'_> {
    fn err(&self, span: Span, msg: impl Into<String>) -> Diagnostic {
        self.source.error(span, msg)
    }

    /// Checks flags against the allowed names; returns them by name.
    fn flags(
        &self,
        keyword: &str,
        flags: &[pd::Flag<'_>],
        allowed: &[&'static str],
        repeatable: &[&str],
    ) -> Result<Vec<(&'static str, Word)>, Diagnostic> {
        let mut out: Vec<(&'static str, Word)> = Vec::new();
        for f in flags {
            let name = f.name.value.as_ref();
            if !allowed.contains(&name) {
                let why = match (keyword, name) {
                    ("COPY", "link") => " (kiln layers are already independent of their parent's content; drop the flag)".to_string(),
                    ("COPY", "parents" | "exclude") => " (not supported yet)".to_string(),
                    ("RUN", "security") => " (kiln steps are always sandboxed)".to_string(),
                    _ => String::new(),
                };
                let expected = if allowed.is_empty() {
                    "it takes no flags".to_string()
                } else {
                    format!(
                        "expected {}",
                        allowed
                            .iter()
                            .map(|a| format!("--{a}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(self.err(
                    f.flag_span(),
                    format!("unknown flag --{name} for {keyword}{why}; {expected}"),
                ));
            }
            let Some(value) = &f.value else {
                return Err(self.err(f.span(), format!("--{name} needs a value: --{name}=VALUE")));
            };
            if !repeatable.contains(&name) && out.iter().any(|(n, _)| *n == name) {
                return Err(self.err(f.span(), format!("--{name} is given twice")));
            }
            out.push((
                allowed[allowed.iter().position(|a| *a == name).expect("checked")],
                word(value),
            ));
        }
        Ok(out)
    }

    fn from(&self, from: &pd::FromInstruction<'_>, index: usize) -> Result<Stage, Diagnostic> {
        let flags = self.flags("FROM", &from.options, &["platform"], &[])?;
        let name = match &from.as_ {
            Some((_, n)) => {
                let lower = n.value.to_ascii_lowercase();
                let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                    && lower
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    return Err(self.err(
                        n.span.clone(),
                        format!(
                            "invalid stage name {:?}: expected a letter followed by letters, digits, '-', '_' or '.'",
                            n.value
                        ),
                    ));
                }
                Some(lower)
            }
            None => None,
        };
        let end = from
            .as_
            .as_ref()
            .map_or(from.image.span.end, |(_, n)| n.span.end);
        Ok(Stage {
            index,
            name,
            from: From {
                span: from.from.span.start..end,
                image: word(&from.image),
                platform: flags.into_iter().next().map(|(_, w)| w),
            },
            instructions: Vec::new(),
        })
    }

    fn instruction(&self, inst: &pd::Instruction<'_>) -> Result<Instruction, Diagnostic> {
        use pd::Instruction as I;
        let (start, kind, end) = match inst {
            I::Arg(a) => {
                let decls = self.arg(&a.arguments)?;
                (
                    a.arg.span.start,
                    InstructionKind::Arg(decls),
                    a.arguments.span.end,
                )
            }
            I::Env(e) => {
                let pairs = self.pairs(&e.arguments, true)?;
                let mut env = Vec::new();
                for (k, v) in pairs {
                    if k.raw.contains(['"', '\'', '$']) || k.raw.is_empty() {
                        return Err(self.err(
                            k.span,
                            format!("invalid ENV name {:?}: expected a plain name", k.raw),
                        ));
                    }
                    env.push((k.raw, v));
                }
                (
                    e.env.span.start,
                    InstructionKind::Env(env),
                    e.arguments.span.end,
                )
            }
            I::Label(l) => {
                let pairs = self.pairs(&l.arguments, true)?;
                (
                    l.label.span.start,
                    InstructionKind::Label(pairs),
                    l.arguments.span.end,
                )
            }
            I::Workdir(w) => (
                w.workdir.span.start,
                InstructionKind::Workdir(word(&w.arguments)),
                w.arguments.span.end,
            ),
            I::User(u) => (
                u.user.span.start,
                InstructionKind::User(word(&u.arguments)),
                u.arguments.span.end,
            ),
            I::Stopsignal(s) => (
                s.stopsignal.span.start,
                InstructionKind::StopSignal(word(&s.arguments)),
                s.arguments.span.end,
            ),
            I::Maintainer(m) => (
                m.maintainer.span.start,
                InstructionKind::Maintainer(word(&m.name)),
                m.name.span.end,
            ),
            I::Expose(e) => {
                let ports: Vec<Word> = e.arguments.iter().map(word).collect();
                let end = ports.last().map_or(e.expose.span.end, |w| w.span.end);
                (e.expose.span.start, InstructionKind::Expose(ports), end)
            }
            I::Volume(v) => {
                let (paths, end): (Vec<Word>, usize) = match &v.arguments {
                    pd::JsonOrStringArray::Json(arr) => {
                        (arr.value.iter().map(word).collect(), arr.span.end)
                    }
                    pd::JsonOrStringArray::String(list) => {
                        let paths: Vec<Word> = list.iter().map(word).collect();
                        let end = paths.last().map_or(v.volume.span.end, |w| w.span.end);
                        (paths, end)
                    }
                };
                (v.volume.span.start, InstructionKind::Volume(paths), end)
            }
            I::Cmd(c) => {
                let (cl, end) = self.command(&c.arguments);
                (c.cmd.span.start, InstructionKind::Cmd(cl), end)
            }
            I::Entrypoint(e) => {
                let (cl, end) = self.command(&e.arguments);
                (
                    e.entrypoint.span.start,
                    InstructionKind::Entrypoint(cl),
                    end,
                )
            }
            I::Copy(c) => {
                let copy = self.copy(c)?;
                let end = c
                    .src
                    .iter()
                    .map(|s| match s {
                        pd::Source::Path(p) => p.span.end,
                        pd::Source::HereDoc(h) => h.span.end,
                        _ => 0,
                    })
                    .chain([c.dest.span.end])
                    .max()
                    .unwrap_or(c.dest.span.end);
                (c.copy.span.start, InstructionKind::Copy(copy), end)
            }
            I::Run(r) => {
                let run = self.run(r)?;
                let (_, mut end) = self.command(&r.arguments);
                if let Some(h) = r.here_docs.last() {
                    end = end.max(h.span.end);
                }
                (r.run.span.start, InstructionKind::Run(run), end)
            }
            I::Add(a) => {
                return Err(self.err(
                    a.add.span.clone(),
                    "ADD is not supported: kiln does not download URLs or unpack archives implicitly; use COPY",
                ));
            }
            I::Healthcheck(h) => {
                return Err(self.err(
                    h.healthcheck.span.clone(),
                    "HEALTHCHECK is not supported: kiln images run as wasm modules, which have no health checks",
                ));
            }
            I::Shell(s) => {
                let words: Vec<Word> = s.arguments.iter().map(word).collect();
                let Some(end) = words.last().map(|w| w.span.end) else {
                    return Err(self.err(
                        s.shell.span.clone(),
                        "SHELL needs the shell and its options as a JSON array, like [\"/bin/sh\", \"-c\"]",
                    ));
                };
                (s.shell.span.start, InstructionKind::Shell(words), end)
            }
            I::Onbuild(o) => {
                return Err(self.err(
                    o.onbuild.span.clone(),
                    "ONBUILD is not supported: kiln builds only what the Kilnfile says",
                ));
            }
            I::From(_) => unreachable!("FROM is handled by the caller"),
            _ => {
                return Err(self.source.error_at(
                    1,
                    1,
                    format!("unknown instruction; expected one of {SUPPORTED}"),
                ));
            }
        };
        Ok(Instruction {
            span: start..end.max(start),
            kind,
        })
    }

    fn arg(&self, args: &pd::UnescapedString<'_>) -> Result<Vec<ArgDecl>, Diagnostic> {
        let base = args.span.start;
        let pairs =
            words::key_values(&args.value, self.escape, false, true).map_err(|(r, m)| {
                self.err(base + r.start..base + r.end, format!("invalid ARG: {m}"))
            })?;
        pairs
            .into_iter()
            .map(|kv| {
                let span = base + kv.key.range.start
                    ..base + kv.value.as_ref().map_or(kv.key.range.end, |v| v.range.end);
                let name = kv.key.text;
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(self.err(
                        span,
                        format!("invalid ARG name {name:?}: expected letters, digits and _"),
                    ));
                }
                Ok(ArgDecl {
                    name: name.to_string(),
                    default: kv.value.map(|v| Word {
                        raw: v.text.to_string(),
                        span: base + v.range.start..base + v.range.end,
                    }),
                    span,
                })
            })
            .collect()
    }

    fn pairs(
        &self,
        args: &pd::UnescapedString<'_>,
        legacy: bool,
    ) -> Result<Vec<(Word, Word)>, Diagnostic> {
        let base = args.span.start;
        // Offsets map 1:1 to the source only when no line continuation was
        // removed; otherwise errors point at the start of the arguments.
        let exact = self.source.slice(&args.span) == args.value;
        let at = |r: std::ops::Range<usize>| {
            if exact {
                base + r.start..base + r.end
            } else {
                args.span.clone()
            }
        };
        let pairs = words::key_values(&args.value, self.escape, legacy, false)
            .map_err(|(r, m)| self.err(at(r), m))?;
        Ok(pairs
            .into_iter()
            .map(|kv| {
                let v = kv.value.expect("bare keys are refused");
                (
                    Word {
                        raw: kv.key.text.to_string(),
                        span: at(kv.key.range),
                    },
                    Word {
                        raw: v.text.to_string(),
                        span: at(v.range),
                    },
                )
            })
            .collect())
    }

    fn command(&self, cmd: &pd::Command<'_>) -> (CommandLine, usize) {
        match cmd {
            pd::Command::Exec(list) => (
                CommandLine::Exec(list.value.iter().map(word).collect()),
                list.span.end,
            ),
            pd::Command::Shell(s) => (
                CommandLine::Shell(Word {
                    raw: s.value.to_string(),
                    span: s.span.clone(),
                }),
                s.span.end,
            ),
            _ => (CommandLine::Exec(Vec::new()), 0),
        }
    }

    fn copy(&self, c: &pd::CopyInstruction<'_>) -> Result<Copy, Diagnostic> {
        let flags = self.flags("COPY", &c.options, &["from", "chown", "chmod"], &[])?;
        let flag = |n: &str| flags.iter().find(|(k, _)| *k == n).map(|(_, w)| w.clone());
        if let Some(chmod) = flag("chmod")
            && !chmod.raw.contains('$')
        {
            parse_chmod(&chmod.raw).map_err(|m| self.err(chmod.span.clone(), m))?;
        }
        let heredoc_names =
            heredoc_names(self.source.slice(&(c.copy.span.start..c.dest.span.start)));
        let mut names = heredoc_names.into_iter();
        let mut sources = Vec::new();
        for s in &c.src {
            sources.push(match s {
                pd::Source::Path(p) => CopySource::Path(word(p)),
                pd::Source::HereDoc(h) => CopySource::HereDoc {
                    name: names.next().unwrap_or_else(|| "heredoc".to_string()),
                    body: Word {
                        raw: h.value.to_string(),
                        span: h.span.clone(),
                    },
                    expand: h.expand,
                },
                _ => return Err(self.err(c.copy.span.clone(), "unsupported COPY source")),
            });
        }
        Ok(Copy {
            sources,
            dest: word(&c.dest),
            from: flag("from"),
            chown: flag("chown"),
            chmod: flag("chmod"),
        })
    }

    fn run(&self, r: &pd::RunInstruction<'_>) -> Result<Run, Diagnostic> {
        let flags = self.flags("RUN", &r.options, &["mount", "network"], &["mount"])?;
        let mut mounts = Vec::new();
        let mut network = None;
        for (name, value) in flags {
            if name == "network" {
                if !value.raw.contains('$') {
                    check_network(&value.raw).map_err(|m| self.err(value.span.clone(), m))?;
                }
                network = Some(value);
                continue;
            }
            let parsed = if value.raw.contains('$') {
                None
            } else {
                let exact = self.source.slice(&value.span) == value.raw;
                Some(Mount::parse(&value.raw).map_err(|(range, msg)| {
                    let span = if exact {
                        value.span.start + range.start..value.span.start + range.end
                    } else {
                        value.span.clone()
                    };
                    self.err(span, msg)
                })?)
            };
            mounts.push(MountFlag {
                spec: value,
                parsed,
            });
        }
        let (command, _) = self.command(&r.arguments);
        Ok(Run {
            mounts,
            network,
            command,
            heredocs: r
                .here_docs
                .iter()
                .map(|h| Word {
                    raw: h.value.to_string(),
                    span: h.span.clone(),
                })
                .collect(),
        })
    }
}

/// Checks `--network=`: `none` (the default: no network) or `default`
/// (the build's `--allow-net` allowlist); `host` is refused.
pub fn check_network(value: &str) -> Result<(), String> {
    match value {
        "none" | "default" => Ok(()),
        "host" => Err(
            "--network=host is not available: a kiln step never gets the host's network unfiltered; use --network=default and name the hosts with kiln build --allow-net HOST[:PORT]"
                .into(),
        ),
        other => Err(format!(
            "unknown network mode {other:?}: expected none, default or host"
        )),
    }
}

/// Parses `--chmod`: octal permission bits like `755` or `0644`.
pub fn parse_chmod(value: &str) -> Result<u32, String> {
    u32::from_str_radix(value, 8)
        .ok()
        .filter(|m| !value.is_empty() && *m <= 0o7777)
        .ok_or_else(|| {
            format!("--chmod={value:?} is not an octal mode: expected digits 0-7 like 755 or 0644")
        })
}

/// The delimiters of `<<NAME` / `<<-NAME` / `<<"NAME"` here-documents in a line.
fn heredoc_names(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("<<") {
        rest = &rest[i + 2..];
        let r = rest.strip_prefix('-').unwrap_or(rest);
        let r = r.trim_start_matches(['"', '\'']);
        let name: String = r
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
