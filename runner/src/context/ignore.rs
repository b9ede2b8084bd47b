//! `.kilnignore` / `.dockerignore` rules, with Docker's semantics.
//!
//! - One pattern per line; blank lines and lines starting with `#` are
//!   skipped; surrounding whitespace is trimmed.
//! - Patterns are relative to the context root: a leading `/` is dropped and
//!   the pattern is cleaned (`./a/../b` is `b`).
//! - `*` and `?` match within one path component, `[...]` is a class, `**`
//!   matches any number of components, `\` escapes.
//! - A pattern that matches a directory excludes everything inside it.
//! - `!pattern` re-includes; the last matching line wins.

use globset::{GlobBuilder, GlobMatcher};

// Patterns are cleaned like paths: Go's `filepath.Clean`, from the root.
use super::clean;

/// A compiled ignore file.
#[derive(Debug, Default, Clone)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: GlobMatcher,
    exception: bool,
}

/// A line that is not a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern {pattern:?}: {reason}")]
pub struct IgnoreError {
    /// 1-based line number.
    pub line: usize,
    /// The pattern.
    pub pattern: String,
    /// Why it is invalid.
    pub reason: String,
}

impl IgnoreRules {
    /// Parses the text of an ignore file.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line_text.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line_text),
            };
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|e| IgnoreError {
                    line: i + 1,
                    pattern: pattern.to_string(),
                    reason: e.kind().to_string(),
                })?;
            rules.push(Rule {
                matcher: glob.compile_matcher(),
                exception,
            });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative, `/`-separated, no leading `/`) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.exception != excluded {
                // This rule cannot change the outcome.
                continue;
            }
            if matches_or_parent_matches(&rule.matcher, path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }
}

fn matches_or_parent_matches(m: &GlobMatcher, path: &str) -> bool {
    if m.is_match(path) {
        return true;
    }
    let mut end = 0;
    while let Some(i) = path[end..].find('/') {
        end += i;
        if m.is_match(&path[..end]) {
            return true;
        }
        end += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).unwrap()
    }

    #[test]
    fn follows_dockerignore_semantics() {
        let r =
            rules("# comment\n\n  *.log \n/build\ntarget/**/tmp\n!important.log\nsecret?.txt\n");
        assert!(r.is_excluded("debug.log"));
        assert!(
            !r.is_excluded("sub/debug.log"),
            "* does not cross directories"
        );
        assert!(!r.is_excluded("important.log"));
        assert!(r.is_excluded("build"));
        assert!(
            r.is_excluded("build/out/bin"),
            "a matched directory excludes its contents"
        );
        assert!(r.is_excluded("target/a/b/tmp/x"));
        assert!(r.is_excluded("target/tmp"));
        assert!(r.is_excluded("secret1.txt"));
        assert!(!r.is_excluded("secret10.txt"));
        assert!(!r.is_excluded("src/main.rs"));
    }

    #[test]
    fn last_match_wins_and_exceptions_reach_inside_excluded_dirs() {
        let r = rules("docs\n!docs/keep.md\n");
        assert!(r.is_excluded("docs/other.md"));
        assert!(!r.is_excluded("docs/keep.md"));
        let r = rules("!a.txt\n*.txt\n");
        assert!(r.is_excluded("a.txt"));
        let r = rules("**/*.tmp\n");
        assert!(r.is_excluded("x.tmp") && r.is_excluded("a/b/x.tmp"));
    }

    #[test]
    fn cleans_patterns() {
        let r = rules("./a/../b/\n/c/./d\n");
        assert!(r.is_excluded("b/x"));
        assert!(r.is_excluded("c/d"));
        assert!(!r.is_excluded("a"));
    }

    #[test]
    fn reports_bad_patterns_with_their_line() {
        let e = IgnoreRules::parse("ok\n[unclosed\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
