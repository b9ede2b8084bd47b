//! Variable expansion with Docker's rules (BuildKit's `shell.Lex`).
//!
//! One pass over a word does three things, as Docker does for ENV, COPY,
//! WORKDIR, LABEL, USER, FROM, ARG and `--mount` values:
//! - quotes are removed: `'...'` is literal, `"..."` still expands `$` and
//!   honours the escapes `\"`, `\$` and `\\` (other backslashes stay);
//! - outside quotes the escape character (`\`, or `` ` `` with the `escape`
//!   parser directive) makes the next character literal;
//! - `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`,
//!   `${NAME+word}`, `${NAME:?message}` and `${NAME?message}` are replaced.
//!   An unset variable expands to nothing; `$` before anything that cannot
//!   start a name is a literal `$`.
//!
//! This module is pure: callers pass a lookup function for the variables in
//! scope. Errors carry the byte offset in the word so the frontend can point
//! at the exact column. The lexer is recursive (`${A:-${B:-...}}`), so the
//! nesting is capped at [`MAX_NESTING`]: deeper input is an error, never a
//! stack overflow.

/// Deepest nesting of `${...}` inside a word. People write two or three
/// levels; each level costs a few hundred bytes of stack, so 64 levels stay
/// far inside the smallest stack kiln expands on (a 2 MiB thread), while a
/// hostile 20,000-level word is refused with the column of the first `${`
/// past the limit.
pub const MAX_NESTING: usize = 64;

/// Why a word could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// Byte offset in the word where the problem is.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Expands `word` using `lookup` for variables; `escape` is the Kilnfile's
/// escape character.
pub fn expand<'a>(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<String, ExpandError> {
    expand_noting(word, escape, lookup).map(|(text, _)| text)
}

/// [`expand`], also returning the names used without a default (`$NAME`,
/// `${NAME}`) that `lookup` did not know, in order, for BuildKit's
/// `UndefinedVar` warning. A name with a modifier (`${NAME:-word}`,
/// `${NAME+word}`, `${NAME?message}`) is not listed: its author planned
/// for it to be unset.
pub fn expand_noting<'a>(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<(String, Vec<String>), ExpandError> {
    let mut lexer = Lexer {
        chars: word.char_indices().collect(),
        pos: 0,
        escape,
        lookup,
        len: word.len(),
        depth: 0,
        unset: Vec::new(),
    };
    let text = lexer.until(None)?;
    Ok((text, lexer.unset))
}

/// Whether `word` would change under [`expand`] (it has a quote, an escape or
/// a `$`). Words that would not are used as they are.
pub fn needs_expansion(word: &str, escape: char) -> bool {
    word.contains(['\'', '"', '$', escape])
}

struct Lexer<'l, 'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    escape: char,
    lookup: &'l dyn Fn(&str) -> Option<&'a str>,
    len: usize,
    /// How many `${` the lexer is inside.
    depth: usize,
    /// Names used without a modifier that `lookup` did not know.
    unset: Vec<String>,
}

