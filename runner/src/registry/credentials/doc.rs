//! The credentials file as a document: its `auths` map, the keys a
//! registry may be written under, entries decoded into credentials and
//! encoded back, and writing it privately.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{Credential, CredentialError, DOCKER_HUB_KEY, HUB_HOSTS, TOKEN_USERNAME};

/// Fields of an `auths` entry that hold a secret.
pub(super) const SECRET_FIELDS: [&str; 5] = [
    "auth",
    "identitytoken",
    "password",
    "registrytoken",
    "username",
];

/// A parsed credentials file; every string in it is zeroed when dropped.
pub(super) struct Doc {
    pub(super) value: Value,
}

impl Drop for Doc {
    fn drop(&mut self) {
        scrub(&mut self.value);
    }
}

impl Doc {
    pub(super) fn empty() -> Doc {
        Doc {
            value: Value::Object(Map::new()),
        }
    }

    pub(super) fn auths(
        &self,
        path: &Path,
    ) -> Result<Option<&Map<String, Value>>, CredentialError> {
        match self.value.get("auths") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(auths)) => Ok(Some(auths)),
            Some(_) => Err(CredentialError::Malformed {
                path: path.to_path_buf(),
                what: "\"auths\" is not an object".into(),
            }),
        }
    }

    /// The `auths` map, created if missing.
    pub(super) fn auths_mut(
        &mut self,
        path: &Path,
    ) -> Result<&mut Map<String, Value>, CredentialError> {
        let root = self
            .value
            .as_object_mut()
            .expect("load checks the top level is an object");
        let auths = root
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if auths.is_null() {
            *auths = Value::Object(Map::new());
        }
        auths
            .as_object_mut()
            .ok_or_else(|| CredentialError::Malformed {
                path: path.to_path_buf(),
                what: "\"auths\" is not an object".into(),
            })
    }

    /// Removes the secret fields of `registry`'s entries (kept, emptied:
    /// docker keeps an entry per registry it logged in to); whether any
    /// were there.
    pub(super) fn strip_secrets(
        &mut self,
        registry: &Registry,
        path: &Path,
    ) -> Result<bool, CredentialError> {
        if self.auths(path)?.is_none() {
            return Ok(false);
        }
        let auths = self.auths_mut(path)?;
        let mut stripped = false;
        for key in registry.matching_keys(auths) {
            if let Some(Value::Object(entry)) = auths.get_mut(&key) {
                for field in SECRET_FIELDS {
                    if let Some(mut old) = entry.remove(field) {
                        scrub(&mut old);
                        stripped = true;
                    }
                }
            }
        }
        Ok(stripped)
    }
}

/// Zeroes every string in `value`.
pub(super) fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A registry as given to [`AuthFile`]: its `host[:port]`, and whether it is
/// Docker Hub.
pub(super) struct Registry {
    /// As given, scheme and path removed.
    host: String,
    hub: bool,
}

impl Registry {
    pub(super) fn parse(registry: &str) -> Result<Registry, CredentialError> {
        let host = hostname(registry.trim());
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
            return Err(CredentialError::Registry {
                registry: registry.to_owned(),
            });
        }
        Ok(Registry {
            hub: is_hub(host),
            host: host.to_owned(),
        })
    }

    /// The key written to `auths` and the server URL sent to helpers.
    pub(super) fn server_key(&self) -> String {
        if self.hub {
            DOCKER_HUB_KEY.to_owned()
        } else {
            self.host.clone()
        }
    }

    pub(super) fn matches(&self, key: &str) -> bool {
        let host = hostname(key);
        if self.hub {
            is_hub(host)
        } else {
            host.eq_ignore_ascii_case(&self.host)
        }
    }

    /// The keys of `map` that name this registry: the exact key first, then
    /// the other spellings in the map's order.
    pub(super) fn matching_keys(&self, map: &Map<String, Value>) -> Vec<String> {
        let exact = self.server_key();
        let mut keys: Vec<String> = Vec::new();
        if map.contains_key(&exact) {
            keys.push(exact.clone());
        }
        keys.extend(
            map.keys()
                .filter(|k| **k != exact && self.matches(k))
                .cloned(),
        );
        keys
    }
}

/// `https://host:port/v1/` -> `host:port` (docker's ConvertToHostname).
pub(super) fn hostname(key: &str) -> &str {
    let rest = strip_prefix_ignore_case(key, "https://")
        .or_else(|| strip_prefix_ignore_case(key, "http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or_default()
}

pub(super) fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

pub(super) fn is_hub(host: &str) -> bool {
    HUB_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// The credential in one `auths` entry, if it has one.
pub(super) fn entry_credential(
    key: &str,
    entry: &Value,
    path: &Path,
) -> Result<Option<Credential>, CredentialError> {
    let malformed = |what: String| CredentialError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    let Value::Object(entry) = entry else {
        return Err(malformed(format!("auths[{key:?}] is not an object")));
    };
    let field = |name: &str| -> Result<Option<&str>, CredentialError> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(malformed(format!("auths[{key:?}].{name} is not a string"))),
        }
    };
    if let Some(token) = field("identitytoken")? {
        return Ok(Some(Credential::new(
            TOKEN_USERNAME,
            SecretString::from(token),
        )));
    }
    if let Some(auth) = field("auth")? {
        return decode_auth(auth).map(Some).ok_or_else(|| {
            malformed(format!(
                "auths[{key:?}].auth is not base64 of user:password"
            ))
        });
    }
    let username = field("username")?;
    let password = field("password")?;
    if username.is_none() && password.is_none() {
        return Ok(None);
    }
    Ok(Some(Credential::new(
        username.unwrap_or_default(),
        SecretString::from(password.unwrap_or_default()),
    )))
}

/// Standard base64, padded or not (some tools leave the padding off).
pub(super) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// base64(`user:password`) -> the credential; `None` when it is not that.
pub(super) fn decode_auth(auth: &str) -> Option<Credential> {
    let auth = auth.trim();
    let mut buf = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(auth.len())]);
    let n = BASE64.decode_slice(auth, &mut buf[..]).ok()?;
    let decoded = &buf[..n];
    let colon = decoded.iter().position(|&b| b == b':')?;
    let username = std::str::from_utf8(&decoded[..colon]).ok()?;
    let password = std::str::from_utf8(&decoded[colon + 1..]).ok()?;
    Some(Credential::new(username, SecretString::from(password)))
}

/// base64(`user:password`), for `auths[key].auth`.
pub(super) fn encode_auth(cred: &Credential) -> String {
    let secret = cred.secret.expose_secret();
    let mut plain = Zeroizing::new(Vec::with_capacity(cred.username.len() + 1 + secret.len()));
    plain.extend_from_slice(cred.username.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(secret.as_bytes());
    let mut out = String::with_capacity(base64::encoded_len(plain.len(), true).unwrap_or(0));
    BASE64_PADDED.encode_string(&plain[..], &mut out);
    out
}

/// What docker writes: standard base64 with padding.
pub(super) const BASE64_PADDED: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// Writes `value` as docker does: indented with tabs.
pub(super) fn write_pretty(out: impl Write, value: &Value) -> std::io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(out, formatter);
    serde::Serialize::serialize(value, &mut ser).map_err(std::io::Error::other)
}

/// Counts bytes written.
pub(super) struct Counter(pub(super) usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Creates `dir` and its missing parents, mode 0700 on unix.
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
