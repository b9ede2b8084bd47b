//! Choosing and running a tool, like busybox: the tool is argv[0]'s file
//! name without a `.wasm` suffix (`cat`, `/bin/cat`, `cat.wasm`), or, when
//! that names no tool (`toolbox`, `/bin/toolbox.wasm`), the first argument
//! (`toolbox cat FILE`). The toolbox's own commands: `--list` prints the
//! tools, `--install DIR` makes `DIR/<tool>` a symlink to the program for
//! every tool, `--help`, `--version`.
//!
//! This is where an outcome becomes an exit code: 0, 1 for a runtime
//! failure, 2 for a usage error (with the tool's synopsis).

use std::io::{Read, Write};
use std::path::Path;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Error, Io, OrFail, Result, failed, quote};
use crate::fsx;
use crate::sys;
use crate::tools::{self, TOOLS, Tool};

/// The program's file name when argv[0] gives none to go by.
const PROGRAM: &str = "toolbox.wasm";

/// Runs the whole command line (`args[0]` is argv[0]); returns the exit code.
pub(crate) fn main(
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let argv0 = args.first().map_or("toolbox", String::as_str);
    if let Some(tool) = tools::find(tool_name(argv0)) {
        return run_tool(tool, &args[1.min(args.len())..], stdin, stdout, stderr);
    }
    let rest = args.get(1..).unwrap_or_default();
    let Some(first) = rest.first() else {
        let _ = write!(stderr, "{}", overview());
        return EXIT_USAGE;
    };
    if let Some(tool) = tools::find(tool_name(first)) {
        return run_tool(tool, &rest[1..], stdin, stdout, stderr);
    }
    let mut io = Io::new("toolbox", stdin, stdout, stderr);
    let result = match first.as_str() {
        "--help" | "-h" => io.line(overview().trim_end()),
        "--version" => io.line(format!("toolbox {}", env!("CARGO_PKG_VERSION"))),
        "--list" => list(&rest[1..], &mut io),
        "--install" => install(argv0, &rest[1..], &mut io),
        "sh" | "bash" => Err(Error::Usage(
            "the toolbox has no sh program: kiln's built-in shell runs shell-form RUN \
             lines (`RUN a && b`) and `kiln run IMAGE sh -c '...'` in images without /bin/sh"
                .into(),
        )),
        other if other.starts_with('-') => Err(Error::Usage(format!(
            "unknown option {other}; supported: --list, --install DIR, --help, --version"
        ))),
        other => Err(Error::Usage(format!(
            "unknown tool {}; tools: {}",
            quote(other),
            names().join(", ")
        ))),
    };
    finish(
        result,
        &mut io,
        "toolbox TOOL [ARG]... | --list | --install DIR",
    )
}

/// Runs `tool` with `args` (without argv[0]); returns the exit code.
pub(crate) fn run_tool(
    tool: &Tool,
    args: &[String],
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut io = Io::new(tool.name, stdin, stdout, stderr);
    // echo prints its arguments, `--help` included.
    let help = tool.name != "echo"
        && args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--help");
    let result = if help {
        io.line(help_text(tool).trim_end())
    } else {
        (tool.run)(args, &mut io)
    };
    let synopsis = format!("{} {}", tool.name, tool.usage);
    finish(result, &mut io, &synopsis)
}

fn finish(result: Result, io: &mut Io<'_>, synopsis: &str) -> i32 {
    // After a failed write, stdout is not flushed again: that would only
    // fail again and say so twice.
    let wrote_badly = matches!(result, Err(Error::Output(_)));
    let code = match result {
        Ok(()) if io.has_failed() => EXIT_FAILED,
        Ok(()) => EXIT_OK,
        Err(Error::Exit(code)) => code,
        Err(e) => {
            io.note(&e);
            if let Error::Usage(_) = e {
                let _ = writeln!(io.stderr, "usage: {synopsis}");
            }
            e.exit_code()
        }
    };
    if !wrote_badly && let Err(e) = io.stdout.flush() {
        let e = crate::cli::write_error(e);
        if !matches!(e, Error::Exit(_)) {
            io.note(e);
        }
        return code.max(EXIT_FAILED);
    }
    code
}

/// The tool an argv[0] names: its file name without `.wasm`.
fn tool_name(argv0: &str) -> &str {
    let name = fsx::last_name(argv0);
    name.strip_suffix(".wasm").unwrap_or(name)
}

fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

fn overview() -> String {
    let mut text = String::from(
        "usage: toolbox TOOL [ARG]...     run a tool (or call the program by the tool's name)\n       \
         toolbox --list                print the tools\n       \
         toolbox --install DIR         make DIR/TOOL a symlink to this program for every tool\n\n\
         tools:\n",
    );
    for t in TOOLS {
        text.push_str(&format!("  {:<10} {}\n", t.name, t.about));
    }
    text.push_str(
        "\nNo sh here: kiln's built-in shell runs shell-form RUN lines (`RUN a | b && c`)\n\
         and `kiln run IMAGE sh -c '...'`, calling these tools from PATH.\n",
    );
    text
}

fn help_text(tool: &Tool) -> String {
    let mut text = format!("usage: {} {}\n{}\n", tool.name, tool.usage, tool.about);
    if !tool.flags.is_empty() {
        text.push('\n');
        let rows: Vec<(String, &str)> = tool
            .flags
            .iter()
            .map(|f| {
                let mut s = f.spellings().replace('/', ", ");
                if let Some(v) = f.value {
                    s = format!("{s} {v}");
                }
                let help = f.refused.unwrap_or(f.help);
                let s = if f.refused.is_some() {
                    format!("{s} (refused)")
                } else {
                    s
                };
                (s, help)
            })
            .collect();
        let width = rows.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        for (s, help) in rows {
            text.push_str(&format!("  {s:<width$}  {help}\n"));
        }
    }
    text
}

fn list(args: &[String], io: &mut Io<'_>) -> Result {
    if let Some(extra) = args.first() {
        return Err(Error::Usage(format!(
            "--list takes no argument, got {}",
            quote(extra)
        )));
    }
    for name in names() {
        io.line(name)?;
    }
    Ok(())
}