impl Lexer<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.len, |&(o, _)| o)
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> ExpandError {
        ExpandError {
            offset,
            message: message.into(),
        }
    }

    /// Processes until `stop` (consumed) or the end of the word.
    fn until(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                if let Some(stop) = stop {
                    return Err(self.err(self.len, format!("missing '{stop}' in substitution")));
                }
                return Ok(out);
            };
            if Some(c) == stop {
                self.next();
                return Ok(out);
            }
            match c {
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    self.next();
                    // A trailing escape is dropped, as Docker does.
                    if let Some(next) = self.next() {
                        out.push(next);
                    }
                }
                c => {
                    self.next();
                    out.push(c);
                }
            }
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => {
                    return Err(self.err(start, "unterminated single quote: expected a closing '"));
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.err(start, "unterminated double quote: expected a closing \""));
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    self.next();
                    match self.peek() {
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            self.next();
                            out.push(n);
                        }
                        _ => out.push(c),
                    }
                }
                Some(c) => {
                    self.next();
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.next();
            } else {
                break;
            }
        }
        name
    }

    fn value(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(str::to_string)
    }

    /// The value of `name` used without a modifier: empty when unset, and
    /// then noted.
    fn plain_value(&mut self, name: &str) -> String {
        self.value(name).unwrap_or_else(|| {
            if !self.unset.iter().any(|n| n == name) {
                self.unset.push(name.to_string());
            }
            String::new()
        })
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.plain_value(&name));
        }
        if self.depth >= MAX_NESTING {
            return Err(self.err(
                start,
                format!("substitutions nested deeper than {MAX_NESTING} levels"),
            ));
        }
        self.next(); // '{'
        let name_at = self.offset();
        let name = self.name();
        if name.is_empty() {
            return Err(self.err(
                name_at,
                "bad substitution: expected a variable name after '${'",
            ));
        }
        let value = self.value(&name);
        let colon = self.peek() == Some(':');
        if colon {
            self.next();
        }
        let op_at = self.offset();
        match self.next() {
            Some('}') if !colon => Ok(self.plain_value(&name)),
            Some(op @ ('-' | '+' | '?')) => {
                self.depth += 1;
                let word = self.until(Some('}'));
                self.depth -= 1;
                let word = word?;
                // With ':' an empty value counts as unset, as in sh.
                let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
                match op {
                    '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    _ if set => Ok(value.unwrap_or_default()),
                    _ => {
                        let why = if word.is_empty() {
                            "is not allowed to be unset".to_string()
                        } else {
                            word
                        };
                        Err(self.err(start, format!("{name}: {why}")))
                    }
                }
            }
            Some(other) => Err(self.err(
                op_at,
                format!(
                    "unsupported modifier '{other}' in ${{{name}...}}: expected one of }}, :-, -, :+, +, :?, ?"
                ),
            )),
            None => Err(self.err(self.len, format!("missing '}}' in ${{{name}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(word: &str) -> Result<String, ExpandError> {
        let vars = |k: &str| match k {
            "A" => Some("alpha"),
            "EMPTY" => Some(""),
            "SP" => Some("a b"),
            _ => None,
        };
        expand(word, '\\', &vars)
    }

    #[test]
    fn expands_simple_forms() {
        assert_eq!(x("$A").unwrap(), "alpha");
        assert_eq!(x("${A}").unwrap(), "alpha");
        assert_eq!(x("pre-${A}-post").unwrap(), "pre-alpha-post");
        assert_eq!(x("$A.txt").unwrap(), "alpha.txt");
        assert_eq!(x("$NOPE").unwrap(), "");
        assert_eq!(x("cost: $").unwrap(), "cost: $");
        assert_eq!(x("$-x").unwrap(), "$-x");
        assert_eq!(x("${SP}").unwrap(), "a b");
    }

    #[test]
    fn notes_names_used_without_a_default() {
        let vars = |k: &str| (k == "A").then_some("alpha");
        let (text, unset) =
            expand_noting("$A-$B-${C}-${D:-d}-${E+e}-${F-f}-'$G'-$B", '\\', &vars).unwrap();
        assert_eq!(text, "alpha---d--f-$G-");
        assert_eq!(unset, ["B", "C"]);
    }

    #[test]
    fn expands_modifiers_like_sh() {
        assert_eq!(x("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(x("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(x("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(x("${A:-dflt}").unwrap(), "alpha");
        assert_eq!(x("${A:+alt}").unwrap(), "alt");
        assert_eq!(x("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(x("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(x("${NOPE:+alt}").unwrap(), "");
        assert_eq!(x("${NOPE:-$A/x}").unwrap(), "alpha/x");
        assert_eq!(x("${NOPE:-${A:+nested}}").unwrap(), "nested");
        assert_eq!(x("${A:?must be set}").unwrap(), "alpha");
        assert_eq!(
            x("${NOPE:?must be set}").unwrap_err().message,
            "NOPE: must be set"
        );
        assert_eq!(
            x("${NOPE?}").unwrap_err().message,
            "NOPE: is not allowed to be unset"
        );
    }

    #[test]
    fn honours_quotes_and_escapes() {
        assert_eq!(x("'$A'").unwrap(), "$A");
        assert_eq!(x("\"$A b\"").unwrap(), "alpha b");
        assert_eq!(x("\\$A").unwrap(), "$A");
        assert_eq!(x("\"\\$A\"").unwrap(), "$A");
        assert_eq!(x("\"a\\nb\"").unwrap(), "a\\nb");
        assert_eq!(x("\"q\\\"q\"").unwrap(), "q\"q");
        assert_eq!(x("a\\ b").unwrap(), "a b");
        assert_eq!(
            x("it's").unwrap_err().message,
            "unterminated single quote: expected a closing '"
        );
        assert_eq!(x("trailing\\").unwrap(), "trailing");
    }

    #[test]
    fn backtick_escape_directive() {
        let none = |_: &str| None;
        assert_eq!(expand("`$A", '`', &none).unwrap(), "$A");
        assert_eq!(expand("C:\\dir", '`', &none).unwrap(), "C:\\dir");
    }

    #[test]
    fn refuses_nesting_past_the_limit_without_overflowing_the_stack() {
        let nested = |depth: usize| "${A:-".repeat(depth) + "x" + &"}".repeat(depth);
        assert_eq!(x(&nested(MAX_NESTING)).unwrap(), "alpha");
        assert_eq!(x(&nested(MAX_NESTING).replace('A', "NOPE")).unwrap(), "x");
        let e = x(&nested(20_000)).unwrap_err();
        assert_eq!(e.offset, MAX_NESTING * 5);
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        // Inside double quotes the same limit holds.
        let quoted = "\"${NOPE:-".repeat(20_000);
        assert!(x(&quoted).unwrap_err().message.contains("nested deeper"));
    }

    #[test]
    fn reports_bad_substitutions_with_offsets() {
        let e = x("ab${}").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = x("${A").unwrap_err();
        assert!(e.message.contains("missing '}'"), "{e}");
        let e = x("${A%x}").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("unsupported modifier '%'"), "{e}");
    }
}
