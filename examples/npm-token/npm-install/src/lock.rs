//! What `npm-install-http` installs: the packages of an npm
//! `package-lock.json` (lockfile version 2 or 3), each with the URL it was
//! `resolved` from and its `integrity`, and the check of a downloaded
//! tarball against that integrity.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kiln_guest::{Context, Error, Result};
use sha2::{Digest, Sha512};

/// One package to install, from the lockfile's `packages` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locked {
    /// Where it goes, relative to the project: `node_modules/@scope/name`,
    /// `node_modules/a/node_modules/b`.
    pub(crate) path: String,
    /// The version npm locked.
    pub(crate) version: String,
    /// The tarball's URL.
    pub(crate) resolved: String,
    /// `sha512-<base64>` (possibly with other hashes after it).
    pub(crate) integrity: String,
}

/// The packages of `lock` (the bytes of a `package-lock.json`) in install
/// order (the lockfile's, which is sorted by path), after checking that
/// every dependency of `manifest` (a `package.json`) is among them.
pub(crate) fn packages(lock: &[u8], manifest: &[u8]) -> Result<Vec<Locked>> {
    let lock: serde_json::Value =
        serde_json::from_slice(lock).context("package-lock.json is not JSON")?;
    let manifest: serde_json::Value =
        serde_json::from_slice(manifest).context("package.json is not JSON")?;
    match lock["lockfileVersion"].as_u64() {
        Some(2 | 3) => {}
        other => {
            return Err(Error::new(format!(
                "package-lock.json has lockfileVersion {}; this step reads versions 2 and 3 \
                 (npm 7 and later)",
                other.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            )));
        }
    }
    let entries = lock["packages"]
        .as_object()
        .context("package-lock.json has no \"packages\"")?;
    let mut out = Vec::new();
    for (path, entry) in entries {
        // "" is the project itself; links point into the project.
        if path.is_empty() || entry["link"].as_bool() == Some(true) {
            continue;
        }
        check_path(path)?;
        let field = |name: &str| {
            entry[name].as_str().map(str::to_string).with_context(|| {
                format!(
                    "package-lock.json: {path} has no \"{name}\" (make it with `npm install \
                     --package-lock-only --omit-lockfile-registry-resolved=false`)"
                )
            })
        };
        out.push(Locked {
            path: path.clone(),
            version: field("version")?,
            resolved: field("resolved")?,
            integrity: field("integrity")?,
        });
    }
    let locked: BTreeMap<&str, &Locked> = out.iter().map(|l| (l.path.as_str(), l)).collect();
    for kind in ["dependencies", "optionalDependencies"] {
        let Some(deps) = manifest[kind].as_object() else {
            continue;
        };
        for name in deps.keys() {
            let path = format!("node_modules/{name}");
            if !locked.contains_key(path.as_str()) && kind == "dependencies" {
                return Err(Error::new(format!(
                    "package-lock.json is out of date: it has no {path} for the dependency \
                     {name} of package.json (run `npm install --package-lock-only`)"
                )));
            }
        }
    }
    Ok(out)
}

/// Refuses an install path that is not `node_modules/...` made of plain
/// names: a hostile lockfile must not write outside `node_modules`.
fn check_path(path: &str) -> Result<()> {
    let ok = path.starts_with("node_modules/")
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'))
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!(
            "package-lock.json: unsafe install path {path:?}"
        )))
    }
}

