//! grep's patterns as one `regex-lite` regex: POSIX basic (BRE, the
//! default) and extended (ERE, `-E`) syntax translated, fixed strings
//! (`-F`) escaped, then `-x` and `-w` and `-i` applied to all of them.
//!
//! What the translation knows: in BRE `\( \) \{ \} \| \+ \?` are the
//! operators and `( ) { } | + ?` literal (ERE the other way round); `*` at
//! the start of a pattern or group is literal; in BRE `^` is an anchor only
//! at the start and `$` only at the end (of the pattern, a group or an
//! alternative); bracket expressions (`[]a-]`, `[^[:space:]]`, a backslash
//! in them is literal); intervals (`{,3}` is `{0,3}`); `\< \> \b \B \w \W
//! \s \S`. Not supported: back-references (`\1`), `[=a=]` and `[.a.]`.
//! Matching is by characters of UTF-8 text (invalid bytes match only `.`).

use regex_lite::{Regex, RegexBuilder};

/// How the patterns are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Syntax {
    Basic,
    Extended,
    Fixed,
}

/// What the patterns must match.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Match {
    pub(super) ignore_case: bool,
    pub(super) whole_line: bool,
    pub(super) whole_word: bool,
}

/// One regex matching any of `patterns`.
pub(super) fn build(patterns: &[String], syntax: Syntax, how: Match) -> Result<Regex, String> {
    let mut alternatives = Vec::new();
    for p in patterns {
        let translated = match syntax {
            Syntax::Fixed => regex_lite::escape(p),
            Syntax::Basic | Syntax::Extended => {
                translate(p, syntax == Syntax::Extended).map_err(|e| format!("{p}: {e}"))?
            }
        };
        alternatives.push(format!("(?:{translated})"));
    }
    let mut all = alternatives.join("|");
    if how.whole_line {
        all = format!("^(?:{all})$");
    } else if how.whole_word {
        all = format!(r"\b{{start-half}}(?:{all})\b{{end-half}}");
    }
    RegexBuilder::new(&all)
        .case_insensitive(how.ignore_case)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string()
        })
}

/// A BRE (or, with `extended`, an ERE) in regex-lite's syntax.
pub(super) fn translate(pattern: &str, extended: bool) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    // At the start of the pattern, a group or an alternative: `*` is
    // literal there, and a BRE's `^` an anchor.
    let mut at_start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        // The operators, whether escaped (BRE) or bare (ERE).
        let op = if c == '\\' {
            let Some(&next) = chars.get(i) else {
                return Err("trailing backslash".into());
            };
            i += 1;
            match next {
                '(' | ')' | '{' | '}' | '|' | '+' | '?' if !extended => Some(next),
                '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                    out.push_str(&regex_lite::escape(&next.to_string()));
                    at_start = false;
                    continue;
                }
                '1'..='9' => return Err("back-references are not supported".into()),
                '<' | '>' | 'b' | 'B' | 'w' | 'W' | 's' | 'S' => {
                    out.push('\\');
                    out.push(next);
                    at_start = matches!(next, '<' | '>' | 'b' | 'B') && at_start;
                    continue;
                }
                '`' => {
                    out.push_str(r"\A");
                    continue;
                }
                '\'' => {
                    out.push_str(r"\z");
                    continue;
                }
                // `\.`, `\*`, and a stray `\d` meaning `d`, as GNU grep has it.
                other => {
                    out.push_str(&regex_lite::escape(&other.to_string()));
                    at_start = false;
                    continue;
                }
            }
        } else {
            match c {
                '(' | ')' | '{' | '}' | '|' | '+' | '?' if extended => Some(c),
                '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                    out.push('\\');
                    out.push(c);
                    at_start = false;
                    continue;
                }
                _ => None,
            }
        };
        match op {
            Some(o @ ('(' | '|')) => {
                out.push(o);
                at_start = true;
            }
            Some(')') => out.push(')'),
            Some(o @ ('+' | '?')) if at_start => out.push_str(&regex_lite::escape(&o.to_string())),
            Some(o @ ('+' | '?')) => out.push(o),
            Some('{') => match interval(&chars[i..], extended) {
                Some((text, used)) if !at_start => {
                    out.push_str(&text);
                    i += used;
                }
                _ if extended => out.push_str(r"\{"),
                _ => return Err("invalid interval".into()),
            },
            Some(o) => out.push_str(&regex_lite::escape(&o.to_string())),
            None => match c {
                '*' if at_start => out.push_str(r"\*"),
                '^' if at_start || extended => out.push('^'),
                '$' if extended || at_end(&chars[i..]) => out.push('$'),
                '[' => {
                    let (class, used) = bracket(&chars[i..])?;
                    out.push_str(&class);
                    i += used;
                    at_start = false;
                }
                '.' | '*' => {
                    out.push(c);
                    at_start = false;
                }
                _ => {
                    out.push_str(&regex_lite::escape(&c.to_string()));
                    at_start = false;
                }
            },
        }
    }
    Ok(out)
}

/// Whether a BRE's `$` before `rest` is an anchor: at the end of the
/// pattern, a group or an alternative.
fn at_end(rest: &[char]) -> bool {
    matches!(rest, [] | ['\\', ')' | '|', ..])
}

