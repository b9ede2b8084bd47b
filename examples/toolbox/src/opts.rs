//! The one option parser every tool uses, so flags behave the same across
//! tools: short flags bundled or not (`-rf`, `-r -f`), long flags
//! (`--force`), values attached or not (`-fX`, `-f X`, `--file=X`,
//! `--file X`), `--` ends the options, a lone `-` is an operand (stdin),
//! and options may come after operands (`rm dir -r`), as with GNU tools.
//!
//! A flag outside the tool's list is a usage error that names the flags the
//! tool supports; a flag WASI cannot honour (`mkdir -m`) is recognized and
//! refused with the reason. `--help` is answered by `multicall.rs` from the
//! same list.

use crate::cli::{Result, usage};

/// One flag a tool accepts, with every spelling of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    /// How the tool asks for it ([`Parsed::has`]).
    pub(crate) key: &'static str,
    /// Its one-letter spellings (`"rR"` for `-r` and `-R`), maybe none.
    pub(crate) shorts: &'static str,
    /// Its long spelling without `--`, or empty.
    pub(crate) long: &'static str,
    /// The name of its value (`FILE`) when it takes one.
    pub(crate) value: Option<&'static str>,
    /// One line for `--help`.
    pub(crate) help: &'static str,
    /// Why the flag is recognized but cannot be honoured, if it cannot.
    pub(crate) refused: Option<&'static str>,
}

impl Flag {
    /// A flag without a value.
    pub(crate) const fn new(
        key: &'static str,
        shorts: &'static str,
        long: &'static str,
        help: &'static str,
    ) -> Flag {
        Flag {
            key,
            shorts,
            long,
            value: None,
            help,
            refused: None,
        }
    }

    /// The same flag, taking a value named `name`.
    pub(crate) const fn takes(self, name: &'static str) -> Flag {
        Flag {
            value: Some(name),
            ..self
        }
    }

    /// The same flag, refused because `reason`.
    pub(crate) const fn refused(self, reason: &'static str) -> Flag {
        Flag {
            refused: Some(reason),
            ..self
        }
    }

    /// Every spelling: `-r/-R/--recursive`.
    pub(crate) fn spellings(&self) -> String {
        let mut out: Vec<String> = self.shorts.chars().map(|c| format!("-{c}")).collect();
        if !self.long.is_empty() {
            out.push(format!("--{}", self.long));
        }
        out.join("/")
    }
}

/// The flags given and the operands, in order.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    given: Vec<(&'static str, Option<String>)>,
    /// The arguments that are not flags.
    pub(crate) operands: Vec<String>,
}

impl Parsed {
    /// Whether the flag `key` was given.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.given.iter().any(|(k, _)| *k == key)
    }

    /// The value of the last `key` given.
    pub(crate) fn value(&self, key: &str) -> Option<&str> {
        self.given
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of `key`, in order.
    pub(crate) fn values<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.given
            .iter()
            .filter(move |(k, _)| *k == key)
            .filter_map(|(_, v)| v.as_deref())
    }

    /// Which of `keys` was given last (for flags that override each other,
    /// like `-L` and `-P`).
    pub(crate) fn last_of(&self, keys: &[&str]) -> Option<&'static str> {
        self.given
            .iter()
            .rev()
            .map(|(k, _)| *k)
            .find(|k| keys.contains(k))
    }
}

/// The supported flags, for error messages: `-r/-R/--recursive, -f/--force`.
pub(crate) fn supported(flags: &[Flag]) -> String {
    let list: Vec<String> = flags
        .iter()
        .filter(|f| f.refused.is_none())
        .map(Flag::spellings)
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Parses `args` (without argv[0]) against `flags`; options may follow
/// operands.
pub(crate) fn parse(flags: &[Flag], args: &[String]) -> Result<Parsed> {
    parse_with(flags, args, false)
}

/// Like [`parse`], but the first operand ends the options (`env`, whose
/// operands may look like flags of a command).
pub(crate) fn parse_until_operand(flags: &[Flag], args: &[String]) -> Result<Parsed> {
    parse_with(flags, args, true)
}

fn parse_with(flags: &[Flag], args: &[String], stop_at_operand: bool) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            parsed.operands.extend(rest.cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let flag = find(flags, |f| f.long == name, arg)?;
            let value = match (flag.value, inline) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(usage(format!("option --{name} takes no value")));
                }
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => Some(next_value(&mut rest, &format!("--{name}"))?),
            };
            parsed.given.push((flag.key, value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            let cluster = &arg[1..];
            for (i, c) in cluster.char_indices() {
                let flag = find(flags, |f| f.shorts.contains(c), &format!("-{c}"))?;
                if flag.value.is_some() {
                    let attached = &cluster[i + c.len_utf8()..];
                    let value = if attached.is_empty() {
                        next_value(&mut rest, &format!("-{c}"))?
                    } else {
                        attached.to_string()
                    };
                    parsed.given.push((flag.key, Some(value)));
                    break;
                }
                parsed.given.push((flag.key, None));
            }
        } else {
            parsed.operands.push(arg.clone());
            if stop_at_operand {
                parsed.operands.extend(rest.cloned());
                break;
            }
        }
    }
    Ok(parsed)
}

