//! `--output` (`-o`) as buildx spells it: `type=oci,dest=FILE`,
//! `type=image,"name=a,b",push=true`, `type=registry,name=REF`...

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::layer::Compression;

/// What kiln says to buildx's ways of loading an image into docker
/// (`--load`, `--output type=docker` without `dest=`).
pub const NO_DAEMON: &str = "kiln has no docker daemon to load into: the image is in kiln's store; use `kiln save IMAGE | docker load` (or --output type=docker,dest=FILE for the archive)";

/// Where an export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Standard output.
    Stdout,
    /// A host path.
    Path(PathBuf),
}

impl Dest {
    fn parse(s: &str) -> Dest {
        if s == "-" {
            Dest::Stdout
        } else {
            Dest::Path(PathBuf::from(s))
        }
    }
}

/// What `--output` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// The store (the default), under more `names` (`type=image,name=`),
    /// and pushed to them with `push` (`push=true`, or `type=registry`).
    Image {
        /// Registry references to name the image (comma-separated in the
        /// spec: `"name=a,b"`).
        names: Vec<crate::registry::Reference>,
        /// Push to `names` (or, without them, to the `-t` names).
        push: bool,
    },
    /// An OCI layout: a tar archive, or a directory with `tar=false`.
    Oci {
        /// Where.
        dest: Dest,
        /// Archive (true) or directory (false).
        tar: bool,
    },
    /// A docker archive (what `docker load` reads; `kiln save`'s format).
    Docker {
        /// Where.
        dest: Dest,
    },
    /// The filesystem as one tar.
    Tar {
        /// Where.
        dest: Dest,
    },
    /// The filesystem as files in a directory.
    Local {
        /// The directory.
        dest: PathBuf,
    },
}

/// A parsed `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// What to write.
    pub kind: OutputKind,
    /// Layer compression for the image.
    pub compression: Compression,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            kind: OutputKind::Image {
                names: Vec::new(),
                push: false,
            },
            compression: Compression::Gzip,
        }
    }
}

impl OutputSpec {
    /// Parses `type=oci,dest=PATH[,tar=false][,compression=zstd]`,
    /// `type=tar,dest=PATH`, `type=local,dest=DIR`,
    /// `type=image[,name=REF][,push=true|false]`, `type=registry[,name=REF]`
    /// (`type=image,push=true`), or the shorthands `PATH` (local) and `-`
    /// (tar to stdout). As in buildx, a field in double quotes may hold
    /// commas: `"name=a:1,b:1"` names two references.
    pub fn parse(spec: &str) -> Result<OutputSpec, String> {
        if !spec.contains('=') {
            return Ok(OutputSpec {
                kind: if spec == "-" {
                    OutputKind::Tar { dest: Dest::Stdout }
                } else {
                    OutputKind::Local {
                        dest: PathBuf::from(spec),
                    }
                },
                compression: Compression::Gzip,
            });
        }
        let mut fields = BTreeMap::new();
        for part in split_fields(spec)? {
            let part = part.as_str();
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("{part:?} is not KEY=VALUE"));
            };
            if fields
                .insert(k.trim().to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(format!("{k} is given twice"));
            }
        }
        let ty = fields
            .remove("type")
            .ok_or("missing type=: expected type=oci, docker, tar, local, image or registry")?;
        let compression = match fields.remove("compression") {
            Some(c) => Compression::parse(&c)
                .ok_or_else(|| format!("compression={c}: expected gzip, zstd or uncompressed"))?,
            None => Compression::Gzip,
        };
        if fields.get("dest").is_some_and(|d| d.is_empty()) {
            return Err(format!(
                "type={ty}: dest= is empty: expected dest=PATH, or dest=- for standard output"
            ));
        }
        let mut dest = || {
            fields
                .remove("dest")
                .ok_or_else(|| format!("type={ty} needs dest=PATH"))
        };
        let kind = match ty.as_str() {
            "image" | "registry" => {
                let names = match fields.remove("name") {
                    Some(list) => parse_names(&list)?,
                    None => Vec::new(),
                };
                let push = match (ty.as_str(), fields.remove("push").as_deref()) {
                    ("registry", None | Some("true")) => true,
                    ("registry", Some(v)) => {
                        return Err(format!(
                            "push={v}: type=registry always pushes (type=image,name=... only names)"
                        ));
                    }
                    (_, None | Some("false")) => false,
                    (_, Some("true")) => true,
                    (_, Some(v)) => return Err(format!("push={v}: expected true or false")),
                };
                OutputKind::Image { names, push }
            }
            "oci" => {
                let dest = Dest::parse(&dest()?);
                let tar = match fields.remove("tar").as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => return Err(format!("tar={v}: expected true or false")),
                };
                if !tar && dest == Dest::Stdout {
                    return Err("tar=false writes a directory; it cannot go to stdout".into());
                }
                OutputKind::Oci { dest, tar }
            }
            "docker" => match fields.remove("dest") {
                Some(d) => OutputKind::Docker {
                    dest: Dest::parse(&d),
                },
                None => return Err(NO_DAEMON.into()),
            },
            "tar" => OutputKind::Tar {
                dest: Dest::parse(&dest()?),
            },
            "local" => match Dest::parse(&dest()?) {
                Dest::Path(p) => OutputKind::Local { dest: p },
                Dest::Stdout => {
                    return Err("type=local writes a directory; use type=tar for stdout".into());
                }
            },
            other => {
                return Err(format!(
                    "unknown output type {other:?}: expected oci, docker, tar, local, image or registry"
                ));
            }
        };
        if let Some(k) = fields.keys().next() {
            return Err(format!("unknown key {k:?} for type={ty}"));
        }
        Ok(OutputSpec { kind, compression })
    }
}

