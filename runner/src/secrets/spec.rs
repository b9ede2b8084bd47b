//! `--secret` specs, with buildx's syntax and defaults.
//!
//! `[type=file|env,]id=ID[,src|source=PATH][,env=VAR]`:
//! - no type: `src` means a file and `env` a variable; with neither, the
//!   variable named ID if it exists, else the file `./ID`;
//! - `type=env`: the variable `env` (default ID);
//! - `type=file`: the file `src` (default `./ID`).
//!
//! Any other key is an error. This module only parses (pure); reading the
//! value into memory is [`super`]'s job.

use std::path::PathBuf;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file.
    File(PathBuf),
    /// A host environment variable.
    Env(String),
}

/// One parsed `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The id a `RUN --mount=type=secret,id=...` asks for.
    pub id: String,
    /// Where the value is read from.
    pub source: SecretSource,
}

impl SecretSpec {
    /// Parses a spec; `env_exists` tells whether a host variable is set
    /// (for buildx's default of preferring a variable named like the id).
    pub fn parse(spec: &str, env_exists: &dyn Fn(&str) -> bool) -> Result<SecretSpec, String> {
        let mut ty = None;
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in spec.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                return Err(format!(
                    "{field:?} is not KEY=VALUE; expected [type=file|env,]id=ID[,src=PATH][,env=VAR]"
                ));
            };
            let slot = match k.trim() {
                "type" => &mut ty,
                "id" => &mut id,
                "src" | "source" => &mut src,
                "env" => &mut env,
                other => {
                    return Err(format!(
                        "unknown key {other:?}; expected type, id, src (source) or env"
                    ));
                }
            };
            if v.is_empty() {
                return Err(format!("{k}= needs a value"));
            }
            if slot.is_some() {
                return Err(format!(
                    "{} is given twice (one --secret per secret)",
                    k.trim()
                ));
            }
            *slot = Some(v.to_string());
        }
        let id = id.ok_or("missing id=ID")?;
        let source = match ty.as_deref() {
            Some("file") => {
                if env.is_some() {
                    return Err("type=file takes src=PATH, not env=".into());
                }
                SecretSource::File(PathBuf::from(src.unwrap_or_else(|| id.clone())))
            }
            Some("env") => {
                if src.is_some() {
                    return Err("type=env takes env=VAR, not src=".into());
                }
                SecretSource::Env(env.unwrap_or_else(|| id.clone()))
            }
            Some(other) => return Err(format!("unknown type {other:?}: expected file or env")),
            None => match (src, env) {
                (Some(_), Some(_)) => return Err("give src= or env=, not both".into()),
                (Some(path), None) => SecretSource::File(PathBuf::from(path)),
                (None, Some(var)) => SecretSource::Env(var),
                (None, None) if env_exists(&id) => SecretSource::Env(id.clone()),
                (None, None) => SecretSource::File(PathBuf::from(&id)),
            },
        };
        Ok(SecretSpec { id, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<SecretSpec, String> {
        SecretSpec::parse(spec, &|name| name == "NPM_TOKEN")
    }

    #[test]
    fn a_repeated_key_is_an_error() {
        assert_eq!(
            parse("id=a,src=x,id=b").unwrap_err(),
            "id is given twice (one --secret per secret)"
        );
        assert!(parse("id=a,src=x,source=y").unwrap_err().contains("twice"));
    }

    #[test]
    fn follows_buildx_defaults() {
        assert_eq!(
            parse("id=npm_token,src=./npm_token.txt").unwrap().source,
            SecretSource::File("./npm_token.txt".into())
        );
        assert_eq!(
            parse("id=npm_token,env=NPM_TOKEN").unwrap().source,
            SecretSource::Env("NPM_TOKEN".into())
        );
        assert_eq!(
            parse("id=NPM_TOKEN").unwrap().source,
            SecretSource::Env("NPM_TOKEN".into())
        );
        assert_eq!(
            parse("id=other").unwrap().source,
            SecretSource::File("other".into())
        );
        assert_eq!(
            parse("type=env,id=tok").unwrap().source,
            SecretSource::Env("tok".into())
        );
        assert_eq!(
            parse("type=file,id=tok").unwrap().source,
            SecretSource::File("tok".into())
        );
        assert_eq!(
            parse("type=file,id=t,source=/x").unwrap().source,
            SecretSource::File("/x".into())
        );
    }

    #[test]
    fn rejects_unknown_keys_and_contradictions() {
        for (spec, why) in [
            ("id=a,colour=red", "unknown key"),
            ("src=x", "missing id"),
            ("id=a,type=vault", "unknown type"),
            ("type=file,id=a,env=B", "not env="),
            ("type=env,id=a,src=x", "not src="),
            ("id=a,src=x,env=Y", "not both"),
            ("id", "KEY=VALUE"),
            ("id=", "needs a value"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
