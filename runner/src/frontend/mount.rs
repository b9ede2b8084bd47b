//! `RUN --mount=...` specs, with every key BuildKit's Dockerfile frontend knows.
//!
//! A spec is a comma-separated list (CSV, so a value may be double-quoted to
//! hold a comma) of `key=value` fields and a few bare flags (`ro`, `rw`,
//! `required`). Keys are checked against the mount type the way BuildKit
//! does: a key that does not apply to the type is an error, never ignored.
//! Defaults that need the image or the build (relative targets, the secret
//! store) are left to the executor; this module only checks and types.

use std::fmt;
use std::ops::Range;

/// The kinds of mount BuildKit knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    /// A read-only (by default) view of the build context or a stage.
    Bind,
    /// A persistent directory in the store, shared across builds by id.
    Cache,
    /// An empty in-memory directory.
    Tmpfs,
    /// A build secret, served from memory.
    Secret,
    /// An SSH agent socket (needs networking; parsed, refused at run time).
    Ssh,
}

impl MountType {
    /// The name used in `type=`.
    pub fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Many writers at once (the default).
    Shared,
    /// Each writer gets its own copy when one is in use.
    Private,
    /// One writer at a time; others wait.
    Locked,
}

/// One parsed `--mount` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `type=`; bind when absent.
    pub kind: MountType,
    /// `target=` / `dst=` / `destination=`, as written.
    pub target: Option<String>,
    /// `source=` / `src=`: a path in the context or in `from`.
    pub source: Option<String>,
    /// `from=`: a stage or image to take `source` from.
    pub from: Option<String>,
    /// `id=`: the secret, ssh or cache id.
    pub id: Option<String>,
    /// `env=`: an environment variable that receives a secret's value.
    pub env: Option<String>,
    /// `required`: fail when the secret or ssh agent is not provided.
    pub required: bool,
    /// `mode=`: octal permission bits of the secret file or cache dir.
    pub mode: Option<u32>,
    /// `uid=`: owner of the secret file or cache dir.
    pub uid: Option<u32>,
    /// `gid=`: group of the secret file or cache dir.
    pub gid: Option<u32>,
    /// `ro`/`readonly` or `rw`/`readwrite`; `None` means the type's default.
    pub readonly: Option<bool>,
    /// `sharing=` for cache mounts.
    pub sharing: Option<Sharing>,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<u64>,
    /// `origin=` (kiln's extension) of a secret: sent only as a header of
    /// the step's HTTP requests to this origin, never a file or variable.
    pub origin: Option<crate::network::Origin>,
    /// `header=` of an origin-bound secret [default: Authorization].
    pub header: Option<String>,
    /// `scheme=` of an origin-bound secret: the word before the value
    /// [default: Bearer for Authorization, none for other headers];
    /// `scheme=none` sends the value alone.
    pub scheme: Option<String>,
}

/// A problem in a mount spec: the byte range in the spec and the message.
pub type MountError = (Range<usize>, String);

/// The default directory of secret mounts, as in BuildKit.
pub const SECRETS_DIR: &str = "/run/secrets";

const KEYS: &str = "type, id, target (dst, destination), source (src), from, env, required, mode, uid, gid, rw (readwrite), ro (readonly), sharing, size, origin, header, scheme";

