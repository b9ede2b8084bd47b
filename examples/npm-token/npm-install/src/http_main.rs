//! `npm-install-http`: the seed scenario's step against a real npm
//! registry (Verdaccio, npmjs, any registry serving the lockfile's
//! `resolved` URLs), over `wasi:http` (a `wasm32-wasip2` component; see
//! `examples/npm-token/Kilnfile.registry`).
//!
//! It installs what `./package-lock.json` locks (lockfile version 2 or 3):
//! every package is downloaded from its `resolved` URL, checked against
//! its sha512 `integrity`, and unpacked to its path under `node_modules`;
//! `node_modules/.kiln-installed` lists what was installed.
//!
//! The token, two ways:
//!
//! - bound to the registry's origin (best): kiln adds `Authorization:
//!   Bearer` to the step's requests to that origin only, and the token
//!   never enters the step, which sends none itself:
//!
//!   ```text
//!   RUN --network=default --mount=type=secret,id=npm_token,origin=http://127.0.0.1:4873 npm-install-http
//!   kiln build --allow-net 127.0.0.1:4873 --secret id=npm_token,src=npm_token.txt ...
//!   ```
//!
//! - mounted, the form `docker buildx` also takes: the step reads
//!   `/run/secrets/ID` and sends it itself, to every tarball URL, when
//!   given `--token-secret ID`:
//!
//!   ```text
//!   RUN --network=default --mount=type=secret,id=npm_token npm-install-http --token-secret npm_token
//!   ```
//!
//! Build: `cargo build -p kiln-npm-install --bin npm-install-http --target wasm32-wasip2`.

use std::io::Read;
use std::path::PathBuf;

use kiln_guest::{Context, Error, Result, Secret, Step, http};

mod lock;
mod unpack;

/// Largest tarball accepted: a hostile registry must not make the step
/// read without bound.
const MAX_TARBALL: u64 = 256 << 20;

fn main() -> std::process::ExitCode {
    kiln_guest::run(install)
}

fn install(mut step: Step) -> Result<()> {
    let manifest = PathBuf::from(
        step.args
            .option("--package")?
            .unwrap_or_else(|| "package.json".into()),
    );
    let lockfile = PathBuf::from(
        step.args
            .option("--lockfile")?
            .unwrap_or_else(|| "package-lock.json".into()),
    );
    let token = step
        .args
        .option("--token-secret")?
        .map(|id| kiln_guest::secret(&id).require())
        .transpose()?;
    step.args.finish()?;

    let read =
        |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let packages = lock::packages(&read(&lockfile)?, &read(&manifest)?)?;
    let root = lockfile.parent().map(PathBuf::from).unwrap_or_default();

    let mut installed = Vec::new();
    for package in &packages {
        let what = format!(
            "{}@{}",
            package.path.trim_start_matches("node_modules/"),
            package.version
        );
        let tarball = download(&package.resolved, token.as_ref())
            .with_context(|| format!("downloading {what}"))?;
        lock::verify(&what, &tarball, &package.integrity)?;
        unpack::unpack(&tarball, &root.join(&package.path))
            .with_context(|| format!("unpacking {what}"))?;
        installed.push(format!("{what} {}", package.integrity));
    }
    installed.push(String::new());
    kiln_guest::fs::write_atomic(
        root.join("node_modules/.kiln-installed"),
        installed.join("\n").as_bytes(),
    )?;
    std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        format!("added {} packages\n", packages.len()).as_bytes(),
    )?;
    Ok(())
}

/// The body of `GET url`, at most [`MAX_TARBALL`] bytes, sent with
/// `token` as a bearer token if given.
fn download(url: &str, token: Option<&Secret>) -> Result<Vec<u8>> {
    let mut request = http::Request::get(url)?;
    if let Some(token) = token {
        request = request.bearer(token)?;
    }
    let mut body = Vec::new();
    request
        .send()?
        .error_for_status()?
        .take(MAX_TARBALL + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("reading {url}"))?;
    if body.len() as u64 > MAX_TARBALL {
        return Err(Error::new(format!(
            "{url} is larger than {MAX_TARBALL} bytes"
        )));
    }
    Ok(body)
}
