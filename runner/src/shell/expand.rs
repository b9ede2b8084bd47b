//! Word expansion: tilde, parameters, command substitution, arithmetic,
//! then field splitting on `IFS` and globbing, then quote removal.
//!
//! A word expands into units: characters marked quoted (literal) or not,
//! and splittable (from an unquoted expansion) or not, plus field breaks
//! (`"$@"`) and marks that a quoted empty string was there (`""` is one
//! empty field, an unquoted empty expansion none).

use super::ast::*;
use super::interp::{Flow, Shell};
use super::pattern::{self, PChar};

enum U {
    C(char, bool, bool),
    Break,
    Empty,
}

/// A parameter's value before its operator.
enum Val {
    Unset,
    One(String),
    /// `$@`, `$*`: the positional parameters.
    Many(Vec<String>, bool),
}

impl Shell<'_, '_> {
    /// Words -> fields (split and globbed), as for a command's arguments.
    pub(super) fn expand_words(&mut self, words: &[Word]) -> Result<Vec<String>, Flow> {
        let mut out = Vec::new();
        for w in words {
            let mut units = Vec::new();
            self.expand_parts(&w.parts, false, &mut units, w.pos)?;
            for field in self.split(units) {
                if !self.st.opts.noglob && pattern::has_meta(&field) {
                    let cwd = self.st.cwd.clone();
                    if let Some(paths) = pattern::glob(self.host, &cwd, &field) {
                        out.extend(paths);
                        continue;
                    }
                }
                out.push(field.into_iter().map(|(c, _)| c).collect());
            }
        }
        Ok(out)
    }