impl Mount {
    /// Parses and checks a spec (already expanded).
    pub fn parse(spec: &str) -> Result<Mount, MountError> {
        let fields = csv_fields(spec)?;
        let kind = fields
            .iter()
            .find(|f| f.key == "type")
            .map(|f| match f.value.as_deref() {
                Some("bind") => Ok(MountType::Bind),
                Some("cache") => Ok(MountType::Cache),
                Some("tmpfs") => Ok(MountType::Tmpfs),
                Some("secret") => Ok(MountType::Secret),
                Some("ssh") => Ok(MountType::Ssh),
                other => Err((
                    f.range.clone(),
                    format!(
                        "unknown mount type {:?}: expected bind, cache, tmpfs, secret or ssh",
                        other.unwrap_or("")
                    ),
                )),
            })
            .transpose()?
            .unwrap_or(MountType::Bind);
        let mut m = Mount {
            kind,
            target: None,
            source: None,
            from: None,
            id: None,
            env: None,
            required: false,
            mode: None,
            uid: None,
            gid: None,
            readonly: None,
            sharing: None,
            size: None,
            origin: None,
            header: None,
            scheme: None,
        };
        use MountType::*;
        for f in &fields {
            let applies = |types: &[MountType]| -> Result<(), MountError> {
                if types.contains(&kind) {
                    Ok(())
                } else {
                    let names: Vec<_> = types.iter().map(|t| format!("type={t}")).collect();
                    Err((
                        f.range.clone(),
                        format!(
                            "key {:?} does not apply to type={kind}; it is for {}",
                            f.key,
                            names.join(" or ")
                        ),
                    ))
                }
            };
            match f.key.as_str() {
                "type" => {}
                "target" | "dst" | "destination" => m.target = Some(f.value_nonempty()?),
                "source" | "src" => {
                    applies(&[Bind, Cache])?;
                    m.source = Some(f.value_nonempty()?);
                }
                "from" => {
                    applies(&[Bind, Cache])?;
                    m.from = Some(f.value_nonempty()?);
                }
                "id" => {
                    applies(&[Cache, Secret, Ssh])?;
                    m.id = Some(f.value_nonempty()?);
                }
                "env" => {
                    applies(&[Secret])?;
                    let name = f.value_nonempty()?;
                    if !is_env_name(&name) {
                        return Err((
                            f.range.clone(),
                            format!(
                                "env={name:?} is not a valid variable name: expected letters, digits and _"
                            ),
                        ));
                    }
                    m.env = Some(name);
                }
                "required" => {
                    applies(&[Secret, Ssh])?;
                    m.required = f.bool_value()?;
                }
                "mode" => {
                    applies(&[Cache, Secret, Ssh])?;
                    let v = f.value_nonempty()?;
                    m.mode = Some(
                        u32::from_str_radix(&v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| {
                                (
                                    f.range.clone(),
                                    format!(
                                        "mode={v:?} is not an octal file mode like 0400 or 0644"
                                    ),
                                )
                            })?,
                    );
                }
                "uid" | "gid" => {
                    applies(&[Cache, Secret, Ssh])?;
                    let v = f.value_nonempty()?;
                    let n = v.parse::<u32>().map_err(|_| {
                        (
                            f.range.clone(),
                            format!(
                                "{}={v:?} is not a number: expected a numeric id like 1000",
                                f.key
                            ),
                        )
                    })?;
                    if f.key == "uid" {
                        m.uid = Some(n);
                    } else {
                        m.gid = Some(n);
                    }
                }
                "rw" | "readwrite" => {
                    applies(&[Bind, Cache])?;
                    m.readonly = Some(!f.bool_value()?);
                }
                "ro" | "readonly" => {
                    applies(&[Bind, Cache])?;
                    m.readonly = Some(f.bool_value()?);
                }
                "sharing" => {
                    applies(&[Cache])?;
                    m.sharing = Some(match f.value.as_deref() {
                        Some("shared") => Sharing::Shared,
                        Some("private") => Sharing::Private,
                        Some("locked") => Sharing::Locked,
                        _ => {
                            return Err((
                                f.range.clone(),
                                "sharing= expects shared, private or locked".into(),
                            ));
                        }
                    });
                }
                "size" => {
                    applies(&[Tmpfs])?;
                    let v = f.value_nonempty()?;
                    m.size = Some(parse_size(&v).ok_or_else(|| {
                        (
                            f.range.clone(),
                            format!("size={v:?} is not a size: expected bytes with an optional k, m, g or t suffix, like 64m"),
                        )
                    })?);
                }
                "origin" => {
                    applies(&[Secret])?;
                    let v = f.value_nonempty()?;
                    m.origin =
                        Some(crate::network::Origin::parse(&v).map_err(|e| (f.range.clone(), e))?);
                }
                "header" => {
                    applies(&[Secret])?;
                    let v = f.value_nonempty()?;
                    crate::network::check_header(&v).map_err(|e| (f.range.clone(), e))?;
                    m.header = Some(v);
                }
                "scheme" => {
                    applies(&[Secret])?;
                    let v = f.value_nonempty()?;
                    crate::network::check_scheme(&v).map_err(|e| (f.range.clone(), e))?;
                    m.scheme = Some(v);
                }
                other => {
                    return Err((
                        f.range.clone(),
                        format!("unknown --mount key {other:?}; expected one of {KEYS}"),
                    ));
                }
            }
        }
        match kind {
            Bind | Cache | Tmpfs if m.target.is_none() => {
                return Err((
                    0..spec.len(),
                    format!("a type={kind} mount needs target=PATH"),
                ));
            }
            Secret => {
                if m.id.is_none() {
                    m.id = m
                        .target
                        .as_deref()
                        .map(|t| t.trim_end_matches('/'))
                        .and_then(|t| t.rsplit('/').next())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string);
                }
                let Some(id) = &m.id else {
                    return Err((
                        0..spec.len(),
                        "a type=secret mount needs id=ID (or a target=PATH whose file name is the id)"
                            .into(),
                    ));
                };
                if m.origin.is_some() {
                    if m.target.is_some() || m.env.is_some() {
                        return Err((
                            0..spec.len(),
                            format!(
                                "secret {id:?} has origin=, so it is sent only as a header to that origin: it cannot also have target= or env="
                            ),
                        ));
                    }
                } else if m.header.is_some() || m.scheme.is_some() {
                    return Err((
                        0..spec.len(),
                        "header= and scheme= apply to a secret bound to an origin: add origin=URL"
                            .into(),
                    ));
                } else if m.target.is_none() && m.env.is_none() {
                    m.target = Some(format!("{SECRETS_DIR}/{id}"));
                }
            }
            Ssh if m.target.is_none() => {
                m.target = Some("/run/buildkit/ssh_agent.0".into());
            }
            _ => {}
        }
        Ok(m)
    }

    /// Whether the mount is read-only once defaults apply (bind: ro, cache: rw).
    pub fn is_readonly(&self) -> bool {
        self.readonly
            .unwrap_or(matches!(self.kind, MountType::Bind))
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `1024`, `64k`, `64m`, `1g`, `1gb` (binary units, as BuildKit does).
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 10),
        'm' => (&lower[..lower.len() - 1], 20),
        'g' => (&lower[..lower.len() - 1], 30),
        't' => (&lower[..lower.len() - 1], 40),
        _ => (lower, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

struct Field {
    key: String,
    value: Option<String>,
    range: Range<usize>,
}

impl Field {
    fn value_nonempty(&self) -> Result<String, MountError> {
        match &self.value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => Err((self.range.clone(), format!("{}= needs a value", self.key))),
        }
    }

    fn bool_value(&self) -> Result<bool, MountError> {
        match self.value.as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err((
                self.range.clone(),
                format!(
                    "{}={v:?} is not a boolean: expected true or false",
                    self.key
                ),
            )),
        }
    }
}