/// Checks `bytes` against an npm `integrity` string: its `sha512-<base64>`
/// hash must match (other algorithms in it are ignored; one without a
/// sha512 is refused, as sha1 is too weak to trust).
pub(crate) fn verify(what: &str, bytes: &[u8], integrity: &str) -> Result<()> {
    let want = integrity
        .split_ascii_whitespace()
        .find_map(|h| h.strip_prefix("sha512-"))
        .with_context(|| {
            format!("{what}: the integrity {integrity:?} has no sha512 hash to check against")
        })?;
    let want = BASE64
        .decode(want)
        .map_err(|e| Error::new(format!("{what}: the integrity's sha512 is not base64: {e}")))?;
    let got = Sha512::digest(bytes);
    if got.as_slice() != want.as_slice() {
        return Err(Error::new(format!(
            "{what}: integrity check failed: the download's sha512 is {}, the lockfile says {}",
            BASE64.encode(got),
            BASE64.encode(&want)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `npm install --package-lock-only` wrote against the e2e tests'
    /// Verdaccio (tests/verdaccio).
    const LOCK: &str = r#"{
      "name": "kiln-test-app", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": { "name": "kiln-test-app", "dependencies": { "@kiln-test/left-pad": "^1.0.0" } },
        "node_modules/@kiln-test/left-pad": {
          "version": "1.0.0",
          "resolved": "http://127.0.0.1:45871/@kiln-test/left-pad/-/left-pad-1.0.0.tgz",
          "integrity": "sha512-Gx36dgmgNIj2qMhRUJqESQvhcbCifr9e9sUmLbEjC+bB96xeByuHofjccJWwfnZe2m/bnYVbpbu4JvPxThxfDw==",
          "dependencies": { "@kiln-test/util": "^1.0.0" }
        },
        "node_modules/@kiln-test/util": {
          "version": "1.0.0",
          "resolved": "http://127.0.0.1:45871/@kiln-test/util/-/util-1.0.0.tgz",
          "integrity": "sha512-lkYPUTVS6Qjlvp4GlYRul0fVEIlqvrEF8EmPOpy4NXUEnnvEtum3RIvWeY2NVagIura4ntVqoiZ+fRz+QNWCXg=="
        }
      }
    }"#;
    const MANIFEST: &str = r#"{ "dependencies": { "@kiln-test/left-pad": "^1.0.0" } }"#;

    fn integrity_of(bytes: &[u8]) -> String {
        format!("sha512-{}", BASE64.encode(Sha512::digest(bytes)))
    }

    #[test]
    fn a_lockfile_v3_lists_its_packages_with_urls_and_integrity() {
        let got = packages(LOCK.as_bytes(), MANIFEST.as_bytes()).unwrap();
        let paths: Vec<&str> = got.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "node_modules/@kiln-test/left-pad",
                "node_modules/@kiln-test/util"
            ]
        );
        assert_eq!(got[1].version, "1.0.0");
        assert_eq!(
            got[1].resolved,
            "http://127.0.0.1:45871/@kiln-test/util/-/util-1.0.0.tgz"
        );
        assert!(got[1].integrity.starts_with("sha512-lkYP"));
    }

    #[test]
    fn an_out_of_date_or_old_or_incomplete_lockfile_is_refused() {
        let err = packages(LOCK.as_bytes(), br#"{"dependencies":{"left-pad":"1"}}"#).unwrap_err();
        assert!(err.to_string().contains("out of date"), "{err}");
        assert!(err.to_string().contains("node_modules/left-pad"), "{err}");

        let v1 = LOCK.replace(r#""lockfileVersion": 3"#, r#""lockfileVersion": 1"#);
        let err = packages(v1.as_bytes(), MANIFEST.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("lockfileVersion 1"), "{err}");

        let no_resolved = LOCK.replace(
            r#""resolved": "http://127.0.0.1:45871/@kiln-test/util/-/util-1.0.0.tgz","#,
            "",
        );
        let err = packages(no_resolved.as_bytes(), MANIFEST.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("node_modules/@kiln-test/util has no \"resolved\""),
            "{err}"
        );
    }

    #[test]
    fn install_paths_stay_in_node_modules() {
        for bad in [
            "node_modules/../../etc",
            "../node_modules/x",
            "/node_modules/x",
            "lib/x",
            "node_modules/./x",
            "node_modules\\\\..\\\\x", // JSON for node_modules\..\x
        ] {
            let lock = LOCK.replace("node_modules/@kiln-test/util", bad);
            let err = packages(lock.as_bytes(), b"{}").unwrap_err();
            assert!(
                err.to_string().contains("unsafe install path"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn integrity_is_checked_with_sha512() {
        let tarball = b"\x1f\x8b not really a tarball";
        verify("util", tarball, &integrity_of(tarball)).unwrap();
        verify(
            "util",
            tarball,
            &format!("sha1-AAAA {}", integrity_of(tarball)),
        )
        .unwrap();

        let err = verify("util", b"tampered", &integrity_of(tarball)).unwrap_err();
        assert!(
            err.to_string().starts_with("util: integrity check failed"),
            "{err}"
        );
        let err = verify("util", tarball, "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=").unwrap_err();
        assert!(err.to_string().contains("no sha512"), "{err}");
        let err = verify("util", tarball, "sha512-!!!").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
