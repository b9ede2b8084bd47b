//! `grep`: prints the lines of each input that match any PATTERN, with GNU
//! grep's flags, output and exit status: 0 when a line was selected, 1 when
//! none was, 2 when an input could not be read (even if lines were
//! selected, unless `-q` found one first). File names prefix the lines when
//! there is more than one FILE (`-H` always, `-h` never); stdin is called
//! `(standard input)`. A PATTERN with newlines is one pattern per line.
//!
//! `pattern.rs` turns the patterns into one regex (BRE by default, `-E`
//! ERE, `-F` fixed strings). Not supported: `-r`, `-P`, `-f FILE`, context
//! (`-A`/`-B`/`-C`), binary-file detection (every input is text).

mod pattern;

use std::io::BufRead;

use regex_lite::Regex;

use crate::cli::{Error, Io, Result, usage};
use crate::opts::{self, Flag};
use crate::text::{self, chomp, next_line};
use crate::tools::Tool;
use pattern::{Match, Syntax};

pub(crate) const TOOL: Tool = Tool {
    name: "grep",
    usage: "[OPTION]... PATTERN [FILE]... | -e PATTERN... [FILE]...",
    about: "Print the lines of each FILE (- or none: stdin) that match a PATTERN.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("e", "e", "regexp", "a pattern (may be repeated)").takes("PATTERN"),
    Flag::new(
        "G",
        "G",
        "basic-regexp",
        "patterns are basic regexes (the default)",
    ),
    Flag::new("E", "E", "extended-regexp", "patterns are extended regexes"),
    Flag::new("F", "F", "fixed-strings", "patterns are plain strings"),
    Flag::new("i", "iy", "ignore-case", "ignore case (ASCII letters)"),
    Flag::new(
        "v",
        "v",
        "invert-match",
        "select the lines that do not match",
    ),
    Flag::new("w", "w", "word-regexp", "match whole words only"),
    Flag::new("x", "x", "line-regexp", "match whole lines only"),
    Flag::new(
        "c",
        "c",
        "count",
        "print the number of selected lines per FILE",
    ),
    Flag::new(
        "l",
        "l",
        "files-with-matches",
        "print only the names of FILEs with selected lines",
    ),
    Flag::new(
        "L",
        "L",
        "files-without-match",
        "print only the names of FILEs without selected lines",
    ),
    Flag::new(
        "n",
        "n",
        "line-number",
        "prefix lines with their line number",
    ),
    Flag::new(
        "o",
        "o",
        "only-matching",
        "print only the matched parts, one a line",
    ),
    Flag::new(
        "q",
        "q",
        "quiet",
        "print nothing; exit 0 at the first selected line",
    ),
    Flag::new(
        "s",
        "s",
        "no-messages",
        "say nothing about unreadable FILEs",
    ),
    Flag::new("H", "H", "with-filename", "prefix lines with the FILE name"),
    Flag::new(
        "h",
        "h",
        "no-filename",
        "never prefix lines with the FILE name",
    ),
    Flag::new(
        "m",
        "m",
        "max-count",
        "stop reading a FILE after NUM selected lines",
    )
    .takes("NUM"),
    Flag::new("r", "rR", "recursive", "recursive").refused("name the files to search"),
    Flag::new("P", "P", "perl-regexp", "Perl").refused("use -E (extended regexes)"),
];

