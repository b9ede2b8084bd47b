//! `printf`'s formats and `echo`'s backslash escapes.

/// Backslash escapes (`\n`, `\t`, `\\`, `\0NNN`...) interpreted; the flag
/// is set when `\c` asked to stop output there.
pub(super) fn escapes(s: &str) -> (String, bool) {
    let mut out = String::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        if cs[i] != '\\' || i + 1 == cs.len() {
            out.push(cs[i]);
            i += 1;
            continue;
        }
        i += 1;
        match cs[i] {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            'c' => return (out, true),
            '0'..='7' => {
                let start = if cs[i] == '0' { i + 1 } else { i };
                let mut end = start;
                while end < cs.len() && end < start + 3 && ('0'..='7').contains(&cs[end]) {
                    end += 1;
                }
                let digits: String = cs[start..end].iter().collect();
                let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                out.push(char::from_u32(v).unwrap_or('?'));
                i = end;
                continue;
            }
            c => {
                out.push('\\');
                out.push(c);
            }
        }
        i += 1;
    }
    (out, false)
}

/// Formats `args` by `fmt`, repeating the format while arguments are
/// left; the errors (bad numbers) are returned beside the text.
pub(super) fn format(fmt: &str, args: &[String]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut next = 0;
    loop {
        let used_before = next;
        if one_pass(fmt, args, &mut next, &mut out, &mut errors) {
            break;
        }
        if next >= args.len() || next == used_before {
            break;
        }
    }
    (out, errors)
}

/// One pass over the format; true when `\c` stopped all output.
fn one_pass(
    fmt: &str,
    args: &[String],
    next: &mut usize,
    out: &mut String,
    errors: &mut Vec<String>,
) -> bool {
    let cs: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let take = |next: &mut usize| {
        let a = args.get(*next).cloned();
        *next += 1;
        a
    };
    while i < cs.len() {
        match cs[i] {
            '\\' => {
                let mut j = i + 1;
                if j < cs.len() && ('0'..='7').contains(&cs[j]) {
                    while j < cs.len() && j < i + 4 && ('0'..='7').contains(&cs[j]) {
                        j += 1;
                    }
                } else {
                    j = (j + 1).min(cs.len());
                }
                let piece: String = cs[i..j].iter().collect();
                let piece = if piece.len() > 1
                    && piece.as_bytes()[1].is_ascii_digit()
                    && piece.as_bytes()[1] != b'0'
                {
                    format!("\\0{}", &piece[1..])
                } else {
                    piece
                };
                let (text, stop) = escapes(&piece);
                out.push_str(&text);
                if stop {
                    return true;
                }
                i = j;
            }
            '%' if cs.get(i + 1) == Some(&'%') => {
                out.push('%');
                i += 2;
            }
            '%' => {
                let mut j = i + 1;
                let mut flags = String::new();
                while j < cs.len() && "-+ #0".contains(cs[j]) {
                    flags.push(cs[j]);
                    j += 1;
                }
                let mut width = String::new();
                while j < cs.len() && cs[j].is_ascii_digit() {
                    width.push(cs[j]);
                    j += 1;
                }
                let mut precision = None;
                if cs.get(j) == Some(&'.') {
                    j += 1;
                    let mut p = String::new();
                    while j < cs.len() && cs[j].is_ascii_digit() {
                        p.push(cs[j]);
                        j += 1;
                    }
                    precision = Some(p.parse::<usize>().unwrap_or(0));
                }
                let Some(&conv) = cs.get(j) else {
                    out.extend(&cs[i..]);
                    break;
                };
                let arg = take(next);
                let body = match conv {
                    's' => {
                        let s = arg.unwrap_or_default();
                        match precision {
                            Some(p) => s.chars().take(p).collect(),
                            None => s,
                        }
                    }
                    'b' => {
                        let (text, stop) = escapes(&arg.unwrap_or_default());
                        if stop {
                            out.push_str(&text);
                            return true;
                        }
                        text
                    }
                    'c' => arg
                        .and_then(|a| a.chars().next())
                        .map(String::from)
                        .unwrap_or_default(),
                    'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                        let a = arg.unwrap_or_default();
                        let n = if a.is_empty() {
                            0
                        } else if let Some(c) = a.strip_prefix(['\'', '"']) {
                            c.chars().next().map_or(0, |c| c as i64)
                        } else {
                            match super::arith::number(a.trim()) {
                                Some(n) => n,
                                None => {
                                    errors.push(format!("{a}: invalid number"));
                                    0
                                }
                            }
                        };
                        let mut s = match conv {
                            'x' => format!("{n:x}"),
                            'X' => format!("{n:X}"),
                            'o' => format!("{n:o}"),
                            _ => n.abs().to_string(),
                        };
                        if let Some(p) = precision {
                            while s.len() < p {
                                s.insert(0, '0');
                            }
                        }
                        if matches!(conv, 'd' | 'i' | 'u') {
                            if n < 0 {
                                s.insert(0, '-');
                            } else if flags.contains('+') {
                                s.insert(0, '+');
                            }
                        }
                        s
                    }
                    _ => {
                        errors.push(format!("%{conv}: invalid directive"));
                        String::new()
                    }
                };
                let width = width.parse::<usize>().unwrap_or(0);
                let len = body.chars().count();
                if len < width {
                    let pad = width - len;
                    if flags.contains('-') {
                        out.push_str(&body);
                        out.extend(std::iter::repeat_n(' ', pad));
                    } else if flags.contains('0') && conv != 's' {
                        let (sign, digits) = match body.strip_prefix('-') {
                            Some(d) => ("-", d),
                            None => ("", body.as_str()),
                        };
                        out.push_str(sign);
                        out.extend(std::iter::repeat_n('0', pad));
                        out.push_str(digits);
                    } else {
                        out.extend(std::iter::repeat_n(' ', pad));
                        out.push_str(&body);
                    }
                } else {
                    out.push_str(&body);
                }
                i = j + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    false
}
