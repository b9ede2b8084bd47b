//! `tr`: translates, deletes or squeezes bytes of stdin, like GNU tr:
//! SET1 to SET2 (SET2 repeats its last byte to be as long as SET1), `-d`
//! deletes SET1, `-s` squeezes runs of one byte of the last SET into one,
//! `-c` uses every byte not in SET1. SETs know ranges (`a-z`), escapes
//! (`\n`, `\t`, `\\`, `\r`, `\NNN` octal, ...) and classes (`[:upper:]`,
//! `[:lower:]`, `[:digit:]`, `[:space:]`, `[:alpha:]`, `[:alnum:]`,
//! `[:blank:]`, `[:punct:]`, `[:xdigit:]`, `[:cntrl:]`, `[:print:]`,
//! `[:graph:]`, all ASCII). Not supported: `[c*N]`, `[=c=]`.

use crate::cli::{COPY_BUFFER, Io, Result, quote, usage};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "tr",
    usage: "[OPTION]... SET1 [SET2]",
    about: "Translate, delete (-d) or squeeze (-s) bytes of stdin to stdout.",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new("d", "d", "delete", "delete the bytes in SET1"),
    Flag::new(
        "s",
        "s",
        "squeeze-repeats",
        "squeeze runs of a byte of the last SET into one",
    ),
    Flag::new("c", "cC", "complement", "SET1 is every byte not in it"),
];

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, args)?;
    let (delete, squeeze) = (parsed.has("d"), parsed.has("s"));
    let sets = &parsed.operands;
    let wanted = if delete == squeeze { 2 } else { 1 };
    let allowed = if delete { wanted } else { 2 };
    if sets.len() < wanted {
        return Err(usage(match sets.first() {
            None => "missing operand".to_string(),
            Some(s) => format!("missing operand after {}", quote(s)),
        }));
    }
    if sets.len() > allowed {
        return Err(usage(format!("extra operand {}", quote(&sets[allowed]))));
    }
    let mut set1 = expand(&sets[0])?;
    if parsed.has("c") {
        set1 = (0..=255u8).filter(|b| !set1.contains(b)).collect();
    }
    let set2 = match sets.get(1) {
        Some(s) => Some(expand(s)?),
        None => None,
    };
    // What each byte becomes; `None` deletes it.
    let mut map: [Option<u8>; 256] = std::array::from_fn(|b| Some(b as u8));
    let mut squeezed = [false; 256];
    if delete {
        for &b in &set1 {
            map[usize::from(b)] = None;
        }
    } else if let Some(set2) = &set2 {
        let Some(&last) = set2.last() else {
            return Err(usage("when translating, SET2 must not be empty"));
        };
        for (i, &b) in set1.iter().enumerate() {
            map[usize::from(b)] = Some(set2.get(i).copied().unwrap_or(last));
        }
    }
    if squeeze {
        for &b in set2.as_ref().unwrap_or(&set1) {
            squeezed[usize::from(b)] = true;
        }
    }
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut out = Vec::with_capacity(COPY_BUFFER);
    let mut last: Option<u8> = None;
    loop {
        let n = match io.stdin.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::text::read_failed("standard input", &e)),
        };
        out.clear();
        for &b in &buf[..n] {
            let Some(c) = map[usize::from(b)] else {
                continue;
            };
            if squeezed[usize::from(c)] && last == Some(c) {
                continue;
            }
            out.push(c);
            last = Some(c);
        }
        io.out(&out)?;
    }
}

/// The bytes a SET stands for, in order.
fn expand(spec: &str) -> Result<Vec<u8>> {
    let s = spec.as_bytes();
    let mut set = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"[:")
            && let Some(len) = s[i + 2..].windows(2).position(|w| w == b":]")
        {
            let name = &spec[i + 2..i + 2 + len];
            set.extend((0..=255u8).filter(|&b| in_class(name, b).unwrap_or(false)));
            if in_class(name, 0).is_none() {
                return Err(usage(format!("invalid character class {}", quote(name))));
            }
            i += len + 4;
            continue;
        }
        let (first, next) = one(s, i);
        if next + 1 < s.len() && s[next] == b'-' {
            let (last, after) = one(s, next + 1);
            if first > last {
                return Err(usage(format!(
                    "range-endpoints of {} are in reverse collating sequence order",
                    quote(&spec[i..after])
                )));
            }
            set.extend(first..=last);
            i = after;
        } else {
            set.push(first);
            i = next;
        }
    }
    Ok(set)
}

