//! Splitting instruction arguments into words, the way BuildKit's parser does.
//!
//! - [`split_words`]: whitespace-separated words where quotes keep spaces
//!   inside a word; quotes and escapes stay in the word for [`super::expand`]
//!   to process (ENV, LABEL, ARG and shell-form commands use this).
//! - [`key_values`]: `k=v k2="v 2"` pairs, or the legacy `KEY value...` form.
//! - [`shell_syntax`]: whether a shell-form command needs a real shell
//!   (`&&`, `|`, `;`, redirects, `$(..)`...): such a line runs as `/bin/sh
//!   -c`, in the image's wasm shell or kiln's built-in one, instead of being
//!   split into words here.

use std::ops::Range;

/// A word and its byte range in the text it was split from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawWord<'a> {
    /// The word, quotes and escapes still in it.
    pub text: &'a str,
    /// Its byte range in the input.
    pub range: Range<usize>,
}

/// Splits `text` on unquoted whitespace, keeping quotes and escapes.
pub fn split_words(text: &str, escape: char) -> Vec<RawWord<'_>> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push(RawWord {
                    text: &text[s..i],
                    range: s..i,
                });
            }
            continue;
        }
        start.get_or_insert(i);
        if c == escape && quote != Some('\'') {
            chars.next();
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        }
    }
    if let Some(s) = start {
        words.push(RawWord {
            text: &text[s..],
            range: s..text.len(),
        });
    }
    words
}

/// A `key=value` pair from ENV, LABEL or ARG, both halves unexpanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue<'a> {
    /// The key as written.
    pub key: RawWord<'a>,
    /// The value as written; `None` for a bare `ARG NAME`.
    pub value: Option<RawWord<'a>>,
}

/// Parses `k=v ...` pairs. With `legacy`, a first word without `=` means the
/// old `KEY value with spaces` form (ENV and LABEL allow it). Returns the
/// byte offset and message of the first problem.
pub fn key_values(
    text: &str,
    escape: char,
    legacy: bool,
    allow_bare: bool,
) -> Result<Vec<KeyValue<'_>>, (Range<usize>, String)> {
    let words = split_words(text, escape);
    let Some(first) = words.first() else {
        return Err((0..text.len(), "expected at least one KEY=VALUE".into()));
    };
    if legacy && !first.text.contains('=') {
        let key = first.clone();
        let rest_start = text[key.range.end..]
            .find(|c: char| !c.is_whitespace())
            .map(|i| key.range.end + i);
        let Some(rest_start) = rest_start else {
            return Err((
                key.range,
                format!(
                    "expected a value after {:?}: write KEY=VALUE (or the legacy KEY VALUE)",
                    key.text
                ),
            ));
        };
        let rest = text[rest_start..].trim_end();
        return Ok(vec![KeyValue {
            key,
            value: Some(RawWord {
                text: rest,
                range: rest_start..rest_start + rest.len(),
            }),
        }]);
    }
    let mut pairs = Vec::new();
    for word in words {
        match word.text.find('=') {
            Some(eq) => {
                let (k, v) = (&word.text[..eq], &word.text[eq + 1..]);
                if k.is_empty() {
                    return Err((word.range, "expected a name before '='".into()));
                }
                let key_end = word.range.start + eq;
                pairs.push(KeyValue {
                    key: RawWord {
                        text: k,
                        range: word.range.start..key_end,
                    },
                    value: Some(RawWord {
                        text: v,
                        range: key_end + 1..word.range.end,
                    }),
                });
            }
            None if allow_bare => pairs.push(KeyValue {
                key: word,
                value: None,
            }),
            None => {
                return Err((
                    word.range.clone(),
                    format!("expected KEY=VALUE, found {:?} with no '='", word.text),
                ));
            }
        }
    }
    Ok(pairs)
}

