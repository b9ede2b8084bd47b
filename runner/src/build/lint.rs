//! BuildKit's `UndefinedVar` check: a variable an instruction uses that
//! no `ARG` or `ENV` declared (nor the base image's environment, nor the
//! platform arguments) is almost always a typo. It expands to nothing, as in
//! docker, and the build warns once per line and name:
//!
//! `UndefinedVar: Usage of undefined variable '$VERSON' (did you mean $VERSION?) (Kilnfile:4)`
//!
//! A use with a modifier (`${X:-default}`, `${X+word}`, `${X?message}`) is
//! not warned about, and neither is a RUN's command line: a shell expands
//! that when the step runs.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::frontend::{Diagnostic, Kilnfile, Word};

use super::steps::Steps;

/// The warnings given so far in one build, by line and name.
#[derive(Default)]
pub(super) struct UndefinedVars(Mutex<BTreeSet<(usize, String)>>);

impl UndefinedVars {
    /// Expands `word` with `lookup`, warning about each name it uses
    /// without a modifier that is not in `names` (the names in scope);
    /// `global` are the ARGs declared before the first FROM, which a stage
    /// must declare again to use.
    pub(super) fn expand<'a, 'n>(
        &self,
        steps: &Steps<'_>,
        kf: &Kilnfile,
        word: &Word,
        lookup: &dyn Fn(&str) -> Option<&'a str>,
        names: &mut dyn Iterator<Item = &'n str>,
        global: &[(String, Option<String>)],
    ) -> Result<String, Diagnostic> {
        let (text, unset) = kf.expand_noting(word, lookup)?;
        if unset.is_empty() {
            return Ok(text);
        }
        let declared: Vec<&str> = names.collect();
        let (line, _) = kf.source.line_col(word.span.start);
        for name in unset {
            if declared.contains(&name.as_str())
                || !self
                    .0
                    .lock()
                    .expect("lint lock")
                    .insert((line, name.clone()))
            {
                continue;
            }
            let hint = if global.iter().any(|(g, _)| *g == name) {
                format!(
                    " (an ARG declared before FROM: declare it again with `ARG {name}` in the stage to use it here)"
                )
            } else {
                suggestion(&name, &declared)
                    .map(|s| format!(" (did you mean ${s}?)"))
                    .unwrap_or_default()
            };
            steps.warn(&format!(
                "UndefinedVar: Usage of undefined variable '${name}'{hint} ({}:{line})",
                kf.source.name()
            ));
        }
        Ok(text)
    }
}

/// The declared name closest to `name`, when it is close: the same but for
/// case, or at most two edits away (one for short names).
fn suggestion<'n>(name: &str, declared: &[&'n str]) -> Option<&'n str> {
    let limit = if name.len() <= 4 { 1 } else { 2 };
    declared
        .iter()
        .map(|d| {
            let cost = if d.eq_ignore_ascii_case(name) {
                0
            } else {
                edits(name, d)
            };
            (cost, *d)
        })
        .filter(|(cost, _)| *cost <= limit)
        .min()
        .map(|(_, d)| d)
}

/// Levenshtein distance between `a` and `b`.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_declared_names() {
        let declared = ["VERSION", "PATH", "NODE_ENV"];
        assert_eq!(suggestion("VERSON", &declared), Some("VERSION"));
        assert_eq!(suggestion("version", &declared), Some("VERSION"));
        assert_eq!(suggestion("PTH", &declared), Some("PATH"));
        assert_eq!(suggestion("HOME", &declared), None);
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "ab"), 2);
    }
}