/// What to print, from the flags.
struct Grep {
    regex: Regex,
    invert: bool,
    count: bool,
    /// `-l` (`Some(true)`) or `-L` (`Some(false)`).
    list: Option<bool>,
    numbers: bool,
    only: bool,
    quiet: bool,
    names: bool,
    max: Option<u64>,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let mut operands = parsed.operands.iter();
    let given: Vec<&str> = parsed.values("e").collect();
    let sources: Vec<&str> = if given.is_empty() {
        match operands.next() {
            Some(p) => vec![p.as_str()],
            None => return Err(usage("no PATTERN given")),
        }
    } else {
        given
    };
    let patterns: Vec<String> = sources
        .iter()
        .flat_map(|p| p.split('\n'))
        .map(str::to_string)
        .collect();
    let files: Vec<String> = operands.cloned().collect();
    let syntax = match parsed.last_of(&["G", "E", "F"]) {
        Some("E") => Syntax::Extended,
        Some("F") => Syntax::Fixed,
        _ => Syntax::Basic,
    };
    let how = Match {
        ignore_case: parsed.has("i"),
        whole_line: parsed.has("x"),
        whole_word: parsed.has("w"),
    };
    let regex = pattern::build(&patterns, syntax, how).map_err(usage)?;
    let max = match parsed.value("m") {
        Some(m) => Some(text::count(m, "matches")?),
        None => None,
    };
    let grep = Grep {
        regex,
        invert: parsed.has("v"),
        count: parsed.has("c"),
        list: match parsed.last_of(&["l", "L"]) {
            Some("l") => Some(true),
            Some(_) => Some(false),
            None => None,
        },
        numbers: parsed.has("n"),
        only: parsed.has("o"),
        quiet: parsed.has("q"),
        names: match parsed.last_of(&["H", "h"]) {
            Some("H") => true,
            Some(_) => false,
            None => files.len() > 1,
        },
        max,
    };
    let mut selected_any = false;
    // `-s`: messages about inputs go nowhere (the exit status still says).
    let stderr = parsed.has("s").then(|| io.take_stderr());
    let result = text::each_input(io, &files, |name, input, io| {
        let selected = grep.search(name, input, io)?;
        selected_any |= selected;
        Ok(())
    });
    if let Some(stderr) = stderr {
        io.put_stderr(stderr);
    }
    result?;
    if io.has_failed() {
        Err(Error::Exit(2))
    } else if selected_any {
        Ok(())
    } else {
        Err(Error::Exit(1))
    }
}

impl Grep {
    /// Searches one input; whether it had a selected line.
    fn search(&self, name: &str, input: &mut dyn BufRead, io: &mut Io<'_>) -> Result<bool> {
        let shown = if name == "-" {
            "(standard input)"
        } else {
            name
        };
        let mut line = Vec::new();
        let (mut number, mut selected) = (0u64, 0u64);
        let mut out = Vec::new();
        while self.max.is_none_or(|m| selected < m) && next_line(input, &mut line, name)? {
            number += 1;
            let l = chomp(&line);
            let text = String::from_utf8_lossy(l);
            if self.regex.is_match(&text) == self.invert {
                continue;
            }
            selected += 1;
            if self.quiet {
                // Found: nothing else matters, unreadable FILEs included.
                return Err(Error::Exit(0));
            }
            if self.list.is_some() {
                break;
            }
            if self.count {
                continue;
            }
            let mut prefix = Vec::new();
            if self.names {
                prefix.extend_from_slice(format!("{shown}:").as_bytes());
            }
            if self.numbers {
                prefix.extend_from_slice(format!("{number}:").as_bytes());
            }
            out.clear();
            if !self.only {
                out.extend_from_slice(&prefix);
                out.extend_from_slice(l);
                out.push(b'\n');
            } else if !self.invert {
                for m in self.regex.find_iter(&text).filter(|m| !m.is_empty()) {
                    out.extend_from_slice(&prefix);
                    out.extend_from_slice(m.as_str().as_bytes());
                    out.push(b'\n');
                }
            }
            io.out(&out)?;
        }
        match self.list {
            Some(with) if with == (selected > 0) => io.line(shown)?,
            Some(_) => {}
            None if self.count && self.names => io.line(format!("{shown}:{selected}"))?,
            None if self.count => io.line(selected)?,
            None => {}
        }
        Ok(selected > 0)
    }
}

#[cfg(test)]
mod tests;
