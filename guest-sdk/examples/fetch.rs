//! `fetch`: download one URL into a file, the SDK's HTTP client in a step.
//!
//! ```text
//! fetch URL [--out FILE] [--bearer-secret ID]
//! ```
//!
//! Streams the body of `GET URL` into FILE (default: the URL's last path
//! segment, relative to WORKDIR; written whole or not at all) and prints the status and length. A
//! `4xx`/`5xx` status fails the step with the server's reason. With
//! `--bearer-secret ID` it sends the secret `ID` as a bearer token itself;
//! with a secret bound to the origin (`RUN --mount=type=secret,
//! id=...,origin=...`) kiln sends it instead and the flag is not needed.
//!
//! Build: `cargo build -p kiln-guest --example fetch --target wasm32-wasip2`,
//! and run it with `RUN --network=default fetch ...` under `kiln build
//! --allow-net HOST:PORT`.

use std::io::Write;
use std::process::ExitCode;

use kiln_guest::{Context, Error, Result, Step, USAGE_EXIT_CODE, http, secret};

fn main() -> ExitCode {
    kiln_guest::run(fetch)
}

fn fetch(mut step: Step) -> Result<()> {
    let out = step.args.option("--out")?;
    let bearer = step.args.option("--bearer-secret")?;
    let url = step.args.positional().ok_or_else(|| {
        Error::new("missing URL: fetch URL [--out FILE] [--bearer-secret ID]")
            .with_code(USAGE_EXIT_CODE)
    })?;
    step.args.done()?;

    let parsed = http::Url::parse(&url)?;
    let out = match out {
        Some(out) => out,
        None => parsed
            .path_with_query()
            .split('?')
            .next()
            .and_then(|path| path.rsplit('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or("index.html")
            .to_string(),
    };

    let mut request = http::Request::get(&url)?;
    if let Some(id) = bearer {
        request = request.bearer(&secret(&id).require()?)?;
    }
    let response = request.send()?.error_for_status()?;
    let status = response.status();
    // Streamed to a temporary file, renamed when whole: a failed download
    // leaves no FILE behind.
    let part = format!("{out}.part");
    let mut file = std::fs::File::create(&part).with_context(|| format!("creating {part}"))?;
    let len = response.copy_to(&mut file)?;
    drop(file);
    std::fs::rename(&part, &out).with_context(|| format!("renaming {part} to {out}"))?;
    writeln!(std::io::stdout(), "{status} {url}: {len} bytes -> {out}")?;
    Ok(())
}
