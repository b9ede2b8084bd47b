//! `--mount=type=secret`: giving one step its secrets.
//!
//! Files go into in-memory, read-only [`SecretFs`] mounts: one per target
//! directory (`/run/secrets` by default), which is also preopened so the
//! program holds it as a capability. When the image already has a non-empty
//! directory there, each secret is mounted as a single file instead, so the
//! step still sees the image's own files. `env=NAME` puts the value in the
//! step's environment (which kiln zeroes when the step ends); a value that is
//! not UTF-8 cannot be an environment variable and is an error.
//!
//! A secret the user did not provide: with `required`, an error before the
//! step starts that names the flag to pass; otherwise the step runs without
//! it and the build warns.

use std::collections::BTreeMap;

use super::SecretStore;
use crate::frontend::{Mount, MountType};
use crate::snapshot::{ImagePath, Node, Snapshot};
use crate::vfs::{SecretFile, SecretFs, Vfs};

/// What attaching a step's secret mounts produced.
#[derive(Default)]
pub struct Attached {
    /// Environment variables to add to the step (`env=`).
    pub env: Vec<(String, String)>,
    /// Directories to preopen.
    pub preopens: Vec<ImagePath>,
    /// Ids that were not provided and not required.
    pub missing: Vec<String>,
}

/// The error for a required secret nobody provided; `provided` says
/// which were ([`SecretStore::provided`]).
pub fn required_message(id: &str, provided: &str) -> String {
    format!(
        "secret {id:?} is required by this step but was not provided ({provided}): pass --secret id={id},src=FILE (or --secret id={id},env=VAR)"
    )
}

/// Attaches every `type=secret` mount of `mounts` to `vfs`. `lower` is the
/// image under the step; `dev` numbers the new backends from there.
pub fn attach(
    vfs: &mut Vfs,
    secrets: &SecretStore,
    mounts: &[&Mount],
    workdir: &ImagePath,
    lower: &Snapshot,
    mut dev: u64,
) -> Result<Attached, String> {
    let mut out = Attached::default();
    let mut by_dir: BTreeMap<ImagePath, Vec<SecretFile>> = BTreeMap::new();
    for m in mounts.iter().filter(|m| m.kind == MountType::Secret) {
        let id =
            m.id.clone()
                .expect("Mount::parse gives every secret mount an id");
        let Some(secret) = secrets.get(&id) else {
            if m.required {
                return Err(required_message(&id, &secrets.provided()));
            }
            out.missing.push(id);
            continue;
        };
        if let Some(var) = &m.env {
            let value = std::str::from_utf8(secret.expose())
                .map_err(|_| format!("secret {id:?} is not UTF-8 text, so it cannot be the environment variable {var}"))?
                .to_string();
            out.env.push((var.clone(), value));
        }
        if let Some(target) = &m.target {
            let path =
                ImagePath::resolve(workdir, target).map_err(|e| format!("secret {id:?}: {e}"))?;
            if path.is_root() {
                return Err(format!("secret {id:?}: target= must name a file"));
            }
            by_dir.entry(path.parent()).or_default().push(SecretFile {
                name: path.name().to_string(),
                secret: secret.clone(),
                mode: m.mode.unwrap_or(0o400),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
            });
        }
    }
    for (dir, files) in by_dir {
        let occupied =
            matches!(lower.get(&dir), Some(Node::Dir(_))) && lower.children(&dir).next().is_some();
        if occupied {
            for file in files {
                let path = dir.join(&file.name);
                vfs.mount(&path, Box::new(SecretFs::single(file, dev, 0)), false)
                    .map_err(|e| format!("cannot mount a secret at {path}: {e}"))?;
                dev += 1;
            }
        } else {
            vfs.mount(&dir, Box::new(SecretFs::new(files, dev, 0)), true)
                .map_err(|e| format!("cannot mount secrets at {dir}: {e}"))?;
            dev += 1;
            out.preopens.push(dir);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::secrets::{SecretSpec, SecretStore};
    use crate::store::Store;
    use crate::vfs::{FileType, OverlayFs, Scope, system_clock};

    fn store_with(values: &[(&str, &str)]) -> SecretStore {
        let specs: Vec<SecretSpec> = values
            .iter()
            .map(|(id, _)| SecretSpec::parse(&format!("id={id},env=V_{id}"), &|_| true).unwrap())
            .collect();
        let owned: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (format!("V_{k}"), v.to_string()))
            .collect();
        SecretStore::load(&specs, 1 << 20, &|name| {
            owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
        })
        .unwrap()
    }

    #[test]
    fn mode_owner_env_and_preopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lower = Snapshot::empty();
        let mut vfs = Vfs::new(OverlayFs::new(
            Arc::new(lower.clone()),
            store,
            1,
            system_clock(),
        ));
        let secrets = store_with(&[("tok", "value-1"), ("key", "value-2")]);
        let m1 = Mount::parse(
            "type=secret,id=tok,target=/run/secrets/tok,mode=0440,uid=1000,gid=100,env=TOK",
        )
        .unwrap();
        let m2 = Mount::parse("type=secret,id=key,target=/etc/app/key.pem").unwrap();
        let missing = Mount::parse("type=secret,id=nope").unwrap();
        let got = attach(
            &mut vfs,
            &secrets,
            &[&m1, &m2, &missing],
            &ImagePath::root(),
            &lower,
            10,
        )
        .unwrap();
        assert_eq!(got.env, [("TOK".to_string(), "value-1".to_string())]);
        assert_eq!(got.missing, ["nope"]);
        let dirs: Vec<String> = got.preopens.iter().map(|p| p.absolute()).collect();
        assert_eq!(dirs, ["/etc/app", "/run/secrets"]);
        let root = vfs.root();
        let st = vfs
            .stat_at(root, Scope::Clamp, "run/secrets/tok", true)
            .unwrap();
        assert_eq!(
            (st.kind, st.mode, st.uid, st.gid, st.size),
            (FileType::File, 0o440, 1000, 100, 7)
        );
        let st = vfs
            .stat_at(root, Scope::Clamp, "etc/app/key.pem", true)
            .unwrap();
        assert_eq!((st.mode, st.uid), (0o400, 0));
        let required = Mount::parse("type=secret,id=nope,required").unwrap();
        let err = attach(
            &mut vfs,
            &secrets,
            &[&required],
            &ImagePath::root(),
            &lower,
            20,
        )
        .err()
        .unwrap();
        assert!(err.contains("pass --secret id=nope,src=FILE"), "{err}");
        assert!(
            vfs.overlay().changes().unwrap().is_empty(),
            "no mountpoint in the layer"
        );
    }
}
