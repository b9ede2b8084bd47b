//! What `sh` is asked to run, read from its argv the way `sh` reads it:
//! `sh [-eux] [-o NAME] -c SCRIPT [NAME [ARG...]]` or `sh FILE [ARG...]`.

/// What the built-in shell is asked to run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// Options for `set` before the script (`-e`, `-o pipefail`...).
    pub set: Vec<String>,
    /// The script: `-c TEXT`, or a file of the image.
    pub source: Source,
    /// `$0`.
    pub name: String,
    /// `$1`...
    pub args: Vec<String>,
}

/// Where the script comes from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `-c TEXT`.
    Command(String),
    /// `sh FILE`.
    File(String),
}

/// Whether `argv` calls `sh` (by name or by a path ending in `/sh`), and
/// with what: `sh [-eux] [-o NAME] -c SCRIPT [NAME [ARG...]]` or `sh FILE
/// [ARG...]`. An option the built-in shell lacks is an error to report.
pub(crate) fn invocation(argv: &[String]) -> Option<Result<Invocation, String>> {
    let program = argv.first()?;
    if program != "sh" && !program.ends_with("/sh") {
        return None;
    }
    Some(parse_invocation(&argv[1..]))
}

fn parse_invocation(args: &[String]) -> Result<Invocation, String> {
    let mut set = Vec::new();
    let mut command = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        let Some(sign) = a
            .chars()
            .next()
            .filter(|c| (*c == '-' || *c == '+') && a.len() > 1)
        else {
            break;
        };
        let mut letters = String::new();
        let mut named = false;
        for c in a[1..].chars() {
            match c {
                'c' if sign == '-' => command = true,
                'e' | 'u' | 'x' | 'f' => letters.push(c),
                'o' => {
                    letters.push(c);
                    named = true;
                }
                _ => {
                    return Err(format!(
                        "sh: {sign}{c}: kiln's built-in shell has no such option (it knows -c, -e, -u, -x, -f and -o NAME)"
                    ));
                }
            }
        }
        if !letters.is_empty() {
            set.push(format!("{sign}{letters}"));
        }
        i += 1;
        if named {
            let name = args.get(i).ok_or("sh: -o needs an option name")?;
            set.push(name.clone());
            i += 1;
        }
    }
    let rest = &args[i.min(args.len())..];
    if command {
        let script = rest.first().ok_or("sh: -c needs a script")?;
        return Ok(Invocation {
            set,
            source: Source::Command(script.clone()),
            name: rest.get(1).cloned().unwrap_or_else(|| "sh".into()),
            args: rest.get(2..).unwrap_or_default().to_vec(),
        });
    }
    let file = rest.first().ok_or(
        "sh: kiln's built-in shell reads no script from standard input: give -c SCRIPT or a file",
    )?;
    Ok(Invocation {
        set,
        source: Source::File(file.clone()),
        name: file.clone(),
        args: rest[1..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognizes_sh_invocations() {
        assert_eq!(invocation(&args(&["make", "-c", "x"])), None);
        let inv = invocation(&args(&["/bin/sh", "-ec", "a && b", "zero", "one"]))
            .unwrap()
            .unwrap();
        assert_eq!(inv.set, ["-e"]);
        assert_eq!(inv.source, Source::Command("a && b".into()));
        assert_eq!(
            (inv.name.as_str(), inv.args.as_slice()),
            ("zero", &args(&["one"])[..])
        );
        let inv = invocation(&args(&["sh", "-o", "pipefail", "-x", "-c", "s"]))
            .unwrap()
            .unwrap();
        assert_eq!(inv.set, ["-o", "pipefail", "-x"]);
        assert_eq!(inv.name, "sh");
        let inv = invocation(&args(&["sh", "build.sh", "a"]))
            .unwrap()
            .unwrap();
        assert_eq!(inv.source, Source::File("build.sh".into()));
        assert_eq!(inv.args, ["a"]);
        let bad = invocation(&args(&["sh", "-i", "-c", "x"]))
            .unwrap()
            .unwrap_err();
        assert!(bad.contains("-i") && bad.contains("-c, -e"), "{bad}");
        let none = invocation(&args(&["sh"])).unwrap().unwrap_err();
        assert!(none.contains("standard input"), "{none}");
        let bare = invocation(&args(&["sh", "-c"])).unwrap().unwrap_err();
        assert!(bare.contains("-c needs a script"), "{bare}");
    }
}
