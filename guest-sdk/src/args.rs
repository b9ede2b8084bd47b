//! A step's command line: [`Args`], a small parser that hands out flags,
//! options and positional arguments as the step asks for them.
//!
//! The model is "take what you know, then refuse the rest": each call
//! consumes what it matched, and [`Args::done`] (or [`Args::finish`]) fails
//! on anything left, so a misspelt option is an error rather than silently
//! ignored. Every mistake is an [`Error`] with exit code 2.
//!
//! Options are recognised only before a `--` argument; everything after it
//! is positional. There is no help text or short-option bundling (`-xvf`):
//! a step's command line is written once, in a Kilnfile.
//!
//! Read next: `step.rs`, which builds the [`Args`] a step gets.

use crate::error::{Error, Result, USAGE_EXIT_CODE};

/// What ends the options: every argument after it is positional.
const END_OF_OPTIONS: &str = "--";

/// The arguments of a step, `argv[0]` excluded, consumed as they are read.
///
/// Ask for flags and options first, then positional arguments, then call
/// [`finish`](Args::finish) (or [`done`](Args::done) on `step.args`): a
/// positional lookup cannot tell an option's value (`--name x`) from a
/// positional argument until the option has been taken.
///
/// ```
/// use kiln_guest::Args;
///
/// let mut args = Args::from_vec(vec![
///     "--verbose".into(), "--registry=https://r.example".into(),
///     "--jobs".into(), "4".into(), "package.json".into(),
/// ]);
/// let verbose = args.flag("--verbose");
/// let registry = args.required("--registry")?;
/// let jobs: u32 = args.option("--jobs")?.map_or(Ok(1), |j| j.parse())?;
/// let manifest = args.positional();
/// args.finish()?;
///
/// assert!(verbose);
/// assert_eq!(registry, "https://r.example");
/// assert_eq!(jobs, 4);
/// assert_eq!(manifest.as_deref(), Some("package.json"));
/// # Ok::<(), kiln_guest::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    items: Vec<String>,
}

impl Args {
    /// The given arguments (`argv[0]` excluded): for tests, or for a
    /// command line that does not come from the process.
    pub fn from_vec(args: Vec<String>) -> Args {
        Args { items: args }
    }

    /// The process's arguments, `argv[0]` excluded. An argument that is not
    /// UTF-8 is an error (exit code 2); kiln only ever passes UTF-8.
    ///
    /// [`run`](crate::run) calls this for the step; call it yourself only
    /// when you do not use `run`.
    pub fn from_env() -> Result<Args> {
        let mut items = Vec::new();
        for (i, arg) in std::env::args_os().enumerate().skip(1) {
            let arg = arg.into_string().map_err(|arg| {
                usage(format!(
                    "argument {i} ({}) is not UTF-8",
                    arg.to_string_lossy()
                ))
            })?;
            items.push(arg);
        }
        Ok(Args { items })
    }

    /// The arguments before the first `--`: where options are looked for.
    fn options_end(&self) -> usize {
        self.items
            .iter()
            .position(|a| a == END_OF_OPTIONS)
            .unwrap_or(self.items.len())
    }

    /// Whether the flag `name` (e.g. `"--verbose"` or `"-v"`) was given.
    /// Takes every occurrence, so a repeated flag is not left over for
    /// [`finish`](Args::finish) to refuse.
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let mut args = Args::from_vec(vec!["--dry-run".into()]);
    /// assert!(args.flag("--dry-run"));
    /// assert!(!args.flag("--dry-run")); // taken
    /// ```
    pub fn flag(&mut self, name: &str) -> bool {
        let positional = self.items.split_off(self.options_end());
        let before = self.items.len();
        self.items.retain(|a| a != name);
        let found = self.items.len() != before;
        self.items.extend(positional);
        found
    }

    /// The value of the option `name`: `--registry VALUE` or
    /// `--registry=VALUE`; `None` when it is not given.
    ///
    /// Errors (exit code 2) when the value is missing, when the next
    /// argument looks like an option (write `--offset=-5` for a value that
    /// starts with `-`), or when the option is given more than once (use
    /// [`options`](Args::options) for one that may repeat).
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let mut args = Args::from_vec(vec!["--out".into()]);
    /// let err = args.option("--out").unwrap_err();
    /// assert_eq!(err.to_string(), "option --out needs a value");
    /// assert_eq!(err.code(), 2);
    /// ```
    pub fn option(&mut self, name: &str) -> Result<Option<String>> {
        let mut values = self.options(name)?;
        if values.len() > 1 {
            return Err(usage(format!("option {name} is given more than once")));
        }
        Ok(values.pop())
    }