/// The first piece of shell syntax in a shell-form command, with its byte
/// range: operators, redirects, command substitution, subshells, comments.
/// `None` means the command is plain words a program can take as argv.
pub fn shell_syntax(command: &str) -> Option<(Range<usize>, &'static str)> {
    let bytes = command.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    let mut word_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        let two = bytes.get(i..i + 2).unwrap_or(&[]);
        match quote {
            Some(b'\'') => {
                if c == b'\'' {
                    quote = None;
                }
            }
            Some(_) => match c {
                b'\\' => i += 1,
                b'"' => quote = None,
                b'`' => return Some((i..i + 1, "command substitution `...`")),
                b'$' if two == b"$(" => return Some((i..i + 2, "command substitution $(...)")),
                _ => {}
            },
            None => {
                let found: Option<(usize, &'static str)> = match c {
                    b'\\' => {
                        if bytes.get(i + 1) == Some(&b'\n') {
                            Some((2, "a line break"))
                        } else {
                            i += 1;
                            None
                        }
                    }
                    b'\'' | b'"' => {
                        quote = Some(c);
                        None
                    }
                    b'&' if two == b"&&" => Some((2, "the && operator")),
                    b'|' if two == b"||" => Some((2, "the || operator")),
                    b'|' => Some((1, "a pipe |")),
                    b'&' => Some((1, "a background &")),
                    b';' => Some((1, "the ; separator")),
                    b'<' | b'>' => Some((1, "a redirect")),
                    b'`' => Some((1, "command substitution `...`")),
                    b'$' if two == b"$(" => Some((2, "command substitution $(...)")),
                    b'(' | b')' => Some((1, "a subshell (...)")),
                    b'\n' => Some((1, "a line break")),
                    b'#' if word_start => Some((1, "a # comment")),
                    _ => None,
                };
                if let Some((len, what)) = found {
                    return Some((i..i + len, what));
                }
            }
        }
        word_start = quote.is_none() && (c == b' ' || c == b'\t');
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ws: Vec<RawWord<'_>>) -> Vec<&str> {
        ws.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn splits_on_unquoted_whitespace_and_keeps_quotes() {
        assert_eq!(
            texts(split_words(r#"a "b c" 'd e'f g\ h"#, '\\')),
            vec!["a", "\"b c\"", "'d e'f", "g\\ h"]
        );
        let ws = split_words("  x  yy ", '\\');
        assert_eq!(ws[1].range, 5..7);
    }

    #[test]
    fn parses_key_value_pairs() {
        let kv = key_values(r#"A=1 B="two words" C="#, '\\', true, false).unwrap();
        assert_eq!(kv.len(), 3);
        assert_eq!(
            (kv[1].key.text, kv[1].value.as_ref().unwrap().text),
            ("B", "\"two words\"")
        );
        assert_eq!(kv[2].value.as_ref().unwrap().text, "");
        assert_eq!(kv[1].value.as_ref().unwrap().range, 6..17);
    }

    #[test]
    fn parses_the_legacy_form() {
        let kv = key_values("GREETING hello big world ", '\\', true, false).unwrap();
        assert_eq!(kv[0].key.text, "GREETING");
        assert_eq!(kv[0].value.as_ref().unwrap().text, "hello big world");
        assert!(key_values("LONELY", '\\', true, false).is_err());
    }

    #[test]
    fn rejects_pairs_without_equals() {
        let (range, msg) = key_values("A=1 B", '\\', false, false).unwrap_err();
        assert_eq!(range, 4..5);
        assert!(msg.contains("no '='"), "{msg}");
        assert_eq!(
            key_values("A=1 B", '\\', false, true).unwrap()[1].value,
            None
        );
    }

    #[test]
    fn detects_shell_syntax_outside_quotes_only() {
        assert_eq!(shell_syntax("tool --flag 'a && b' \"c|d\""), None);
        assert_eq!(shell_syntax("tool a\\;b"), None);
        assert_eq!(shell_syntax("tool a=b#c"), None);
        assert_eq!(shell_syntax("a && b").unwrap(), (2..4, "the && operator"));
        assert_eq!(shell_syntax("a | b").unwrap().1, "a pipe |");
        assert_eq!(shell_syntax("a > out").unwrap().1, "a redirect");
        assert_eq!(shell_syntax("a; b").unwrap().1, "the ; separator");
        assert_eq!(
            shell_syntax("echo \"$(date)\"").unwrap().1,
            "command substitution $(...)"
        );
        assert_eq!(
            shell_syntax("echo `date`").unwrap().1,
            "command substitution `...`"
        );
        assert_eq!(shell_syntax("a # note").unwrap().1, "a # comment");
    }
}
