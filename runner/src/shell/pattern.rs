//! Shell patterns (`*`, `?`, `[...]`) for `case`, `${X#p}` and globbing.
//!
//! A pattern is a list of characters, each marked quoted or not: only
//! unquoted `*`, `?` and `[` are special.

use super::host::{Host, PathTest};

/// A pattern character and whether it was quoted.
pub(super) type PChar = (char, bool);

/// Whether the pattern has anything special in it.
pub(super) fn has_meta(p: &[PChar]) -> bool {
    p.iter().any(|(c, q)| !q && matches!(c, '*' | '?' | '['))
}

/// Whether `s` matches `p` whole.
pub(super) fn matches(p: &[PChar], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(('*', false)) => {
            let rest = &p[1..];
            (0..=s.len()).any(|i| matches(rest, &s[i..]))
        }
        Some(('?', false)) => !s.is_empty() && matches(&p[1..], &s[1..]),
        Some(('[', false)) => match bracket(&p[1..]) {
            Some((set, used)) => {
                !s.is_empty() && set.contains(s[0]) && matches(&p[1 + used..], &s[1..])
            }
            None => s.first() == Some(&'[') && matches(&p[1..], &s[1..]),
        },
        Some((c, _)) => s.first() == Some(c) && matches(&p[1..], &s[1..]),
    }
}

/// A bracket expression's set.
pub(super) struct Set {
    negated: bool,
    items: Vec<Item>,
}

enum Item {
    Char(char),
    Range(char, char),
    Class(String),
}

impl Set {
    fn contains(&self, c: char) -> bool {
        let hit = self.items.iter().any(|i| match i {
            Item::Char(x) => *x == c,
            Item::Range(a, b) => *a <= c && c <= *b,
            Item::Class(name) => match name.as_str() {
                "alpha" => c.is_alphabetic(),
                "digit" => c.is_ascii_digit(),
                "alnum" => c.is_alphanumeric(),
                "upper" => c.is_uppercase(),
                "lower" => c.is_lowercase(),
                "space" => c.is_whitespace(),
                "blank" => c == ' ' || c == '\t',
                "punct" => c.is_ascii_punctuation(),
                "xdigit" => c.is_ascii_hexdigit(),
                _ => false,
            },
        });
        hit != self.negated
    }
}

/// Parses what follows a `[`: the set and how many characters it used
/// (the closing `]` included), or `None` when it is not closed.
fn bracket(p: &[PChar]) -> Option<(Set, usize)> {
    let mut i = 0;
    let mut negated = false;
    if let Some(('!' | '^', false)) = p.first() {
        negated = true;
        i = 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < p.len() {
        let (c, q) = p[i];
        if c == ']' && !q && !first {
            return Some((Set { negated, items }, i + 1));
        }
        first = false;
        if c == '[' && !q && p.get(i + 1) == Some(&(':', false)) {
            let rest: String = p[i + 2..].iter().map(|(c, _)| c).collect();
            if let Some(end) = rest.find(":]") {
                items.push(Item::Class(rest[..end].to_string()));
                i += 2 + rest[..end].chars().count() + 2;
                continue;
            }
        }
        if p.get(i + 1) == Some(&('-', false))
            && let Some((hi, _)) = p.get(i + 2)
            && *hi != ']'
        {
            items.push(Item::Range(c, *hi));
            i += 3;
            continue;
        }
        items.push(Item::Char(c));
        i += 1;
    }
    None
}

/// Expands a glob against the host's directories: the sorted paths, or
/// `None` when nothing matches (the word is then kept as written).
pub(super) fn glob(host: &mut dyn Host, cwd: &str, pattern: &[PChar]) -> Option<Vec<String>> {
    let absolute = pattern.first().map(|(c, _)| *c) == Some('/');
    let comps: Vec<&[PChar]> = pattern
        .split(|(c, _)| *c == '/')
        .filter(|c| !c.is_empty())
        .collect();
    // (shown, absolute path) pairs.
    let mut found: Vec<(String, String)> = vec![if absolute {
        ("/".to_string(), "/".to_string())
    } else {
        (String::new(), cwd.to_string())
    }];
    for comp in comps {
        let mut next = Vec::new();
        for (shown, abs) in &found {
            let join = |base: &str, name: &str| {
                if base.is_empty() || base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if has_meta(comp) {
                let Ok(mut names) = host.list_dir(abs) else {
                    continue;
                };
                names.sort();
                let dot_ok =
                    comp.first() == Some(&('.', false)) || comp.first() == Some(&('.', true));
                for n in names {
                    if n.starts_with('.') && !dot_ok {
                        continue;
                    }
                    let chars: Vec<char> = n.chars().collect();
                    if matches(comp, &chars) {
                        next.push((join(shown, &n), join(abs, &n)));
                    }
                }
            } else {
                let name: String = comp.iter().map(|(c, _)| c).collect();
                let path = join(abs, &name);
                if host.test(&path, PathTest::Exists) {
                    next.push((join(shown, &name), path));
                }
            }
        }
        found = next;
    }
    if pattern.last().map(|(c, _)| *c) == Some('/') {
        found.retain(|(_, abs)| host.test(abs, PathTest::Dir));
        for (shown, _) in &mut found {
            shown.push('/');
        }
    }
    let mut out: Vec<String> = found.into_iter().map(|(s, _)| s).collect();
    out.sort();
    (!out.is_empty()).then_some(out)
}