/// The interval after its `{`: `{N}`, `{N,}`, `{N,M}`, `{,M}`, closed by
/// `}` (ERE) or `\}` (BRE); its translation and the characters it used.
fn interval(rest: &[char], extended: bool) -> Option<(String, usize)> {
    let close: &[char] = if extended { &['}'] } else { &['\\', '}'] };
    let end = (0..rest.len()).find(|&k| rest[k..].starts_with(close))?;
    let body: String = rest[..end].iter().collect();
    let (min, max) = match body.split_once(',') {
        Some((min, max)) => (min, Some(max)),
        None => (body.as_str(), None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(min) || !max.is_none_or(digits) || (min.is_empty() && max.is_none_or(str::is_empty))
    {
        return None;
    }
    let min = if min.is_empty() { "0" } else { min };
    let text = match max {
        None => format!("{{{min}}}"),
        Some(max) => format!("{{{min},{max}}}"),
    };
    Some((text, end + close.len()))
}

/// The bracket expression after its `[`, in regex-lite's syntax, and the
/// characters it used: a backslash in it is literal, `]` first is literal,
/// `[:class:]` is kept.
fn bracket(rest: &[char]) -> Result<(String, usize), String> {
    let mut out = String::from("[");
    let mut i = 0;
    if rest.first() == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let first = i;
    loop {
        let Some(&c) = rest.get(i) else {
            return Err("unmatched [".into());
        };
        i += 1;
        match c {
            ']' if i - 1 > first => return Ok((out + "]", i)),
            '[' if matches!(rest.get(i), Some(':')) => {
                let end = (i + 1..rest.len())
                    .find(|&k| rest[k..].starts_with(&[':', ']']))
                    .ok_or("unmatched [")?;
                out.extend(&rest[i - 1..end + 2]);
                i = end + 2;
            }
            '[' if matches!(rest.get(i), Some('=' | '.')) => {
                return Err("[=c=] and [.c.] are not supported".into());
            }
            '\\' | '[' | ']' | '&' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(p: &str) -> String {
        translate(p, false).unwrap()
    }

    fn extended(p: &str) -> String {
        translate(p, true).unwrap()
    }

    #[test]
    fn bre_operators_are_escaped_and_bare_ones_literal() {
        assert_eq!(basic(r"\(ab\)\{2\}x\+y\?\|z"), r"(ab){2}x+y?|z");
        assert_eq!(basic("(a|b)+?{1}"), r"\(a\|b\)\+\?\{1\}");
        assert_eq!(basic(r"a\{,3\}"), "a{0,3}");
        assert_eq!(basic(r"a\.b*"), r"a\.b*");
    }

    #[test]
    fn anchors_and_stars_depend_on_where_they_are() {
        assert_eq!(basic("*a"), r"\*a");
        assert_eq!(basic("^*a"), r"^\*a");
        assert_eq!(basic(r"\(*a\)"), r"(\*a)");
        assert_eq!(basic("a^b$c$"), r"a\^b\$c$");
        assert_eq!(basic(r"\(a$\)"), r"(a$)");
        assert_eq!(extended("a|^b$"), "a|^b$");
    }

    #[test]
    fn ere_is_the_other_way_round() {
        assert_eq!(extended(r"(ab){2}x+y?|z"), r"(ab){2}x+y?|z");
        assert_eq!(extended(r"\(a\|b\)\+"), r"\(a\|b\)\+");
        assert_eq!(extended("a{x"), r"a\{x");
        assert_eq!(extended("a{,2}"), "a{0,2}");
        assert_eq!(extended("+a"), r"\+a");
    }

    #[test]
    fn brackets_keep_classes_and_take_backslashes_literally() {
        assert_eq!(basic(r"[\]"), r"[\\]");
        assert_eq!(basic("[]a-]"), r"[\]a-]");
        assert_eq!(basic("[^]x]"), r"[^\]x]");
        assert_eq!(basic("[[:space:][:digit:]]"), "[[:space:][:digit:]]");
        assert_eq!(basic("[a[b]"), r"[a\[b]");
        assert_eq!(basic(r"\<w\>"), r"\<w\>");
    }

    #[test]
    fn what_is_not_supported_says_so() {
        assert_eq!(
            translate(r"\(a\)\1", false).unwrap_err(),
            "back-references are not supported"
        );
        assert_eq!(translate("[ab", false).unwrap_err(), "unmatched [");
        assert_eq!(translate(r"a\", true).unwrap_err(), "trailing backslash");
        assert_eq!(translate(r"a\{x\}", false).unwrap_err(), "invalid interval");
        assert!(translate("[[=a=]]", false).is_err());
    }

    #[test]
    fn built_regexes_match_like_grep() {
        let re = |p: &str, s, how| build(&[p.to_string()], s, how).unwrap();
        let m = Match::default();
        assert!(re("a.c", Syntax::Fixed, m).is_match("xa.cx"));
        assert!(!re("a.c", Syntax::Fixed, m).is_match("abc"));
        let word = Match {
            whole_word: true,
            ..m
        };
        assert!(re("foo", Syntax::Basic, word).is_match("a foo."));
        assert!(!re("foo", Syntax::Basic, word).is_match("foobar"));
        assert!(re("@x", Syntax::Basic, word).is_match("a @x"));
        let line = Match {
            whole_line: true,
            ignore_case: true,
            ..m
        };
        assert!(re("a|b", Syntax::Extended, line).is_match("B"));
        assert!(!re("a|b", Syntax::Extended, line).is_match("ab"));
    }
}
