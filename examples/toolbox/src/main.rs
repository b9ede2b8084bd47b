//! `toolbox`: one WASI program with the everyday file tools a kiln image
//! needs in its RUN steps (`cat`, `ls`, `cp`, `mv`, `rm`, `tar`,
//! `sha256sum`, `grep`, `sort`, ...), chosen by the name it is called by,
//! like busybox. It has no shell of its own: kiln's built-in shell runs
//! shell-form RUN lines and calls these tools from PATH.
//!
//! This file owns the process edge only: the working directory, the
//! arguments, the real standard streams and the exit code. Read next:
//! `multicall.rs` (which tool, `--list`, `--install`), `cli.rs` (what every
//! tool shares), `opts.rs` (flags), `tools/` (one file per tool), `sys.rs`
//! (what WASI lacks).

mod cli;
mod fsx;
mod multicall;
mod opts;
mod show;
mod sys;
mod text;
mod tools;

use std::io::{BufWriter, Write};

/// Size of the buffer in front of stdout: output reaches kiln's log in
/// chunks this big instead of one host call per line.
const STDOUT_BUFFER: usize = 64 << 10;

fn main() {
    // wasi-libc starts every program in `/`; kiln passes the step's WORKDIR
    // as PWD, so relative paths mean what the Kilnfile's author expects.
    if let Some(pwd) = std::env::var_os("PWD")
        && let Err(e) = std::env::set_current_dir(&pwd)
    {
        let _ = writeln!(
            std::io::stderr(),
            "toolbox: cannot enter PWD {}: {}",
            cli::quote(&pwd),
            cli::describe(&e)
        );
        std::process::exit(cli::EXIT_FAILED);
    }
    let mut args = Vec::new();
    for arg in std::env::args_os() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "toolbox: argument {a:?} is not valid UTF-8"
                );
                std::process::exit(cli::EXIT_USAGE);
            }
        }
    }
    let mut stdin = std::io::stdin().lock();
    let mut stdout = BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    let code = multicall::main(&args, &mut stdin, &mut stdout, &mut stderr);
    drop(stdout);
    std::process::exit(code);
}