/// Splits a spec into CSV fields (double quotes may wrap a field or value).
fn csv_fields(spec: &str) -> Result<Vec<Field>, MountError> {
    let mut fields = Vec::new();
    let mut start = 0;
    let bytes = spec.as_bytes();
    while start <= spec.len() {
        let mut i = start;
        let mut text = String::new();
        let mut quoted = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'"' {
                if quoted && bytes.get(i + 1) == Some(&b'"') {
                    text.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                i += 1;
                continue;
            }
            if c == b',' && !quoted {
                break;
            }
            let ch = spec[i..].chars().next().expect("in bounds");
            text.push(ch);
            i += ch.len_utf8();
        }
        if quoted {
            return Err((start..spec.len(), "unterminated quote in --mount".into()));
        }
        let range = start..i;
        let text = text.trim();
        if text.is_empty() {
            return Err((range, "empty field in --mount: expected key=value".into()));
        }
        {
            let (key, value) = match text.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_string())),
                None => (text.to_ascii_lowercase(), None),
            };
            if value.is_none()
                && !matches!(
                    key.as_str(),
                    "ro" | "readonly" | "rw" | "readwrite" | "required"
                )
            {
                return Err((range, format!("expected {key}=VALUE in --mount")));
            }
            if fields.iter().any(|f: &Field| f.key == key) {
                return Err((range, format!("--mount key {key:?} is given twice")));
            }
            fields.push(Field { key, value, range });
        }
        start = i + 1;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_defaults_follow_buildkit() {
        let m = Mount::parse("type=secret,id=npm_token").unwrap();
        assert_eq!(m.kind, MountType::Secret);
        assert_eq!(m.target.as_deref(), Some("/run/secrets/npm_token"));
        assert!(!m.required);
        let m = Mount::parse("type=secret,target=/etc/keys/api.key").unwrap();
        assert_eq!(m.id.as_deref(), Some("api.key"));
        let m = Mount::parse("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!((m.target, m.env.as_deref()), (None, Some("TOKEN")));
        let m = Mount::parse("type=secret,id=tok,env=TOKEN,dst=/t,required,mode=0440,uid=1,gid=2")
            .unwrap();
        assert_eq!(m.target.as_deref(), Some("/t"));
        assert!(m.required);
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o440), Some(1), Some(2)));
        assert!(
            !Mount::parse("type=secret,id=x,required=false")
                .unwrap()
                .required
        );
    }

    #[test]
    fn parses_every_type_and_key() {
        let m = Mount::parse("target=/src").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.is_readonly());
        let m = Mount::parse("type=bind,source=sub,from=tools,destination=/t,rw").unwrap();
        assert_eq!(
            (m.source.as_deref(), m.from.as_deref()),
            (Some("sub"), Some("tools"))
        );
        assert!(!m.is_readonly());
        let m = Mount::parse(
            "type=cache,id=cargo,target=/cache,sharing=locked,mode=0755,uid=0,ro=true",
        )
        .unwrap();
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert!(m.is_readonly());
        assert!(!Mount::parse("type=cache,target=/c").unwrap().is_readonly());
        let m = Mount::parse("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = Mount::parse("type=ssh,id=default,required").unwrap();
        assert_eq!(m.target.as_deref(), Some("/run/buildkit/ssh_agent.0"));
        let m = Mount::parse("type=bind,\"target=/a,b\",readwrite=false").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert!(m.is_readonly());
    }

    #[test]
    fn rejects_unknown_and_misplaced_keys() {
        let spec = "type=secret,id=x,colour=red";
        let (range, msg) = Mount::parse(spec).unwrap_err();
        assert_eq!(&spec[range], "colour=red");
        assert!(msg.starts_with("unknown --mount key \"colour\""), "{msg}");
        let (_, msg) = Mount::parse("type=secret,id=x,size=1m").unwrap_err();
        assert!(msg.contains("does not apply to type=secret"), "{msg}");
        let (_, msg) = Mount::parse("type=volume,target=/x").unwrap_err();
        assert!(msg.contains("unknown mount type"), "{msg}");
        assert!(
            Mount::parse("type=bind")
                .unwrap_err()
                .1
                .contains("needs target")
        );
        assert!(
            Mount::parse("type=secret")
                .unwrap_err()
                .1
                .contains("needs id")
        );
        assert!(
            Mount::parse("type=secret,id=x,mode=999")
                .unwrap_err()
                .1
                .contains("octal")
        );
        assert!(
            Mount::parse("type=secret,id=x,uid=me")
                .unwrap_err()
                .1
                .contains("not a number")
        );
        assert!(
            Mount::parse("type=secret,id=x,required=maybe")
                .unwrap_err()
                .1
                .contains("boolean")
        );
        assert!(
            Mount::parse("type=secret,id=x,env=1BAD")
                .unwrap_err()
                .1
                .contains("variable name")
        );
        assert!(
            Mount::parse("type=cache,target=/c,sharing=all")
                .unwrap_err()
                .1
                .contains("sharing")
        );
        assert!(
            Mount::parse("type=tmpfs,target=/t,size=lots")
                .unwrap_err()
                .1
                .contains("size")
        );
        assert!(
            Mount::parse("type=secret,id=a,id=b")
                .unwrap_err()
                .1
                .contains("twice")
        );
        assert!(
            Mount::parse("type=secret,,id=a")
                .unwrap_err()
                .1
                .contains("empty field")
        );
        assert!(
            Mount::parse("type=secret,id")
                .unwrap_err()
                .1
                .contains("id=VALUE")
        );
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2GB"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
    }
}