/// Splits `spec` at commas outside double quotes; quotes are removed
/// (`type=image,"name=a,b"` is `type=image` and `name=a,b`).
fn split_fields(spec: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in spec.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    if quoted {
        return Err("a double quote is not closed".into());
    }
    Ok(fields)
}

/// The references of `name=`: comma-separated, each a registry reference
/// with a tag (a digest is what a push gives, not where it goes).
fn parse_names(list: &str) -> Result<Vec<crate::registry::Reference>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!("name={list}: an empty name"));
        }
        let r = crate::registry::Reference::parse(name).map_err(|e| format!("name={name}: {e}"))?;
        if r.digest().is_some() {
            return Err(format!(
                "name={name}: name an image by [REGISTRY/]NAME[:TAG], without a digest"
            ));
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_specs() {
        let o = OutputSpec::parse("type=oci,dest=out.tar").unwrap();
        assert_eq!(
            o.kind,
            OutputKind::Oci {
                dest: Dest::Path("out.tar".into()),
                tar: true
            }
        );
        let o = OutputSpec::parse("type=oci,dest=dir,tar=false,compression=zstd").unwrap();
        assert_eq!(o.compression, Compression::Zstd);
        assert!(matches!(o.kind, OutputKind::Oci { tar: false, .. }));
        assert_eq!(
            OutputSpec::parse("type=tar,dest=-").unwrap().kind,
            OutputKind::Tar { dest: Dest::Stdout }
        );
        assert_eq!(
            OutputSpec::parse("out").unwrap().kind,
            OutputKind::Local { dest: "out".into() }
        );
        assert_eq!(
            OutputSpec::parse("type=image,compression=uncompressed")
                .unwrap()
                .compression,
            Compression::Uncompressed
        );
        let names = |spec: &str| match OutputSpec::parse(spec).unwrap().kind {
            OutputKind::Image { names, push } => (
                names.iter().map(ToString::to_string).collect::<Vec<_>>(),
                push,
            ),
            other => panic!("{spec}: {other:?}"),
        };
        assert_eq!(names("type=image"), (vec![], false));
        assert_eq!(
            names("type=image,name=localhost:5000/a:1,push=true"),
            (vec!["localhost:5000/a:1".to_string()], true)
        );
        assert_eq!(
            names("type=image,\"name=localhost:5000/a:1,localhost:5000/b\""),
            (
                vec![
                    "localhost:5000/a:1".to_string(),
                    "localhost:5000/b:latest".to_string()
                ],
                false
            )
        );
        assert_eq!(
            names("type=registry,name=\"alpine:3,ghcr.io/x/y:2\""),
            (
                vec![
                    "docker.io/library/alpine:3".to_string(),
                    "ghcr.io/x/y:2".to_string()
                ],
                true
            )
        );
        assert_eq!(names("type=registry"), (vec![], true));
        let digest_spec = format!("type=image,name=a@sha256:{}", "0".repeat(64));
        for (bad, why) in [
            ("type=image,name=a,push=maybe", "expected true or false"),
            ("type=registry,push=false", "always pushes"),
            ("type=image,\"name=a,b", "not closed"),
            ("type=image,name=a/Bad", "name=a/Bad"),
            ("type=image,\"name=a,,b\"", "empty name"),
            (digest_spec.as_str(), "without a digest"),
            ("type=image,dest=x", "unknown key"),
            ("type=oci", "needs dest"),
            ("type=zip,dest=x", "unknown output type"),
            ("type=oci,dest=x,colour=red", "unknown key"),
            ("type=oci,dest=x,compression=lz4", "expected gzip"),
            ("type=oci,dest=-,tar=false", "cannot go to stdout"),
            ("type=local,dest=-", "use type=tar"),
            ("dest=x", "missing type"),
            ("type=oci,dest=x,tar=maybe", "true or false"),
        ] {
            let e = OutputSpec::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
