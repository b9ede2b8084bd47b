//! `--cache-to` and `--cache-from`: their specs (buildx's syntax), and
//! what a build does with them: open the `--cache-from` caches before the
//! first step, export to `--cache-to` after the image is written.
//!
//! Two places: `type=local` (an OCI layout directory, `cache_dir.rs`) and
//! `type=registry` (an artifact under a registry tag, `cache_registry.rs`);
//! the content is the same (`cache_format.rs`). A `--cache-from` registry
//! cache that is missing, unreachable or refused is a warning (buildx's
//! behaviour): the build goes on without it. A `--cache-to` that fails
//! fails the build, unless `ignore-error=true`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache_format::CacheSource;
use super::{Build, BuildError, BuildOptions, Steps, cache_dir, cache_registry};
use crate::registry::{Reference, RegistryError, Session};

/// Where a step cache is shared.
#[derive(Clone, Debug)]
pub enum CacheLocation {
    /// `type=local`: an OCI layout directory (`src=DIR`, `dest=DIR`).
    Local(PathBuf),
    /// `type=registry`: a registry reference (`ref=REGISTRY/NAME[:TAG]`).
    Registry(Reference),
}

impl fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheLocation::Local(dir) => write!(f, "{}", dir.display()),
            CacheLocation::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// `--cache-to type=local,dest=DIR|type=registry,ref=REF[,mode=min|max][,ignore-error=true]`.
#[derive(Clone, Debug)]
pub struct CacheTo {
    /// Where the cache goes.
    pub dest: CacheLocation,
    /// `mode=max`: every stage's steps; `min` (the default, as BuildKit):
    /// the target stage's.
    pub all_stages: bool,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Local,
    Registry,
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{key}={other}: expected true or false")),
    }
}

fn reference(value: &str, to: bool) -> Result<Reference, String> {
    let r = Reference::parse(value).map_err(|e| format!("ref={value}: {e}"))?;
    if to && r.digest().is_some() {
        return Err(format!(
            "ref={value}: a cache is pushed to a tag (REGISTRY/NAME:TAG), not a digest"
        ));
    }
    Ok(r)
}

impl CacheTo {
    /// Parses the value of `--cache-to`.
    pub fn parse(spec: &str) -> Result<CacheTo, String> {
        let (ty, fields) = cache_fields(spec)?;
        let mut dest = None;
        let mut all_stages = false;
        let mut ignore_error = false;
        for (k, v) in fields {
            match (ty, k.as_str()) {
                (Type::Local, "dest") => dest = Some(CacheLocation::Local(PathBuf::from(v))),
                (Type::Registry, "ref") => {
                    dest = Some(CacheLocation::Registry(reference(&v, true)?))
                }
                (_, "mode") => {
                    all_stages = match v.as_str() {
                        "max" => true,
                        "min" => false,
                        other => return Err(format!("mode={other}: expected min or max")),
                    }
                }
                (_, "ignore-error") => ignore_error = flag(&k, &v)?,
                // What kiln always does; buildx scripts pass them.
                (Type::Registry, "image-manifest" | "oci-mediatypes") => {
                    if !flag(&k, &v)? {
                        return Err(format!(
                            "{k}=false: kiln's registry cache is always an OCI image manifest"
                        ));
                    }
                }
                (Type::Local, other) => {
                    return Err(format!(
                        "unknown key {other:?}: expected type, dest, mode, ignore-error"
                    ));
                }
                (Type::Registry, other) => {
                    return Err(format!(
                        "unknown key {other:?}: expected type, ref, mode, ignore-error, image-manifest, oci-mediatypes"
                    ));
                }
            }
        }
        let dest = dest.ok_or(match ty {
            Type::Local => "missing dest=DIR",
            Type::Registry => "missing ref=REGISTRY/NAME[:TAG]",
        })?;
        Ok(CacheTo {
            dest,
            all_stages,
            ignore_error,
        })
    }
}

/// Parses the value of `--cache-from`: `type=local,src=DIR` or
/// `type=registry,ref=REF`.
pub fn parse_cache_from(spec: &str) -> Result<CacheLocation, String> {
    let (ty, fields) = cache_fields(spec)?;
    let mut from = None;
    for (k, v) in fields {
        match (ty, k.as_str()) {
            (Type::Local, "src") => from = Some(CacheLocation::Local(PathBuf::from(v))),
            (Type::Registry, "ref") => from = Some(CacheLocation::Registry(reference(&v, false)?)),
            (Type::Local, other) => {
                return Err(format!("unknown key {other:?}: expected type, src"));
            }
            (Type::Registry, other) => {
                return Err(format!("unknown key {other:?}: expected type, ref"));
            }
        }
    }
    from.ok_or_else(|| {
        match ty {
            Type::Local => "missing src=DIR",
            Type::Registry => "missing ref=REGISTRY/NAME[:TAG]",
        }
        .to_string()
    })
}

/// `type=T,K=V,...`: the type, and the fields after it.
fn cache_fields(spec: &str) -> Result<(Type, Vec<(String, String)>), String> {
    let mut ty = None;
    let mut out = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?}: expected KEY=VALUE"))?;
        if k == "type" {
            ty = Some(v.to_string());
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    }
    match ty.as_deref() {
        Some("local") => Ok((Type::Local, out)),
        Some("registry") => Ok((Type::Registry, out)),
        Some(other) => Err(format!(
            "type={other} is not supported: kiln shares caches through directories (type=local) and registries (type=registry)"
        )),
        None => Err("missing type=local or type=registry".into()),
    }
}

