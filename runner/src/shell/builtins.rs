//! The builtins: `: true false echo printf test [ cd pwd export unset set
//! shift exit return break continue local read eval`.

use super::ast::Pos;
use super::interp::{Flow, R, Shell, Var};

/// Special builtins: their assignments stay after them.
pub(super) fn is_special(name: &str) -> bool {
    matches!(
        name,
        ":" | "set"
            | "export"
            | "unset"
            | "exit"
            | "return"
            | "shift"
            | "break"
            | "continue"
            | "eval"
    )
}

/// Other builtins.
pub(super) fn is_regular(name: &str) -> bool {
    matches!(
        name,
        "true" | "false" | "echo" | "printf" | "test" | "[" | "cd" | "pwd" | "local" | "read"
    )
}

/// `s` quoted for `set -x` and `export -p` when it needs it.
pub(super) fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Shell<'_, '_> {
    /// Runs builtin `name`; `None` when there is none of that name.
    pub(super) fn builtin(&mut self, name: &str, args: &[String], pos: Pos) -> Option<R> {
        Some(match name {
            ":" | "true" => Ok(0),
            "false" => Ok(1),
            "echo" => Ok(self.echo(args)),
            "printf" => Ok(self.printf(args)),
            "test" => Ok(self.test_builtin(args)),
            "[" => {
                if args.last().map(String::as_str) != Some("]") {
                    self.err("[: missing ]");
                    return Some(Ok(2));
                }
                Ok(self.test_builtin(&args[..args.len() - 1]))
            }
            "cd" => Ok(self.cd(args)),
            "pwd" => {
                let cwd = format!("{}\n", self.st.cwd);
                self.out(cwd.as_bytes());
                Ok(0)
            }
            "export" => Ok(self.export(args)),
            "unset" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    self.st.vars.remove(a);
                    self.st.funcs.remove(a);
                }
                Ok(0)
            }
            "local" => Ok(self.local(args)),
            "set" => self.set(args, pos),
            "shift" => {
                let n = match args.first().map(|a| a.parse::<usize>()) {
                    None => 1,
                    Some(Ok(n)) => n,
                    Some(Err(_)) => return Some(Err(self.fatal(pos, "shift: bad number"))),
                };
                if n > self.st.positional.len() {
                    return Some(Err(self.fatal(pos, "shift: can't shift that many")));
                }
                self.st.positional.drain(..n);
                Ok(0)
            }
            "exit" | "return" => {
                let status = match args.first() {
                    None => self.st.status,
                    Some(a) => match a.parse::<i64>() {
                        Ok(n) => (n & 0xff) as i32,
                        Err(_) => {
                            return Some(Err(
                                self.fatal(pos, &format!("{name}: illegal number: {a}"))
                            ));
                        }
                    },
                };
                if name == "return" && self.st.depth > 0 {
                    Err(Flow::Return(status))
                } else {
                    Err(Flow::Exit(status))
                }
            }
            "break" | "continue" => {
                let n = args
                    .first()
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(1);
                if self.st.loops == 0 || n == 0 {
                    return Some(Ok(0));
                }
                let n = n.min(self.st.loops);
                if name == "break" {
                    Err(Flow::Break(n))
                } else {
                    Err(Flow::Continue(n))
                }
            }
            "read" => Ok(self.read(args)),
            "eval" => {
                let text = args.join(" ");
                match super::parse::parse(&text) {
                    Ok(list) => self.run_list(&list),
                    Err(e) => Err(self.fatal(pos, &format!("eval: {e}"))),
                }
            }
            _ => return None,
        })
    }

    fn echo(&mut self, args: &[String]) -> i32 {
        let (newline, args) = match args.first().map(String::as_str) {
            Some("-n") => (false, &args[1..]),
            _ => (true, args),
        };
        let mut s = String::new();
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            // dash's echo: backslash escapes are always on; `\c` ends it.
            let (text, stop) = super::printf::escapes(a);
            s.push_str(&text);
            if stop {
                self.out(s.as_bytes());
                return 0;
            }
        }
        if newline {
            s.push('\n');
        }
        self.out(s.as_bytes());
        0
    }

    fn printf(&mut self, args: &[String]) -> i32 {
        let Some((fmt, rest)) = args.split_first() else {
            self.err("printf: usage: printf format [arg ...]");
            return 2;
        };
        let (text, errors) = super::printf::format(fmt, rest);
        self.out(text.as_bytes());
        for e in &errors {
            self.err(&format!("printf: {e}"));
        }
        i32::from(!errors.is_empty())
    }

    fn cd(&mut self, args: &[String]) -> i32 {
        let target = match args.iter().find(|a| *a != "-L" && *a != "-P") {
            Some(t) if t == "-" => self.var("OLDPWD").unwrap_or_else(|| self.st.cwd.clone()),
            Some(t) => t.clone(),
            None => self.var("HOME").unwrap_or_else(|| "/".into()),
        };
        let path = self.abs(&target);
        if let Err(e) = self.host.check_dir(&path) {
            self.err(&format!("cd: can't cd to {target}: {e}"));
            return 2;
        }
        let old = std::mem::replace(&mut self.st.cwd, path.clone());
        self.set_var("OLDPWD", old);
        self.set_var("PWD", path);
        0
    }

    fn export(&mut self, args: &[String]) -> i32 {
        let mut status = 0;
        let names: Vec<&String> = args.iter().filter(|a| *a != "-p").collect();
        if names.is_empty() {
            let mut vars: Vec<(&String, &Var)> =
                self.st.vars.iter().filter(|(_, v)| v.exported).collect();
            vars.sort_by_key(|(k, _)| *k);
            let text: String = vars
                .iter()
                .map(|(k, v)| format!("export {k}={}\n", quote(&v.value)))
                .collect();
            self.out(text.as_bytes());
            return 0;
        }
        for a in names {
            let (name, value) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            if !valid_name(name) {
                self.err(&format!("export: {name}: bad variable name"));
                status = 1;
                continue;
            }
            let v = self.st.vars.entry(name.to_string()).or_insert(Var {
                value: String::new(),
                exported: true,
            });
            v.exported = true;
            if let Some(value) = value {
                v.value = value;
            } else if v.value.is_empty() && !self.st.vars.contains_key(name) {
                self.st.vars.remove(name);
            }
        }
        status
    }

    fn local(&mut self, args: &[String]) -> i32 {
        if self.st.depth == 0 {
            self.err("local: not in a function");
            return 2;
        }
        for a in args {
            let (name, value) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let old = self.st.vars.get(name).cloned();
            if let Some(frame) = self.st.locals.last_mut() {
                frame.push((name.to_string(), old));
            }
            if let Some(v) = value {
                self.set_var(name, v);
            }
        }
        0
    }

    pub(super) fn set(&mut self, args: &[String], pos: Pos) -> R {
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if a == "--" {
                self.st.positional = args[i + 1..].to_vec();
                return Ok(0);
            }
            let on = match a.chars().next() {
                Some('-') => true,
                Some('+') => false,
                _ => break,
            };
            let mut takes_name = false;
            for c in a[1..].chars() {
                let o = &mut self.st.opts;
                match c {
                    'o' => takes_name = true,
                    'e' => o.errexit = on,
                    'u' => o.nounset = on,
                    'x' => o.xtrace = on,
                    'f' => o.noglob = on,
                    _ => return Err(self.fatal(pos, &format!("set: illegal option -{c}"))),
                }
            }
            i += 1;
            if takes_name {
                let Some(opt) = args.get(i) else {
                    return Ok(0);
                };
                let o = &mut self.st.opts;
                match opt.as_str() {
                    "errexit" => o.errexit = on,
                    "nounset" => o.nounset = on,
                    "xtrace" => o.xtrace = on,
                    "pipefail" => o.pipefail = on,
                    "noglob" => o.noglob = on,
                    _ => return Err(self.fatal(pos, &format!("set: illegal option -o {opt}"))),
                }
                i += 1;
            }
        }
        if i < args.len() {
            self.st.positional = args[i..].to_vec();
        } else if args.is_empty() {
            let mut vars: Vec<_> = self.st.vars.iter().collect();
            vars.sort_by_key(|(k, _)| *k);
            let text: String = vars
                .iter()
                .map(|(k, v)| format!("{k}={}\n", quote(&v.value)))
                .collect();
            self.out(text.as_bytes());
        }
        Ok(0)
    }

    fn read(&mut self, args: &[String]) -> i32 {
        let raw = args.iter().any(|a| a == "-r");
        let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        // The shell's own standard input (`None`) is the program's to read:
        // `read` there sees its end.
        let input = self
            .fds
            .stdin
            .clone()
            .unwrap_or_else(|| super::io::input(Vec::new()));
        let Some(mut line) = super::io::read_line(&input) else {
            for n in &names {
                self.set_var(n, String::new());
            }
            return 1;
        };
        if !raw {
            while line.ends_with('\\') {
                line.pop();
                match super::io::read_line(&input) {
                    Some(more) => line.push_str(&more),
                    None => break,
                }
            }
            line = line.replace('\\', "");
        }
        let ifs = self.var("IFS").unwrap_or_else(|| " \t\n".into());
        let names: Vec<&String> = if names.is_empty() { vec![] } else { names };
        if names.is_empty() {
            self.set_var("REPLY", line);
            return 0;
        }
        let mut rest = line.trim_start_matches(|c| ifs.contains(c)).to_string();
        for (i, n) in names.iter().enumerate() {
            if i + 1 == names.len() {
                let v = rest.trim_end_matches(|c: char| ifs.contains(c) && c.is_whitespace());
                self.set_var(n, v.to_string());
                break;
            }
            let end = rest.find(|c| ifs.contains(c)).unwrap_or(rest.len());
            let word = rest[..end].to_string();
            rest = rest[end..]
                .trim_start_matches(|c| ifs.contains(c))
                .to_string();
            self.set_var(n, word);
        }
        0
    }
}
