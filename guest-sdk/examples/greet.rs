//! `greet`: a small kiln build step written with `kiln-guest`, and the
//! SDK's end-to-end check inside kiln.
//!
//! ```text
//! greet --name NAME [--out FILE] [--secret-file PATH] [--shout]
//! ```
//!
//! Writes `$GREETING NAME` (`GREETING` from `ENV` or an `ARG`, default
//! `hello`) to FILE (default `greeting.txt`, relative to WORKDIR), reports
//! whether the secret `tok` is mounted (its length, never its value) at
//! PATH, `/run/secrets/tok` or `$TOK`, and lists the working directory.
//!
//! Build: `cargo build -p kiln-guest --example greet --target wasm32-wasip1`.

use std::io::Write;
use std::process::ExitCode;

use kiln_guest::{Context, Result, Step, fs, secret};

fn main() -> ExitCode {
    kiln_guest::run(greet)
}

fn greet(mut step: Step) -> Result<()> {
    let shout = step.args.flag("--shout");
    let name = step.args.required("--name")?;
    let out = step
        .args
        .option("--out")?
        .unwrap_or_else(|| "greeting.txt".into());
    let secret_file = step.args.option("--secret-file")?;
    step.args.done()?;

    let greeting = step.env("GREETING").unwrap_or_else(|| "hello".into());
    let mut text = format!("{greeting} {name}\n");
    if shout {
        text = text.to_uppercase();
    }

    let stdout = &mut std::io::stdout();
    writeln!(
        stdout,
        "{} running in {}",
        step.program(),
        step.workdir().display()
    )?;
    let mut tok = secret("tok");
    if let Some(path) = secret_file {
        tok = tok.file(path);
    }
    match tok.env("TOK").get()? {
        // Derived, never copied: only the length leaves the secret.
        Some(tok) => writeln!(stdout, "secret tok: {} bytes", tok.len())?,
        None => writeln!(stdout, "secret tok: not mounted")?,
    }

    fs::write_atomic(&out, text.as_bytes())
        .with_context(|| format!("writing the greeting to {out}"))?;
    for entry in fs::walk(".")? {
        writeln!(
            stdout,
            "{:?} {} {}",
            entry.kind,
            entry.path.display(),
            entry.size
        )?;
    }
    Ok(())
}