/// The byte at `s[i]`, an escape maybe, and where the next one starts.
fn one(s: &[u8], i: usize) -> (u8, usize) {
    if s[i] != b'\\' || i + 1 == s.len() {
        return (s[i], i + 1);
    }
    let c = s[i + 1];
    let simple = match c {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        b'0'..=b'7' => {
            let digits = s[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let value = s[i + 1..i + 1 + digits]
                .iter()
                .fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            return ((value & 0xff) as u8, i + 1 + digits);
        }
        other => other,
    };
    (simple, i + 2)
}

/// Whether byte `b` is in the class `name`; `None` for an unknown class.
fn in_class(name: &str, b: u8) -> Option<bool> {
    Some(match name {
        "alnum" => b.is_ascii_alphanumeric(),
        "alpha" => b.is_ascii_alphabetic(),
        "blank" => b == b' ' || b == b'\t',
        "cntrl" => b.is_ascii_control(),
        "digit" => b.is_ascii_digit(),
        "graph" => b.is_ascii_graphic(),
        "lower" => b.is_ascii_lowercase(),
        "print" => b.is_ascii_graphic() || b == b' ',
        "punct" => b.is_ascii_punctuation(),
        "space" => b.is_ascii_whitespace() || b == 0x0b,
        "upper" => b.is_ascii_uppercase(),
        "xdigit" => b.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::tools::run_for_test;

    fn tr(args: &[&str], stdin: &str) -> String {
        crate::tools::run_ok("tr", args, stdin.as_bytes())
    }

    #[test]
    fn translates_ranges_classes_and_pads_set2() {
        assert_eq!(tr(&["a-z", "A-Z"], "Hello, world\n"), "HELLO, WORLD\n");
        assert_eq!(tr(&["[:lower:]", "[:upper:]"], "abc-XYZ"), "ABC-XYZ");
        assert_eq!(tr(&["[:upper:]", "[:lower:]"], "abc-XYZ"), "abc-xyz");
        assert_eq!(tr(&["abc", "x"], "aabbcd"), "xxxxxd");
        assert_eq!(tr(&["ab", "xyz"], "ab"), "xy");
        assert_eq!(tr(&["\\n", " "], "a\nb\n"), "a b ");
        assert_eq!(tr(&["a\\-z", "123"], "a-mz"), "12m3");
        assert_eq!(tr(&["-", "_"], "a-b"), "a_b");
        assert_eq!(tr(&["\\101", "b"], "BAD"), "BbD");
    }

    #[test]
    fn deletes_squeezes_and_complements() {
        assert_eq!(tr(&["-d", "[:digit:]"], "a1b22c\n"), "abc\n");
        assert_eq!(tr(&["-d", "\\r"], "dos\r\n"), "dos\n");
        assert_eq!(tr(&["-s", " "], "a   b  c\n"), "a b c\n");
        assert_eq!(tr(&["-s", "[:space:]", " "], "a \n\t b\n"), "a b ");
        assert_eq!(tr(&["-cd", "[:alnum:]\\n"], "a-b c!\n"), "abc\n");
        assert_eq!(tr(&["-c", "[:alnum:]", "_"], "a-b c\n"), "a_b_c_");
        assert_eq!(tr(&["-ds", "a", "b"], "abbba"), "b");
        assert_eq!(tr(&["-s", "a-z", "A-Z"], "aabbcc"), "ABC");
    }

    #[test]
    fn bad_sets_and_operands_are_usage_errors() {
        for (args, message) in [
            (
                &["z-a", "x"][..],
                "range-endpoints of 'z-a' are in reverse collating",
            ),
            (&["[:nope:]", "x"], "invalid character class 'nope'"),
            (&[], "missing operand"),
            (&["a"], "missing operand after 'a'"),
            (&["-d", "a", "b"], "extra operand 'b'"),
            (&["a", "b", "c"], "extra operand 'c'"),
            (&["a", ""], "when translating, SET2 must not be empty"),
        ] {
            let (code, _, err) = run_for_test("tr", args, b"");
            assert_eq!(code, 2, "{args:?}");
            assert!(err.starts_with(&format!("tr: {message}")), "{err}");
        }
    }
}
