//! A POSIX shell built into kiln, for shell-form `RUN` in images without a
//! wasm `/bin/sh`: every external command is a WASI program found on the
//! image's `PATH` (or a builtin), run through a [`Host`].
//!
//! The parts, one job a file:
//! - `parse.rs`: the script text parsed by brush-parser (MIT; POSIX `sh`
//!   mode) and translated into our own tree, `ast.rs`, with line and column
//!   positions; nothing else sees brush's types except `arith.rs`, which
//!   uses its arithmetic parser.
//! - `interp.rs`: lists, `&&`/`||`, `!`, pipelines, compound commands,
//!   simple commands, functions, `set -e`; `redirect.rs`: redirections;
//!   `io.rs`: the standard streams; `expand.rs`: word expansion, field
//!   splitting, globbing (`pattern.rs`); `arith.rs`: `$((...))`;
//!   `builtins.rs`, `test_cmd.rs`, `printf.rs`: the builtins.
//! - `host.rs`: the [`Host`] trait: running a program, files, paths.
//!
//! # Supported
//! `;`, newlines, `&&`, `||`, `!`; pipelines and `set -o pipefail`;
//! redirections `<`, `>`, `>|`, `>>`, `<>`, `N>&M`, `>&-`, `>/dev/null`,
//! here-documents (`<<`, `<<-`, quoted delimiters); single and double
//! quotes, backslashes; `$X`, `${X}`, `${X-d}`/`${X:-d}`, `=`, `?`, `+`,
//! `${X#p}`, `##`, `%`, `%%`, `${#X}`, `$?`, `$#`, `$@`, `"$@"`, `$*`,
//! `$1`..., `$0`, `$-`, `$$` (always 1); `~`; `$(...)` and backticks;
//! `$((...))`; field splitting on `IFS`; globbing (`*`, `?`,
//! `[...]`, classes) against [`Host::list_dir`]; `if`, `for`, `while`,
//! `until`, `case` (with `;&`), functions and `return`, `( ... )` (state
//! copied and thrown away), `{ ...; }`; the builtins `: true false echo
//! printf test [ cd pwd export unset set (-e -u -x -f, -o errexit nounset
//! xtrace noglob pipefail, and +) shift exit return break continue local
//! read eval`. `set -e` follows POSIX (and dash): not in the condition of
//! `if`/`while`/`until`, not left of `&&`/`||`, not under `!`. `set -x`
//! traces go through [`Host::trace`], where the build can mask secrets.
//!
//! # Not yet
//! - A pipeline whose every stage is a program runs them at once through
//!   [`Host::run_pipeline`] (`pipeline.rs`, joined by `pipe.rs`); any other
//!   runs stage by stage, each one's output buffered in memory as the next
//!   one's input (at most `io::PIPE_MAX`, then a broken pipe).
//! - Only descriptors 0, 1 and 2; no `&` (background jobs), `trap`, `wait`,
//!   `.`/`source`, `alias`, `getopts`, `command`, `type`, `umask`, `exec`,
//!   `readonly`, `ulimit`, `$!`; no bash syntax (`[[ ]]`, arrays, `$'..'`,
//!   `<<<`, `&>`, `${X/a/b}`, `${X:1:2}`), refused with a position; in
//!   `sh` mode `((` is two subshells and `[[` a command name, as in dash.
//! - Output redirected to a file is buffered and appended to the file when
//!   the redirection ends (the file is created or truncated when it
//!   starts); standard input is always read whole into memory.
//! - Positions inside a command substitution are counted from the start of
//!   the substitution.
//!
//! # Where it runs
//! `step_host.rs`: `step::run` hands `sh -c SCRIPT` (and `sh FILE`) to the
//! built-in shell when the image has no `sh` program: shell-form `RUN`
//! (`build/run.rs` checks the syntax first, so an error points at the
//! Kilnfile line and column), shell-form `CMD`/`ENTRYPOINT` under `kiln
//! run`, and `kiln run IMAGE sh -c`. Each external command is a program of
//! the image run over the step's one `Vfs`, its output streamed into the
//! shell's descriptors; one time budget holds for the whole script, and a
//! limit hit or Ctrl-C stops it ([`Host::stopped`]).

mod arith;
pub mod ast;
mod builtins;
mod expand;
pub mod host;
mod interp;
pub(crate) mod invocation;
mod io;
mod parse;
mod pattern;
mod pipe;
mod pipeline;
mod printf;
mod redirect;
mod step_files;
pub(crate) mod step_host;
mod test_cmd;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dash;

use std::collections::HashMap;

pub use host::{Exec, Host, Input, PathTest, PipelineStreams, Stdin, Streams};
pub use parse::{SyntaxError, parse};

/// Where and with what a script starts.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The environment: every variable exported.
    pub env: Vec<(String, String)>,
    /// The working directory (absolute).
    pub cwd: String,
    /// `$0`.
    pub name: String,
    /// `$1`...
    pub args: Vec<String>,
    /// Arguments of a `set` run before the script (`sh -e -o pipefail`).
    pub set: Vec<String>,
}

/// Parses and runs `script`; returns its exit status. Output goes to
/// `stdout` and `stderr`; standard input is empty.
pub fn run(
    script: &str,
    host: &mut dyn Host,
    options: &Options,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> Result<i32, SyntaxError> {
    let list = parse(script)?;
    let mut vars = HashMap::new();
    for (k, v) in &options.env {
        vars.insert(
            k.clone(),
            interp::Var {
                value: v.clone(),
                exported: true,
            },
        );
    }
    let cwd = if options.cwd.is_empty() {
        "/".to_string()
    } else {
        options.cwd.clone()
    };
    let state = interp::State {
        vars,
        positional: options.args.clone(),
        zero: if options.name.is_empty() {
            "sh".into()
        } else {
            options.name.clone()
        },
        cwd,
        opts: interp::Opts::default(),
        funcs: HashMap::new(),
        status: 0,
        cond: 0,
        depth: 0,
        locals: Vec::new(),
        loops: 0,
        sub_status: None,
    };
    let mut sh = interp::Shell::new(host, io::Tops { stdout, stderr }, state);
    if !options.set.is_empty()
        && let Err(interp::Flow::Exit(status)) =
            sh.set(&options.set, ast::Pos { line: 1, column: 1 })
    {
        return Ok(status);
    }
    let status = match sh.run_list(&list) {
        Ok(s) | Err(interp::Flow::Exit(s) | interp::Flow::Return(s)) => s,
        Err(interp::Flow::Break(_) | interp::Flow::Continue(_)) => sh.st.status,
    };
    Ok(status)
}