fn find<'f>(flags: &'f [Flag], matches: impl Fn(&Flag) -> bool, shown: &str) -> Result<&'f Flag> {
    match flags.iter().find(|f| matches(f)) {
        Some(Flag {
            refused: Some(reason),
            ..
        }) => Err(usage(format!("option {shown} is not supported: {reason}"))),
        Some(flag) => Ok(flag),
        None => Err(usage(format!(
            "unknown option {shown}; supported: {}",
            supported(flags)
        ))),
    }
}

fn next_value<'a>(rest: &mut impl Iterator<Item = &'a String>, shown: &str) -> Result<String> {
    rest.next()
        .cloned()
        .ok_or_else(|| usage(format!("option {shown} needs a value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::new("r", "rR", "recursive", "recurse"),
        Flag::new("f", "f", "force", "force"),
        Flag::new("file", "F", "file", "archive").takes("FILE"),
        Flag::new("m", "m", "mode", "mode").refused("WASI has no file modes"),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bundled_long_and_late_flags_are_all_seen() {
        let p = parse(FLAGS, &args(&["a", "-Rf", "b", "--file=x", "-", "-Fy"])).unwrap();
        assert!(p.has("r") && p.has("f"));
        assert_eq!(p.values("file").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(p.value("file"), Some("y"));
        assert_eq!(p.operands, ["a", "b", "-"]);
    }

    #[test]
    fn values_come_from_the_next_argument_and_double_dash_ends_options() {
        let p = parse(FLAGS, &args(&["-F", "-r", "--", "-f", "--force"])).unwrap();
        assert_eq!(p.value("file"), Some("-r"));
        assert!(!p.has("r") && !p.has("f"));
        assert_eq!(p.operands, ["-f", "--force"]);
        let p = parse(FLAGS, &args(&["--file", "z"])).unwrap();
        assert_eq!(p.value("file"), Some("z"));
    }

    #[test]
    fn unknown_flags_name_the_supported_ones() {
        let e = parse(FLAGS, &args(&["-rx"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown option -x; supported: -r/-R/--recursive, -f/--force, -F/--file"
        );
        assert_eq!(e.exit_code(), 2);
        let e = parse(FLAGS, &args(&["--nope"])).unwrap_err();
        assert!(e.to_string().starts_with("unknown option --nope;"), "{e}");
    }

    #[test]
    fn refused_missing_and_unexpected_values_are_usage_errors() {
        let e = parse(FLAGS, &args(&["-m", "755"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option -m is not supported: WASI has no file modes"
        );
        let e = parse(FLAGS, &args(&["-F"])).unwrap_err();
        assert_eq!(e.to_string(), "option -F needs a value");
        let e = parse(FLAGS, &args(&["--force=yes"])).unwrap_err();
        assert_eq!(e.to_string(), "option --force takes no value");
    }

    #[test]
    fn the_first_operand_can_end_the_options() {
        let p = parse_until_operand(FLAGS, &args(&["-f", "cmd", "-r"])).unwrap();
        assert!(p.has("f") && !p.has("r"));
        assert_eq!(p.operands, ["cmd", "-r"]);
    }

    #[test]
    fn last_of_picks_the_later_flag() {
        let p = parse(FLAGS, &args(&["-r", "-f", "-r"])).unwrap();
        assert_eq!(p.last_of(&["r", "f"]), Some("r"));
        assert_eq!(p.last_of(&["file"]), None);
    }
}