    /// A word -> one string, unsplit and unglobbed (assignments, `case`,
    /// redirection targets, here-documents).
    pub(super) fn expand_string(&mut self, w: &Word) -> Result<String, Flow> {
        Ok(self
            .expand_pattern(w)?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    /// A word -> a pattern: quoted characters stay literal.
    pub(super) fn expand_pattern(&mut self, w: &Word) -> Result<Vec<PChar>, Flow> {
        let mut units = Vec::new();
        self.expand_parts(&w.parts, false, &mut units, w.pos)?;
        Ok(units
            .into_iter()
            .filter_map(|u| match u {
                U::C(c, q, _) => Some((c, q)),
                U::Break => Some((' ', true)),
                U::Empty => None,
            })
            .collect())
    }

    fn expand_parts(
        &mut self,
        parts: &[Part],
        dq: bool,
        out: &mut Vec<U>,
        pos: Pos,
    ) -> Result<(), Flow> {
        for p in parts {
            match p {
                Part::Text(t) => out.extend(t.chars().map(|c| U::C(c, dq, false))),
                Part::Quoted(t) => {
                    out.push(U::Empty);
                    out.extend(t.chars().map(|c| U::C(c, true, false)));
                }
                Part::Double(inner) => {
                    let at = inner
                        .iter()
                        .any(|p| matches!(p, Part::Param(Param::At, ParamOp::Plain)));
                    if !at {
                        out.push(U::Empty);
                    }
                    self.expand_parts(inner, true, out, pos)?;
                }
                Part::Tilde => {
                    let home = self.var("HOME").unwrap_or_else(|| "/".into());
                    out.extend(home.chars().map(|c| U::C(c, true, false)));
                }
                Part::Param(param, op) => self.expand_param(param, op, dq, out, pos)?,
                Part::CommandSub(list) => {
                    let (s, status) = self.capture(list);
                    self.st.sub_status = Some(status);
                    out.extend(s.chars().map(|c| U::C(c, dq, !dq)));
                }
                Part::Arith(text) => {
                    let v = self.arith(text, pos)?;
                    out.extend(v.to_string().chars().map(|c| U::C(c, dq, !dq)));
                }
            }
        }
        Ok(())
    }

    /// A variable's value.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        self.st.vars.get(name).map(|v| v.value.clone())
    }

    fn param_value(&self, p: &Param) -> Val {
        match p {
            Param::Named(n) => self.var(n).map_or(Val::Unset, Val::One),
            Param::Positional(n) => self
                .st
                .positional
                .get(n - 1)
                .cloned()
                .map_or(Val::Unset, Val::One),
            Param::At => Val::Many(self.st.positional.clone(), false),
            Param::Star => Val::Many(self.st.positional.clone(), true),
            Param::Count => Val::One(self.st.positional.len().to_string()),
            Param::Status => Val::One(self.st.status.to_string()),
            Param::Pid => Val::One("1".into()),
            Param::LastBackground => Val::Unset,
            Param::Zero => Val::One(self.st.zero.clone()),
            Param::Flags => {
                let o = self.st.opts;
                let mut f = String::new();
                for (on, c) in [
                    (o.errexit, 'e'),
                    (o.noglob, 'f'),
                    (o.nounset, 'u'),
                    (o.xtrace, 'x'),
                ] {
                    if on {
                        f.push(c);
                    }
                }
                Val::One(f)
            }
        }
    }

    fn expand_param(
        &mut self,
        param: &Param,
        op: &ParamOp,
        dq: bool,
        out: &mut Vec<U>,
        pos: Pos,
    ) -> Result<(), Flow> {
        let val = self.param_value(param);
        let (unset, empty) = match &val {
            Val::Unset => (true, true),
            Val::One(s) => (false, s.is_empty()),
            Val::Many(v, _) => (v.is_empty(), v.is_empty()),
        };
        let missing = |colon: &bool| unset || (*colon && empty);
        let name = match param {
            Param::Named(n) => n.clone(),
            Param::Positional(n) => n.to_string(),
            _ => String::new(),
        };
        let val = match op {
            ParamOp::Plain => val,
            ParamOp::Length => {
                let n = match &val {
                    Val::Unset => 0,
                    Val::One(s) => s.chars().count(),
                    Val::Many(v, _) => v.len(),
                };
                Val::One(n.to_string())
            }
            ParamOp::Default(colon, w) => {
                if missing(colon) {
                    return self.expand_parts(&w.parts, dq, out, pos);
                }
                val
            }
            ParamOp::Alternative(colon, w) => {
                if !missing(colon) {
                    return self.expand_parts(&w.parts, dq, out, pos);
                }
                Val::One(String::new())
            }
            ParamOp::Assign(colon, w) => {
                if missing(colon) {
                    if !matches!(param, Param::Named(_)) {
                        return Err(self.fatal(pos, &format!("${name}: cannot assign this way")));
                    }
                    let v = self.expand_string(w)?;
                    self.set_var(&name, v.clone());
                    Val::One(v)
                } else {
                    val
                }
            }
            ParamOp::Error(colon, w) => {
                if missing(colon) {
                    let msg = match w {
                        Some(w) => self.expand_string(w)?,
                        None if unset => "parameter not set".into(),
                        None => "parameter null or not set".into(),
                    };
                    return Err(self.fatal(pos, &format!("{name}: {msg}")));
                }
                val
            }
            ParamOp::RemovePrefix(longest, w) | ParamOp::RemoveSuffix(longest, w) => {
                let prefix = matches!(op, ParamOp::RemovePrefix(..));
                let pat = self.expand_pattern(w)?;
                let s = match &val {
                    Val::One(s) => s.clone(),
                    Val::Many(v, _) => v.join(" "),
                    Val::Unset => String::new(),
                };
                Val::One(remove(&s, &pat, prefix, *longest))
            }
        };
        if let (Val::Unset, true) = (&val, self.st.opts.nounset)
            && !matches!(param, Param::At | Param::Star)
        {
            let shown = if name.is_empty() { "?" } else { &name };
            return Err(self.fatal(pos, &format!("{shown}: parameter not set")));
        }
        match val {
            Val::Unset => {}
            Val::One(s) => out.extend(s.chars().map(|c| U::C(c, dq, !dq))),
            Val::Many(v, star) => {
                let sep = if star && dq {
                    self.var("IFS").map_or(Some(' '), |s| s.chars().next())
                } else {
                    None
                };
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        match sep {
                            Some(c) => out.push(U::C(c, true, false)),
                            None if dq && star => {}
                            None => out.push(U::Break),
                        }
                    }
                    if dq {
                        out.push(U::Empty);
                    }
                    out.extend(s.chars().map(|c| U::C(c, dq, !dq)));
                }
            }
        }
        Ok(())
    }

    /// Field splitting on `IFS`.
    fn split(&self, units: Vec<U>) -> Vec<Vec<PChar>> {
        let ifs = self.var("IFS").unwrap_or_else(|| " \t\n".into());
        let mut fields = Vec::new();
        let mut cur: Option<Vec<PChar>> = None;
        // Whether the last thing seen was IFS white space that ended a field.
        let mut after_white = false;
        for u in units {
            match u {
                U::C(c, _, true) if ifs.contains(c) => {
                    if c.is_whitespace() {
                        if let Some(f) = cur.take() {
                            fields.push(f);
                            after_white = true;
                        }
                    } else {
                        match cur.take() {
                            Some(f) => fields.push(f),
                            None if after_white => {}
                            None => fields.push(Vec::new()),
                        }
                        after_white = false;
                    }
                }
                U::C(c, q, _) => {
                    cur.get_or_insert_with(Vec::new).push((c, q));
                    after_white = false;
                }
                U::Empty => {
                    cur.get_or_insert_with(Vec::new);
                }
                U::Break => {
                    if let Some(f) = cur.take() {
                        fields.push(f);
                    }
                    after_white = false;
                }
            }
        }
        if let Some(f) = cur {
            fields.push(f);
        }
        fields
    }
}

/// `${s#p}`, `${s##p}`, `${s%p}`, `${s%%p}`.
fn remove(s: &str, pat: &[PChar], prefix: bool, longest: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut lens: Vec<usize> = (0..=n).collect();
    if longest {
        lens.reverse();
    }
    for len in lens {
        let (part, rest) = if prefix {
            (&chars[..len], &chars[len..])
        } else {
            (&chars[n - len..], &chars[..n - len])
        };
        if pattern::matches(pat, part) {
            return rest.iter().collect();
        }
    }
    s.to_string()
}
