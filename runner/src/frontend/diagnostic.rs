//! Errors that point into a Kilnfile: `FILE:LINE:COL: message`, then the line
//! itself with a caret under the offending text, the way rustc shows them.
//!
//! Every frontend error, and every error the builder finds while expanding or
//! checking an instruction, is a [`Diagnostic`], so a user always learns where
//! the problem is and what was expected.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A byte range in a Kilnfile's text.
pub type Span = Range<usize>;

/// The text of a Kilnfile with its display name, for turning spans into
/// line/column pairs and snippets.
#[derive(Clone, Debug)]
pub struct Source {
    name: Arc<str>,
    text: Arc<str>,
}

impl Source {
    /// A source named `name` (a path as the user gave it) with contents `text`.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The name shown in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text of `span`, clamped to the source.
    pub fn slice(&self, span: &Span) -> &str {
        let end = span.end.min(self.text.len());
        let start = span.start.min(end);
        self.text.get(start..end).unwrap_or("")
    }

    /// 1-based line and column (in characters) of byte offset `pos`.
    pub fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = floor_char_boundary(&self.text, pos.min(self.text.len()));
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..pos].chars().count() + 1;
        (line, col)
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        self.text
            .split('\n')
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// A diagnostic at `span` saying `message`.
    pub fn error(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        let line_text = self.line_text(line).to_string();
        // Underline the span's part on its first line, at least one caret.
        let line_start_byte = self.text[..floor_char_boundary(&self.text, span.start)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line_end_byte = line_start_byte + line_text.len();
        let underline_end = span.end.clamp(span.start, line_end_byte);
        let width = self
            .text
            .get(span.start.min(line_end_byte)..underline_end)
            .map_or(0, |s| s.chars().count())
            .max(1);
        Diagnostic {
            file: self.name.to_string(),
            line,
            column,
            width,
            line_text,
            message: message.into(),
        }
    }

    /// A diagnostic at 1-based `line` and `column` (for errors whose byte
    /// offset is unknown).
    pub fn error_at(&self, line: usize, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.name.to_string(),
            line,
            column,
            width: 1,
            line_text: self.line_text(line).to_string(),
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error located in a Kilnfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The Kilnfile's name as the user gave it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// How many characters to underline.
    pub width: usize,
    /// The text of the line, for the snippet.
    pub line_text: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Widest snippet line shown, in characters. A longer line (a 120 KB
/// one-line Kilnfile) is shown as a window around the column, so an error
/// never floods the terminal.
const MAX_SNIPPET_CHARS: usize = 120;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if !self.line_text.is_empty() {
            let gutter = self.line.to_string().len();
            let chars: Vec<char> = self.line_text.chars().collect();
            let col = self.column.saturating_sub(1).min(chars.len());
            // The window of the line shown: all of it when it fits.
            let (start, end) = if chars.len() <= MAX_SNIPPET_CHARS {
                (0, chars.len())
            } else {
                let start = col.saturating_sub(MAX_SNIPPET_CHARS / 3);
                (start, (start + MAX_SNIPPET_CHARS).min(chars.len()))
            };
            let lead = if start > 0 { "..." } else { "" };
            let tail = if end < chars.len() { "..." } else { "" };
            let shown: String = chars[start..end].iter().collect();
            let pad: String = lead
                .chars()
                .map(|_| ' ')
                .chain(
                    chars[start..col]
                        .iter()
                        .map(|&c| if c == '\t' { '\t' } else { ' ' }),
                )
                .collect();
            let width = self.width.min(end.saturating_sub(col)).max(1);
            write!(
                f,
                "\n{:gutter$} |\n{} | {lead}{shown}{tail}\n{:gutter$} | {}{}",
                "",
                self.line,
                "",
                pad,
                "^".repeat(width)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let src = Source::new("Kilnfile", "FROM scratch\nCOPY  a  b\n");
        let d = src.error(19..20, "no such file");
        assert_eq!((d.line, d.column), (2, 7));
        assert_eq!(
            d.to_string(),
            "Kilnfile:2:7: no such file\n  |\n2 | COPY  a  b\n  |       ^"
        );
    }

    #[test]
    fn a_very_long_line_is_shown_as_a_window_around_the_column() {
        let text = format!("WORKDIR {}^{}\n", "a".repeat(100_000), "b".repeat(100_000));
        let src = Source::new("K", text);
        let d = src.error(100_008..100_009, "here");
        let shown = d.to_string();
        assert!(shown.len() < 400, "{} bytes", shown.len());
        let lines: Vec<&str> = shown.lines().collect();
        // The caret is under the '^' of the text.
        let at = lines[3].find('^').unwrap();
        assert_eq!(&lines[2][at..at + 1], "^", "{shown}");
        assert!(lines[2].ends_with("..."), "{shown}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = Source::new("K", "LABEL é=x y\n");
        assert_eq!(src.line_col(10), (1, 10));
    }
}
