//! `npm-install`: the seed scenario's build step, written with `kiln-guest`.
//!
//! It installs the `dependencies` of `./package.json` from a private
//! package mirror (a directory, bind-mounted read-only from the build
//! context) into `./node_modules`:
//!
//! 1. It authenticates with the registry token from the build secret
//!    `npm_token` (`/run/secrets/npm_token`, or `$NPM_TOKEN` for an
//!    `env=` mount): the mirror's `index.json` is signed with an
//!    HMAC-SHA256 under the token, and a wrong token is refused.
//! 2. Each package's tarball is checked against the sha256 in the index.
//! 3. Tarballs are unpacked (the npm `package/` prefix stripped), and
//!    `node_modules/.kiln-installed` lists what was installed.
//!
//! The token is used, never written: the files it produces are derived
//! from the packages, so kiln's leak guard finds nothing to stop.
//!
//! ```text
//! RUN --mount=type=secret,id=npm_token --mount=type=bind,source=mirror,target=/mirror \
//!     npm-install --registry /mirror
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use kiln_guest::{Context, Error, Result, Step};
use sha2::{Digest, Sha256};
use unpack::unpack;

/// Largest tarball accepted: example packages are small; a corrupt or
/// hostile mirror must not make the step read without bound.
const MAX_TARBALL: u64 = 64 << 20;

mod unpack;

fn main() -> std::process::ExitCode {
    kiln_guest::run(install)
}

fn install(mut step: Step) -> Result<()> {
    let registry = PathBuf::from(step.args.required("--registry")?);
    let out = PathBuf::from(
        step.args
            .option("--out")?
            .unwrap_or_else(|| "node_modules".into()),
    );
    let manifest = PathBuf::from(
        step.args
            .option("--package")?
            .unwrap_or_else(|| "package.json".into()),
    );
    step.args.finish()?;

    let token = kiln_guest::secret("npm_token").env("NPM_TOKEN").require()?;
    let index_bytes = fs::read(registry.join("index.json")).with_context(|| {
        format!(
            "reading the registry index {}",
            registry.join("index.json").display()
        )
    })?;
    let signature = fs::read_to_string(registry.join("index.json.sig"))
        .context("reading the registry signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose())
        .map_err(|_| Error::new("the npm_token secret is empty"))?;
    mac.update(&index_bytes);
    let expected = hex::decode(signature.trim())
        .map_err(|_| Error::new("the registry signature is not hex"))?;
    mac.verify_slice(&expected).map_err(|_| {
        Error::new(format!(
            "the registry at {} refused the token: its index is not signed with it (is --secret id=npm_token the right token?)",
            registry.display()
        ))
    })?;
    drop(token);

    let index: serde_json::Value =
        serde_json::from_slice(&index_bytes).context("the registry index is not JSON")?;
    let package: serde_json::Value = serde_json::from_slice(
        &fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?,
    )
    .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let deps: BTreeMap<String, String> = package["dependencies"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();

    let mut installed = Vec::new();
    for (name, version) in &deps {
        let entry = &index["packages"][name.as_str()][version.as_str()];
        let file = entry["file"]
            .as_str()
            .ok_or_else(|| Error::new(format!("{name}@{version} is not in the registry")))?;
        let want = entry["sha256"].as_str().unwrap_or_default();
        let tarball = read_limited(&registry.join(file), MAX_TARBALL)?;
        let got = hex::encode(Sha256::digest(&tarball));
        if got != want {
            return Err(Error::new(format!(
                "{name}@{version}: integrity check failed: the tarball's sha256 is {got}, the index says {want}"
            )));
        }
        let dest = out.join(name);
        unpack(&tarball, &dest).with_context(|| format!("unpacking {name}@{version}"))?;
        installed.push(format!("{name}@{version} sha256:{got}"));
    }
    installed.push(String::new());
    kiln_guest::fs::write_atomic(out.join(".kiln-installed"), installed.join("\n").as_bytes())?;
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(
        &mut stdout,
        format!(
            "added {} packages from {}\n",
            deps.len(),
            registry.display()
        )
        .as_bytes(),
    )?;
    Ok(())
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}
