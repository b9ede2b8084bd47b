//! `wc`: newline, word, character and byte counts, printed as GNU wc
//! prints them: in the order lines, words, chars, bytes whatever the order
//! of the flags; a `total` line for more than one input; right-aligned to
//! one width, which is 1 for a single count of a single input (`wc -l < f`
//! prints just the number) and otherwise the digits of the files' total
//! size, at least 7 when stdin is read (its size is not known beforehand).
//! Words are runs of bytes that are not ASCII white space; characters are
//! UTF-8 characters.

use crate::cli::{Io, Result};
use crate::opts::{self, Flag};
use crate::text;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "wc",
    usage: "[OPTION]... [FILE]...",
    about: "Print line, word and byte counts of each FILE (- or none: stdin).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("l", "l", "lines", "count lines (newlines)"),
    Flag::new("w", "w", "words", "count words"),
    Flag::new("m", "m", "chars", "count UTF-8 characters"),
    Flag::new("c", "c", "bytes", "count bytes"),
];

/// Counts of one input, in output order: lines, words, chars, bytes.
type Counts = [u64; 4];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let mut shown: Vec<usize> = ["l", "w", "m", "c"]
        .iter()
        .enumerate()
        .filter(|(_, k)| parsed.has(k))
        .map(|(i, _)| i)
        .collect();
    if shown.is_empty() {
        shown = vec![0, 1, 3];
    }
    let files = &parsed.operands;
    let width = width(files, shown.len());
    let mut total: Counts = [0; 4];
    text::each_input(io, files, |name, input, io| {
        let counts = count(input, name)?;
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
        let name = if files.is_empty() { None } else { Some(name) };
        io.line(row(&counts, &shown, width, name))
    })?;
    if files.len() > 1 {
        io.line(row(&total, &shown, width, Some("total")))?;
    }
    Ok(())
}

/// GNU's column width: 1 for one count of one input, else enough for the
/// total size of the files (stdin counts as at least 7 digits).
fn width(files: &[String], counts: usize) -> usize {
    let inputs = files.len().max(1);
    if inputs == 1 && counts == 1 {
        return 1;
    }
    let mut minimum = 1;
    let mut size = 0u64;
    if files.is_empty() {
        minimum = 7;
    }
    for name in files {
        if name == "-" {
            minimum = 7;
        } else if let Ok(m) = std::fs::metadata(name) {
            if m.is_file() {
                size += m.len();
            } else {
                minimum = 7;
            }
        }
    }
    size.to_string().len().max(minimum)
}

fn count(input: &mut dyn std::io::BufRead, name: &str) -> Result<Counts> {
    let mut counts: Counts = [0; 4];
    let mut in_word = false;
    loop {
        let buf = match input.fill_buf() {
            Ok([]) => return Ok(counts),
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(text::read_failed(name, &e)),
        };
        for &b in buf {
            counts[0] += u64::from(b == b'\n');
            let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
            counts[1] += u64::from(!space && !in_word);
            in_word = !space;
            // Every byte but a UTF-8 continuation byte starts a character.
            counts[2] += u64::from(b & 0xc0 != 0x80);
        }
        let n = buf.len();
        counts[3] += n as u64;
        input.consume(n);
    }
}

fn row(counts: &Counts, shown: &[usize], width: usize, name: Option<&str>) -> String {
    let mut cells: Vec<String> = shown
        .iter()
        .map(|&i| format!("{:>width$}", counts[i]))
        .collect();
    if let Some(name) = name {
        cells.push(name.to_string());
    }
    cells.join(" ")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::tools::{arg, run_for_test};

    fn wc(args: &[&str], stdin: &[u8]) -> String {
        crate::tools::run_ok("wc", args, stdin)
    }

    #[test]
    fn stdin_counts_are_seven_wide_unless_there_is_one() {
        // printf 'hello world\nfoo\n' | wc
        let text = b"hello world\nfoo\n";
        assert_eq!(wc(&[], text), "      2       3      16\n");
        assert_eq!(wc(&["-l"], text), "2\n");
        assert_eq!(wc(&["-cl"], text), "      2      16\n");
        assert_eq!(wc(&["-w", "-"], text), "3 -\n");
        assert_eq!(wc(&["-c"], b""), "0\n");
    }

    #[test]
    fn words_lines_and_utf8_characters() {
        assert_eq!(wc(&["-w"], b"  a\tb\n\n c  "), "3\n");
        assert_eq!(wc(&["-l"], b"no newline"), "0\n");
        assert_eq!(wc(&["-m"], "h\u{e9}!\n".as_bytes()), "4\n");
        assert_eq!(wc(&["-c"], "h\u{e9}!\n".as_bytes()), "5\n");
    }

    #[test]
    fn files_are_as_wide_as_their_total_size_with_a_total_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "one two\nthree\n").unwrap();
        fs::write(dir.path().join("b"), "x\n").unwrap();
        let (a, b) = (arg(dir.path(), "a"), arg(dir.path(), "b"));
        // wc a b: the total size is 16 bytes, two digits.
        assert_eq!(
            wc(&[&a, &b], b""),
            format!(" 2  3 14 {a}\n 1  1  2 {b}\n 3  4 16 total\n")
        );
        assert_eq!(wc(&["-l", &a], b""), format!("2 {a}\n"));
        assert_eq!(wc(&[&a], b""), format!(" 2  3 14 {a}\n"));
        assert_eq!(
            wc(&["-l", &a, "-"], b"s\n"),
            format!("      2 {a}\n      1 -\n      3 total\n")
        );
    }

    #[test]
    fn missing_files_are_reported_and_counted_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "x\n").unwrap();
        let (a, missing) = (arg(dir.path(), "a"), arg(dir.path(), "missing"));
        let (code, out, err) = run_for_test("wc", &["-l", &a, &missing], b"");
        assert_eq!(code, 1);
        assert_eq!(out, format!("1 {a}\n1 total\n"));
        assert_eq!(err, format!("wc: {missing}: No such file or directory\n"));
        let (code, _, err) = run_for_test("wc", &["-L"], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("wc: unknown option -L;"), "{err}");
    }
}