/// `--install DIR`: `DIR/<tool>` -> the program, a relative symlink, for
/// every tool. The target is worked out from argv[0] when it is a path
/// (kiln passes what the Kilnfile wrote, e.g. `/bin/toolbox.wasm`), else the
/// program is assumed to be `DIR/toolbox.wasm`. Existing symlinks are
/// replaced (installing twice is harmless); anything else is left alone and
/// reported.
fn install(argv0: &str, args: &[String], io: &mut Io<'_>) -> Result {
    let [dir] = args else {
        return Err(Error::Usage("--install takes one directory".into()));
    };
    let dir_path = Path::new(dir);
    let meta =
        std::fs::metadata(dir_path).or_fail(|| format!("cannot install into {}", quote(dir)))?;
    if !meta.is_dir() {
        return Err(failed(format!(
            "cannot install into {}: Not a directory",
            quote(dir)
        )));
    }
    let abs_dir = fsx::absolute(dir_path).or_fail(|| "cannot find the working directory".into())?;
    let (target, program) = if argv0.contains('/') {
        let program = fsx::absolute(Path::new(argv0))
            .or_fail(|| "cannot find the working directory".into())?;
        (fsx::relative_path(&abs_dir, &program), Some(program))
    } else {
        (Path::new(PROGRAM).to_path_buf(), None)
    };
    let mut installed = 0;
    for name in names() {
        let link = dir_path.join(name);
        if program.as_deref() == Some(abs_dir.join(name).as_path()) {
            continue; // the program itself is called like a tool
        }
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Err(e) = std::fs::remove_file(&link) {
                    io.error(format!(
                        "cannot replace {}: {}",
                        quote(&link),
                        crate::cli::describe(&e)
                    ));
                    continue;
                }
            }
            Ok(_) => {
                io.error(format!(
                    "{} exists and is not a symlink; left as it is",
                    quote(&link)
                ));
                continue;
            }
            Err(_) => {}
        }
        match sys::symlink(&target, &link) {
            Ok(()) => installed += 1,
            Err(e) => io.error(format!(
                "cannot create symlink {}: {}",
                quote(&link),
                crate::cli::describe(&e)
            )),
        }
    }
    io.line(format!(
        "installed {installed} tools in {dir} (-> {})",
        target.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut input, mut out, mut err) = (&b""[..], Vec::new(), Vec::new());
        let code = main(&args, &mut input, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn argv0_picks_the_tool_with_or_without_path_and_suffix() {
        for argv0 in ["echo", "/bin/echo", "echo.wasm", "/usr/bin/echo.wasm"] {
            assert_eq!(
                call(&[argv0, "hi"]),
                (0, "hi\n".into(), String::new()),
                "{argv0}"
            );
        }
        assert_eq!(call(&["/bin/toolbox.wasm", "echo", "hi"]).1, "hi\n");
        assert_eq!(call(&["toolbox", "/bin/echo.wasm", "hi"]).1, "hi\n");
    }

    #[test]
    fn list_prints_every_tool_and_no_shell() {
        let (code, out, _) = call(&["toolbox", "--list"]);
        assert_eq!(code, 0);
        let listed: Vec<&str> = out.lines().collect();
        assert_eq!(listed, names());
        assert!(listed.contains(&"tar") && !listed.contains(&"sh"));
    }

    #[test]
    fn unknown_tools_options_and_the_shell_are_usage_errors() {
        let (code, _, err) = call(&["toolbox", "awk"]);
        assert_eq!(code, 2);
        assert!(
            err.starts_with("toolbox: unknown tool 'awk'; tools: ") && err.contains(" cat, cp,"),
            "{err}"
        );
        let (code, _, err) = call(&["toolbox", "sh", "-c", "true"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("kiln's built-in shell runs shell-form RUN"),
            "{err}"
        );
        let (code, _, err) = call(&["toolbox", "--frobnicate"]);
        assert_eq!(code, 2);
        assert!(err.contains("unknown option --frobnicate"), "{err}");
        let (code, _, err) = call(&["toolbox"]);
        assert_eq!(code, 2);
        assert!(err.contains("toolbox --list"), "{err}");
    }

    #[test]
    fn tool_help_lists_its_flags_and_usage_errors_show_the_synopsis() {
        let (code, out, _) = call(&["cp", "--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("usage: cp "), "{out}");
        assert!(out.contains("-r, -R, --recursive"), "{out}");
        let (code, _, err) = call(&["cat", "-x"]);
        assert_eq!(code, 2);
        assert_eq!(
            err,
            "cat: unknown option -x; supported: -u\nusage: cat [OPTION]... [FILE]...\n"
        );
    }

    /// A stdout whose every write fails with `kind`.
    struct Failing(std::io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_closed_pipe_ends_quietly_and_other_write_errors_are_said_once() {
        let tool = tools::find("echo").unwrap();
        let args = ["hi".to_string()];
        for (kind, said) in [
            (std::io::ErrorKind::BrokenPipe, ""),
            (std::io::ErrorKind::StorageFull, "echo: write error: "),
        ] {
            let (mut input, mut err) = (&b""[..], Vec::new());
            let code = run_tool(tool, &args, &mut input, &mut Failing(kind), &mut err);
            let err = String::from_utf8(err).unwrap();
            assert_eq!(code, 1, "{kind:?}");
            assert!(err.starts_with(said) && err.lines().count() <= 1, "{err}");
            assert_eq!(err.is_empty(), said.is_empty(), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn install_links_every_tool_relative_to_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("toolbox.wasm"), "").unwrap();
        std::fs::write(bin.join("ls"), "not ours").unwrap();
        let program = bin.join("toolbox.wasm");
        let (code, out, err) = call(&[
            program.to_str().unwrap(),
            "--install",
            bin.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "ls was not replaced");
        assert!(err.contains("ls' exists and is not a symlink"), "{err}");
        assert!(
            out.starts_with(&format!("installed {} tools", TOOLS.len() - 1)),
            "{out}"
        );
        assert_eq!(
            std::fs::read_link(bin.join("cat")).unwrap(),
            Path::new("toolbox.wasm")
        );
        assert_eq!(std::fs::read_to_string(bin.join("ls")).unwrap(), "not ours");
        // Again, into another directory: symlinks are replaced, the target climbs.
        let other = dir.path().join("usr/local/bin");
        std::fs::create_dir_all(&other).unwrap();
        for _ in 0..2 {
            let (code, _, err) = call(&[
                program.to_str().unwrap(),
                "--install",
                other.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "{err}");
        }
        assert_eq!(
            std::fs::read_link(other.join("tar")).unwrap(),
            Path::new("../../../bin/toolbox.wasm")
        );
        let (code, _, err) = call(&["toolbox", "--install", "/nonexistent/dir"]);
        assert_eq!(code, 1);
        assert!(
            err.contains("cannot install into '/nonexistent/dir'"),
            "{err}"
        );
    }
}