/// The build's registry session, started on first use (shared with the
/// pulls and pushes of the build).
fn session(opts: &BuildOptions) -> Result<Arc<Session>, String> {
    opts.registries
        .session(&opts.cancel)
        .map_err(|e| e.to_string())
}

/// The caches of `--cache-from`, opened. A directory that holds none is an
/// error; a registry cache that cannot be read is a warning.
pub(super) fn open_sources(
    opts: &BuildOptions,
    steps: &Steps<'_>,
) -> Result<Vec<Box<dyn CacheSource>>, BuildError> {
    let mut out: Vec<Box<dyn CacheSource>> = Vec::new();
    for from in &opts.cache_from {
        let r = match from {
            CacheLocation::Local(dir) => {
                let dir = cache_dir::CacheDir::open(dir).map_err(BuildError::Usage)?;
                out.push(Box::new(dir));
                continue;
            }
            CacheLocation::Registry(r) => r,
        };
        steps.run(&format!("importing cache manifest from {r}"), |id| {
            let opened = session(opts)
                .map_err(RegistryError::Io)
                .and_then(|s| cache_registry::RegistryCache::open(s, r.clone()));
            match opened {
                Ok(Some(cache)) => {
                    steps.log(id, &format!("{} entries", cache.len()));
                    out.push(Box::new(cache));
                }
                Ok(None) => steps.warn(&format!(
                    "--cache-from {r}: not found on the registry; building without it"
                )),
                Err(e) => steps.warn(&format!("--cache-from {r}: {e}; building without it")),
            }
            Ok::<_, BuildError>(())
        })?;
    }
    Ok(out)
}

impl Build<'_> {
    /// Exports the step cache entries of the build (the target stage's, or
    /// every stage's for `mode=max`) to `to`.
    pub(super) fn export_cache(&self, to: &CacheTo, target: usize) -> Result<(), BuildError> {
        let name = format!("exporting cache to {}", to.dest);
        let result = self.steps.run(&name, |id| {
            let keys = self.keys.lock().expect("keys lock").clone();
            let mut entries = Vec::new();
            for (stage, key) in keys {
                if (to.all_stages || stage == target)
                    && let Some(e) = self.store.step_entry(&key)?
                    && !entries.iter().any(|(k, _)| *k == key)
                {
                    entries.push((key, e));
                }
            }
            let failed = |message| BuildError::Step {
                step: name.clone(),
                message,
                stderr: String::new(),
            };
            let summary = match &to.dest {
                CacheLocation::Local(dir) => {
                    let total = cache_dir::export(self.store, dir, &entries).map_err(failed)?;
                    format!("{} step(s) written, {total} in the cache", entries.len())
                }
                CacheLocation::Registry(r) => {
                    let session = session(self.opts).map_err(failed)?;
                    let log = |line: &str| self.steps.log(id, line);
                    let progress = cache_registry::StepLog(&log);
                    let done = cache_registry::export(&session, r, self.store, &entries, &progress)
                        .map_err(failed)?;
                    format!(
                        "{} step(s) written, {} in the cache, {} uploaded",
                        entries.len(),
                        done.entries,
                        super::human_bytes(done.uploaded)
                    )
                }
            };
            self.steps.log(id, &summary);
            Ok::<_, BuildError>(())
        });
        match result {
            Err(BuildError::Step { message, .. }) if to.ignore_error => {
                self.steps
                    .warn(&format!("{name} failed (ignore-error=true): {message}"));
                Ok(())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_specs_parse_like_buildx() {
        let to = CacheTo::parse(
            "type=registry,ref=localhost:5000/cache/app:buildcache,mode=max,image-manifest=true,oci-mediatypes=true",
        )
        .unwrap();
        assert!(to.all_stages && !to.ignore_error);
        assert_eq!(to.dest.to_string(), "localhost:5000/cache/app:buildcache");
        let to = CacheTo::parse("type=registry,ref=example.com/app,ignore-error=true").unwrap();
        assert!(!to.all_stages && to.ignore_error);
        assert_eq!(to.dest.to_string(), "example.com/app:latest");
        let from = parse_cache_from("type=registry,ref=localhost:5000/c:x").unwrap();
        assert!(matches!(from, CacheLocation::Registry(r) if r.tag() == Some("x")));
        assert!(matches!(
            parse_cache_from("type=local,src=dir").unwrap(),
            CacheLocation::Local(_)
        ));
    }

    #[test]
    fn bad_specs_say_what_was_expected() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("type=registry", "missing ref="),
            ("type=registry,dest=x", "expected type, ref, mode"),
            ("type=local,ref=x", "expected type, dest, mode"),
            ("type=registry,ref=a b", "ref=a b"),
            (
                "type=registry,ref=x,image-manifest=false",
                "always an OCI image manifest",
            ),
            (
                "type=registry,ref=x,ignore-error=yes",
                "expected true or false",
            ),
            ("type=gha", "type=gha is not supported"),
            ("ref=x", "missing type="),
        ];
        for (spec, want) in cases {
            let e = CacheTo::parse(spec).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = CacheTo::parse(&format!("type=registry,ref=x@{digest}")).unwrap_err();
        assert!(e.contains("pushed to a tag"), "{e}");
        // A pinned cache can be read.
        assert!(parse_cache_from(&format!("type=registry,ref=x@{digest}")).is_ok());
        let e = parse_cache_from("type=registry,src=x").unwrap_err();
        assert!(e.contains("expected type, ref"), "{e}");
    }
}