    /// Every value of the option `name`, in order, for an option that may
    /// be repeated (`--exclude a --exclude=b`). Empty when not given.
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let mut args = Args::from_vec(vec!["-e".into(), "a".into(), "-e=b".into()]);
    /// assert_eq!(args.options("-e")?, ["a", "b"]);
    /// # Ok::<(), kiln_guest::Error>(())
    /// ```
    pub fn options(&mut self, name: &str) -> Result<Vec<String>> {
        let mut values = Vec::new();
        let mut end = self.options_end();
        let mut i = 0;
        while i < end {
            let item = &self.items[i];
            if item == name {
                match self.items.get(i + 1) {
                    Some(v) if i + 1 < end && !looks_like_option(v) => {
                        values.push(self.items.remove(i + 1));
                        self.items.remove(i);
                        end -= 2;
                    }
                    Some(v) if i + 1 < end => {
                        return Err(usage(format!(
                            "option {name} needs a value, not {v:?} (for a value that starts with '-', write {name}=VALUE)"
                        )));
                    }
                    _ => return Err(usage(format!("option {name} needs a value"))),
                }
            } else if let Some(value) = item
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
            {
                values.push(value.to_string());
                self.items.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
        Ok(values)
    }

    /// The value of the option `name`, which must be given: like
    /// [`option`](Args::option), and an error naming the option (exit code
    /// 2) when it is absent.
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let mut args = Args::from_vec(vec![]);
    /// let err = args.required("--registry").unwrap_err();
    /// assert_eq!(err.to_string(), "missing required option --registry");
    /// ```
    pub fn required(&mut self, name: &str) -> Result<String> {
        self.option(name)?
            .ok_or_else(|| usage(format!("missing required option {name}")))
    }

    /// The next positional argument: the first one that does not start with
    /// `-` (a lone `-` is positional), or the first after `--`. `None` when
    /// there are no more.
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let mut args = Args::from_vec(vec!["a".into(), "--".into(), "--b".into()]);
    /// assert_eq!(args.positional().as_deref(), Some("a"));
    /// assert_eq!(args.positional().as_deref(), Some("--b"));
    /// assert_eq!(args.positional(), None);
    /// ```
    pub fn positional(&mut self) -> Option<String> {
        let end = self.options_end();
        if let Some(i) = self.items[..end].iter().position(|a| !looks_like_option(a)) {
            return Some(self.items.remove(i));
        }
        if end + 1 < self.items.len() {
            return Some(self.items.remove(end + 1));
        }
        None
    }

    /// Succeeds when every argument was taken (a `--` aside); otherwise an
    /// error listing what is left, e.g. `unknown argument "--colour"`, with
    /// exit code 2. For the arguments of a [`Step`](crate::Step), use
    /// [`done`](Args::done), which does not move them out of the step.
    ///
    /// ```
    /// # use kiln_guest::Args;
    /// let args = Args::from_vec(vec!["--colour".into(), "red".into()]);
    /// let err = args.finish().unwrap_err();
    /// assert_eq!(err.to_string(), r#"unknown arguments "--colour", "red""#);
    /// assert_eq!(err.code(), 2);
    /// ```
    pub fn finish(mut self) -> Result<()> {
        self.done()
    }

    /// [`finish`](Args::finish) through a borrow: `step.args.done()?` leaves
    /// the [`Step`](crate::Step) whole, where `step.args.finish()?` moves its
    /// arguments out and the step cannot be used afterwards (a Rust
    /// "partial move"). What was left is taken either way.
    ///
    /// ```
    /// # use kiln_guest::{Args, Step};
    /// let mut step = Step::new("t", Args::from_vec(vec!["--name".into(), "x".into()]));
    /// let name = step.args.required("--name")?;
    /// step.args.done()?;
    /// let greeting = step.env("GREETING"); // `step` is still whole
    /// # let _ = (name, greeting);
    /// # Ok::<(), kiln_guest::Error>(())
    /// ```
    pub fn done(&mut self) -> Result<()> {
        let end = self.options_end();
        if end < self.items.len() {
            self.items.remove(end);
        }
        let left = std::mem::take(&mut self.items);
        match left.as_slice() {
            [] => Ok(()),
            [one] => Err(usage(format!("unknown argument {one:?}"))),
            many => {
                let list: Vec<String> = many.iter().map(|a| format!("{a:?}")).collect();
                Err(usage(format!("unknown arguments {}", list.join(", "))))
            }
        }
    }
}

/// Whether `arg` is read as an option (or a flag) rather than a value.
fn looks_like_option(arg: &str) -> bool {
    arg.starts_with('-') && arg != "-"
}

fn usage(msg: String) -> Error {
    Error::new(msg).with_code(USAGE_EXIT_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::from_vec(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn flags_are_taken_wherever_they_are() {
        let mut a = args(&["x", "--verbose", "y", "--verbose"]);
        assert!(a.flag("--verbose"));
        assert!(!a.flag("--quiet"));
        assert_eq!(a, args(&["x", "y"]));
    }

    #[test]
    fn flags_after_double_dash_are_positional() {
        let mut a = args(&["--", "--verbose"]);
        assert!(!a.flag("--verbose"));
        assert_eq!(a.positional().as_deref(), Some("--verbose"));
        a.finish().unwrap();
    }

    #[test]
    fn option_in_both_spellings() {
        let mut a = args(&["--registry", "r1", "--out=/a=b", "--empty="]);
        assert_eq!(a.option("--registry").unwrap().as_deref(), Some("r1"));
        assert_eq!(a.option("--out").unwrap().as_deref(), Some("/a=b"));
        assert_eq!(a.option("--empty").unwrap().as_deref(), Some(""));
        assert_eq!(a.option("--absent").unwrap(), None);
        a.finish().unwrap();
    }

    #[test]
    fn option_prefix_is_not_a_match() {
        let mut a = args(&["--registry-url=x"]);
        assert_eq!(a.option("--registry").unwrap(), None);
        assert!(a.finish().is_err());
    }

    #[test]
    fn missing_option_value_is_a_usage_error() {
        for list in [&["--out"][..], &["--out", "--"], &["--out", "--verbose"]] {
            let err = args(list).option("--out").unwrap_err();
            assert_eq!(err.code(), 2, "{list:?}");
            assert!(
                err.to_string().starts_with("option --out needs a value"),
                "{err}"
            );
        }
        let err = args(&["--offset", "-5"]).option("--offset").unwrap_err();
        assert!(err.to_string().contains("write --offset=VALUE"), "{err}");
        let mut a = args(&["--offset=-5", "--stdin", "-"]);
        assert_eq!(a.option("--offset").unwrap().as_deref(), Some("-5"));
        assert_eq!(a.option("--stdin").unwrap().as_deref(), Some("-"));
    }

    #[test]
    fn repeated_option_is_refused_by_option_and_collected_by_options() {
        let err = args(&["--x", "1", "--x=2"]).option("--x").unwrap_err();
        assert_eq!(err.to_string(), "option --x is given more than once");
        assert_eq!(err.code(), 2);
        let mut a = args(&["--x", "1", "p", "--x=2", "--", "--x", "3"]);
        assert_eq!(a.options("--x").unwrap(), ["1", "2"]);
        assert_eq!(a, args(&["p", "--", "--x", "3"]));
    }

    #[test]
    fn required_names_the_option() {
        let err = args(&[]).required("--registry").unwrap_err();
        assert_eq!(err.to_string(), "missing required option --registry");
        assert_eq!(err.code(), 2);
        assert_eq!(args(&["--registry=r"]).required("--registry").unwrap(), "r");
    }

    #[test]
    fn positionals_skip_options_and_continue_after_double_dash() {
        let mut a = args(&["--unknown", "a", "-", "--", "b", "--c", "--"]);
        assert_eq!(a.positional().as_deref(), Some("a"));
        assert_eq!(a.positional().as_deref(), Some("-"));
        assert_eq!(a.positional().as_deref(), Some("b"));
        assert_eq!(a.positional().as_deref(), Some("--c"));
        assert_eq!(a.positional().as_deref(), Some("--"));
        assert_eq!(a.positional(), None);
        let err = a.finish().unwrap_err();
        assert_eq!(err.to_string(), "unknown argument \"--unknown\"");
        assert_eq!(err.code(), 2);
    }

    #[test]
    fn options_are_not_read_after_double_dash() {
        let mut a = args(&["--", "--out", "x"]);
        assert_eq!(a.option("--out").unwrap(), None);
        let mut b = args(&["--out", "--", "x"]);
        assert!(b.option("--out").is_err());
        assert_eq!(a.positional().as_deref(), Some("--out"));
    }

    #[test]
    fn done_is_finish_through_a_borrow() {
        let mut a = args(&["x"]);
        assert_eq!(a.done().unwrap_err().to_string(), "unknown argument \"x\"");
        a.done().unwrap();
    }

    #[test]
    fn finish_accepts_a_lone_double_dash_and_lists_leftovers() {
        args(&[]).finish().unwrap();
        args(&["--"]).finish().unwrap();
        let err = args(&["a", "--", "b"]).finish().unwrap_err();
        assert_eq!(err.to_string(), "unknown arguments \"a\", \"b\"");
    }
}
