//! Redirections: `<`, `>`, `>>`, `<>`, `>&N`, `<&N`, `>/dev/null` and
//! here-documents, for descriptors 0, 1 and 2; and paths made absolute.

use super::ast::*;
use super::interp::Shell;
use super::io::{self, In, Out, Sink};

/// Descriptors and files opened by redirections, to write out and restore
/// afterwards.
pub(super) struct Saved {
    fds: super::io::Fds,
    files: Vec<Out>,
}

impl Shell<'_, '_> {
    /// Applies redirections; the error is the message to print.
    pub(super) fn redirect(&mut self, redirs: &[Redir]) -> Result<Saved, String> {
        let saved = Saved {
            fds: self.fds.clone(),
            files: Vec::new(),
        };
        let mut files = Vec::new();
        let r = self.redirect_each(redirs, &mut files);
        let saved = Saved { files, ..saved };
        match r {
            Ok(()) => Ok(saved),
            Err(e) => {
                self.restore(saved);
                Err(e)
            }
        }
    }

    fn redirect_each(&mut self, redirs: &[Redir], files: &mut Vec<Out>) -> Result<(), String> {
        for r in redirs {
            let (default_fd, target) = match &r.kind {
                RedirKind::Read(w) | RedirKind::ReadWrite(w) => (0, w),
                RedirKind::Write(w) | RedirKind::Append(w) | RedirKind::DupOut(w) => (1, w),
                RedirKind::DupIn(w) => (0, w),
                RedirKind::HereDoc { body, .. } => (0, body),
            };
            let fd = r.fd.unwrap_or(default_fd);
            if fd > 2 {
                return Err(format!(
                    "descriptor {fd}: only 0, 1 and 2 can be redirected"
                ));
            }
            let text = match &r.kind {
                RedirKind::HereDoc {
                    body,
                    expand,
                    strip_tabs,
                } => {
                    let mut s = if *expand {
                        self.expand_string(body)
                            .map_err(|_| "bad here-document".to_string())?
                    } else {
                        body.parts
                            .iter()
                            .map(|p| match p {
                                Part::Quoted(t) => t.as_str(),
                                _ => "",
                            })
                            .collect()
                    };
                    if *strip_tabs {
                        s = s
                            .split_inclusive('\n')
                            .map(|l| l.trim_start_matches('\t'))
                            .collect();
                    }
                    self.set_fd_in(fd, io::input(s.into_bytes()));
                    continue;
                }
                _ => self
                    .expand_string(target)
                    .map_err(|_| "bad redirection target".to_string())?,
            };
            match &r.kind {
                RedirKind::Read(_) | RedirKind::ReadWrite(_) => {
                    let path = self.abs(&text);
                    if text == "/dev/null" {
                        self.set_fd_in(fd, io::input(Vec::new()));
                        continue;
                    }
                    let bytes = self
                        .host
                        .read_file(&path)
                        .map_err(|e| format!("{text}: {e}"))?;
                    self.set_fd_in(fd, io::input(bytes));
                }
                RedirKind::Write(_) | RedirKind::Append(_) => {
                    let out = if text == "/dev/null" {
                        io::sink(Sink::Null)
                    } else {
                        let path = self.abs(&text);
                        let append = matches!(r.kind, RedirKind::Append(_));
                        self.host
                            .open_write(&path, append)
                            .map_err(|e| format!("cannot create {text}: {e}"))?;
                        let out = io::sink(Sink::File(path, Vec::new()));
                        files.push(out.clone());
                        out
                    };
                    self.set_fd_out(fd, out);
                }
                RedirKind::DupOut(_) | RedirKind::DupIn(_) => {
                    let out = match text.as_str() {
                        "1" => self.fds.stdout.clone(),
                        "2" => self.fds.stderr.clone(),
                        "-" => io::sink(Sink::Null),
                        "0" if fd == 0 => continue,
                        _ => return Err(format!("{text}: bad descriptor")),
                    };
                    if fd == 0 {
                        if text == "-" {
                            self.fds.stdin = Some(io::input(Vec::new()));
                        }
                        continue;
                    }
                    self.set_fd_out(fd, out);
                }
                RedirKind::HereDoc { .. } => {}
            }
        }
        Ok(())
    }

    fn set_fd_in(&mut self, fd: u32, input: In) {
        if fd == 0 {
            self.fds.stdin = Some(input);
        }
    }

    fn set_fd_out(&mut self, fd: u32, out: Out) {
        match fd {
            1 => self.fds.stdout = out,
            2 => self.fds.stderr = out,
            _ => {}
        }
    }

    /// Ends redirections: files written out, descriptors put back.
    pub(super) fn restore(&mut self, saved: Saved) {
        self.fds = saved.fds;
        for f in saved.files {
            let (path, data) = match &mut *f.borrow_mut() {
                Sink::File(p, d) => (p.clone(), std::mem::take(d)),
                _ => continue,
            };
            if let Err(e) = self.host.append(&path, &data) {
                self.err(&format!("writing {path}: {e}"));
            }
        }
    }

    /// `path` made absolute against the working directory and normalized.
    pub(super) fn abs(&self, path: &str) -> String {
        absolute(&self.st.cwd, path)
    }
}

/// `path` made absolute against `cwd` and normalized (`..` by name, as a
/// shell's `cd` does).
pub(super) fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}
