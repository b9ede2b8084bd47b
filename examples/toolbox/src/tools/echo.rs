//! `echo`: prints its arguments separated by spaces. Like GNU echo, leading
//! arguments made only of `n`, `e` and `E` flags are options (`-n` no
//! newline, `-e` interpret backslash escapes, `-E` do not); anything else,
//! `--help` and `-x` included, is printed as it is, so echo never fails on
//! its arguments.

use crate::cli::{Io, Result, write_error};
use crate::opts::Flag;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "echo",
    usage: "[-neE] [STRING]...",
    about: "Print the STRINGs, separated by spaces, and a newline.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("n", "n", "", "no newline at the end"),
    Flag::new(
        "e",
        "e",
        "",
        "interpret \\n, \\t, \\\\, \\0NNN, \\xHH, \\c and the other escapes",
    ),
    Flag::new("E", "E", "", "do not interpret escapes (the default)"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let mut newline = true;
    let mut escapes = false;
    let mut words = args;
    while let Some(first) = words.first() {
        let Some(letters) = first.strip_prefix('-') else {
            break;
        };
        if letters.is_empty() || !letters.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
            break;
        }
        for c in letters.chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        words = &words[1..];
    }
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if escapes {
            if unescape(word.as_bytes(), &mut out) == Flow::Stop {
                return io.stdout.write_all(&out).map_err(write_error);
            }
        } else {
            out.extend_from_slice(word.as_bytes());
        }
    }
    if newline {
        out.push(b'\n');
    }
    io.stdout.write_all(&out).map_err(write_error)
}

#[derive(PartialEq)]
enum Flow {
    Go,
    /// `\c`: nothing more is printed, not even the newline.
    Stop,
}

fn unescape(word: &[u8], out: &mut Vec<u8>) -> Flow {
    let mut i = 0;
    while i < word.len() {
        let b = word[i];
        i += 1;
        if b != b'\\' || i == word.len() {
            out.push(b);
            continue;
        }
        let c = word[i];
        i += 1;
        let simple = match c {
            b'\\' => Some(b'\\'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'e' => Some(0x1b),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        match c {
            b'c' => return Flow::Stop,
            b'0' => {
                // Up to three octal digits after the 0.
                let (value, used) = digits(&word[i..], 8, 3);
                out.push(value as u8);
                i += used;
            }
            b'x' => {
                let (value, used) = digits(&word[i..], 16, 2);
                if used == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(value as u8);
                    i += used;
                }
            }
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Flow::Go
}

/// The value of up to `max` leading digits in `radix`, and how many there were.
fn digits(bytes: &[u8], radix: u32, max: usize) -> (u32, usize) {
    let mut value = 0u32;
    let mut used = 0;
    for &b in bytes.iter().take(max) {
        match char::from(b).to_digit(radix) {
            Some(d) => {
                value = value * radix + d;
                used += 1;
            }
            None => break,
        }
    }
    (value & 0xff, used)
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    fn echo(args: &[&str]) -> String {
        let (code, out, err) = run_for_test("echo", args, b"");
        assert_eq!((code, err.as_str()), (0, ""));
        out
    }

    #[test]
    fn joins_words_with_spaces_and_a_newline() {
        assert_eq!(echo(&["a", "b  c"]), "a b  c\n");
        assert_eq!(echo(&[]), "\n");
    }

    #[test]
    fn dash_n_drops_the_newline_and_other_dashes_are_words() {
        assert_eq!(echo(&["-n", "x"]), "x");
        assert_eq!(echo(&["-nn", "-x", "-n"]), "-x -n");
        assert_eq!(echo(&["--help"]), "--help\n");
        assert_eq!(echo(&["-"]), "-\n");
    }

    #[test]
    fn dash_e_interprets_escapes_and_backslash_c_stops() {
        assert_eq!(echo(&["-e", "a\\tb\\\\n\\x41\\0101"]), "a\tb\\nAA\n");
        assert_eq!(echo(&["-e", "a\\cb", "c"]), "a");
        assert_eq!(echo(&["a\\tb"]), "a\\tb\n");
        assert_eq!(echo(&["-eE", "a\\tb"]), "a\\tb\n");
        assert_eq!(echo(&["-e", "\\q\\x"]), "\\q\\x\n");
    }
}
