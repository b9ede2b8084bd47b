//! Registry credentials, kept where docker, podman and skopeo keep them.
//!
//! The file is docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`) or podman's `auth.json` when
//! `$REGISTRY_AUTH_FILE` names one; both hold the same `auths` map:
//!
//! ```json
//! {
//!   "auths": {
//!     "https://index.docker.io/v1/": { "auth": "base64(user:password)" },
//!     "localhost:5000": { "identitytoken": "..." }
//!   },
//!   "credHelpers": { "gcr.io": "gcloud" },
//!   "credsStore": "desktop"
//! }
//! ```
//!
//! - Docker Hub's key is `https://index.docker.io/v1/`; reading also accepts
//!   `index.docker.io`, `docker.io` and `registry-1.docker.io`. Any other
//!   registry's key is `host[:port]`; reading also accepts keys written as
//!   URLs (`https://host:port`, `http://host/v1/`), as docker does.
//! - An entry's `auth` is base64 of `user:password`; an `identitytoken` is
//!   the secret with the username `<token>` (docker's convention); separate
//!   `username` and `password` fields are accepted too.
//! - A registry's `credHelpers` entry wins over the global `credsStore`;
//!   either names a `docker-credential-<name>` program on `PATH` (see
//!   `cred_helper`). When a helper has nothing, an entry in `auths` is still
//!   used.
//!
//! Writing keeps every other field of the file, replaces it atomically
//! (a temporary file in the same directory, then a rename) with mode 0600 on
//! unix, and never touches a file that is not valid JSON. Secrets are
//! [`SecretString`]s from the moment they are read; the parsed document and
//! the decoded buffers are zeroed when dropped, and no error message or
//! `Debug` output contains a secret.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::cred_helper::{self, Helper};

mod doc;
use doc::{
    Counter, Doc, Registry, SECRET_FIELDS, create_private_dir, encode_auth, entry_credential,
    scrub, write_pretty,
};

/// Docker Hub's key in `auths` (and the server URL helpers get for it).
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Host names that all mean Docker Hub.
const HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The username that says the secret is an identity token.
pub const TOKEN_USERNAME: &str = "<token>";

/// A username and a password or identity token for one registry.
#[derive(Clone)]
pub struct Credential {
    /// The username; [`TOKEN_USERNAME`] when `secret` is an identity token.
    pub username: String,
    /// The password or identity token.
    pub secret: SecretString,
}

impl Credential {
    /// A credential from a username and a secret.
    pub fn new(username: impl Into<String>, secret: SecretString) -> Credential {
        Credential {
            username: username.into(),
            secret,
        }
    }

    /// Whether the secret is an identity token (username `<token>`).
    pub fn is_identity_token(&self) -> bool {
        self.username == TOKEN_USERNAME
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// Why credentials could not be read, saved or removed. No message ever
/// contains a secret; each names the file or helper and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The credentials file exists but could not be read.
    #[error("cannot read the registry credentials file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials file is not valid JSON; it is left as it is.
    #[error(
        "the registry credentials file {} is not valid JSON ({reason}): fix or remove it (kiln does not overwrite it)",
        path.display()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (position and kind, never content).
        reason: String,
    },
    /// The file is JSON but a field has the wrong shape.
    #[error("the registry credentials file {}: {what}; fix or remove that entry", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Which field and what is wrong with it (never its value).
        what: String,
    },
    /// The credentials file (or its directory) could not be written.
    #[error("cannot write the registry credentials file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registry name is empty or not a host.
    #[error(
        "{registry:?} is not a registry host (expected host[:port], such as localhost:5000 or docker.io)"
    )]
    Registry {
        /// What was given.
        registry: String,
    },
    /// A configured helper name cannot be a program name.
    #[error(
        "invalid credential helper name {name:?} ({origin}): helpers are programs named docker-credential-<name>; fix the configuration"
    )]
    HelperName {
        /// The configured name.
        name: String,
        /// Where it is configured.
        origin: String,
    },
    /// The configured helper is not on `PATH`.
    #[error(
        "credential helper {program} ({origin}) was not found on PATH: install it, or remove it from the configuration"
    )]
    HelperMissing {
        /// `docker-credential-<name>`.
        program: String,
        /// Where it is configured.
        origin: String,
    },
    /// The helper could not be started or talked to.
    #[error("cannot run credential helper `{program} {action}` ({}): {source}", path.display())]
    HelperRun {
        /// `docker-credential-<name>`.
        program: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// Where it was found.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The helper exited with a failure.
    #[error("credential helper `{program} {action}` failed ({status}): {message}")]
    HelperFailed {
        /// `docker-credential-<name>`.
        program: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed (stderr, else stdout), never what kiln sent it.
        message: String,
    },
    /// `get` succeeded but printed something other than the protocol's JSON.
    #[error(
        "credential helper `{program} get` printed something that is not {{\"ServerURL\", \"Username\", \"Secret\"}} JSON (not shown: it may hold a secret); check the helper's version"
    )]
    HelperReply {
        /// `docker-credential-<name>`.
        program: String,
    },
}

/// Where [`AuthFile::store`] saved credentials, for "Login Succeeded
/// (credentials saved in ...)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// In the credentials file itself (base64, not encrypted).
    File(PathBuf),
    /// In a credential helper: the program, `docker-credential-<name>`.
    Helper(String),
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Where::File(path) => write!(f, "{}", path.display()),
            Where::Helper(program) => f.write_str(program),
        }
    }
}

/// Where credentials are read from and written to.
#[derive(Clone, Debug)]
pub struct AuthFile {
    path: PathBuf,
    /// Directories searched for helpers; `None` is `$PATH`.
    helper_path: Option<Vec<PathBuf>>,
}

impl AuthFile {
    /// The file to use: `$REGISTRY_AUTH_FILE` if set (podman's and
    /// skopeo's), else `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn locate() -> AuthFile {
        AuthFile::locate_from(|name| std::env::var_os(name), dirs::home_dir())
    }

    /// [`AuthFile::locate`] with the environment and home directory given:
    /// `env` looks a variable up (empty values count as unset). Without a
    /// home directory, `.docker/config.json` is relative to the current
    /// directory.
    pub fn locate_from(env: impl Fn(&str) -> Option<OsString>, home: Option<PathBuf>) -> AuthFile {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let path = if let Some(file) = set("REGISTRY_AUTH_FILE") {
            PathBuf::from(file)
        } else if let Some(dir) = set("DOCKER_CONFIG") {
            PathBuf::from(dir).join("config.json")
        } else {
            home.unwrap_or_default().join(".docker").join("config.json")
        };
        AuthFile::at(path)
    }

    /// The credentials file at `path` (docker's `config.json` or podman's
    /// `auth.json`: the format is the same).
    pub fn at(path: PathBuf) -> AuthFile {
        AuthFile {
            path,
            helper_path: None,
        }
    }

    /// Searches `dirs` instead of `$PATH` for `docker-credential-*` helpers.
    pub fn with_helper_path(mut self, dirs: Vec<PathBuf>) -> AuthFile {
        self.helper_path = Some(dirs);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials for `registry` (a `host[:port]` such as `localhost:5000`,
    /// or `docker.io`), or `None` (anonymous). A missing file has none.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let registry = Registry::parse(registry)?;
        let Some(doc) = self.load()? else {
            return Ok(None);
        };
        if let Some(helper) = self.helper(&doc, &registry)?
            && let Some(cred) = helper.get(&registry.server_key())?
        {
            return Ok(Some(cred));
        }
        let Some(auths) = doc.auths(&self.path)? else {
            return Ok(None);
        };
        for key in registry.matching_keys(auths) {
            if let Some(cred) = entry_credential(&key, &auths[&key], &self.path)? {
                return Ok(Some(cred));
            }
        }
        Ok(None)
    }

    /// Saves credentials (`kiln login`): into the registry's `credHelpers`
    /// helper, else the `credsStore` helper, else as base64 `auth` in
    /// `auths` (an identity token as `identitytoken`). Saving to a helper
    /// removes any secret for the registry left in the file.
    pub fn store(&self, registry: &str, cred: &Credential) -> Result<Where, CredentialError> {
        let registry = Registry::parse(registry)?;
        let mut doc = self.load()?.unwrap_or_else(Doc::empty);
        let key = registry.server_key();
        if let Some(helper) = self.helper(&doc, &registry)? {
            helper.store(&key, cred)?;
            if doc.strip_secrets(&registry, &self.path)? {
                self.save(&doc)?;
            }
            return Ok(Where::Helper(helper.program().to_owned()));
        }
        let auths = doc.auths_mut(&self.path)?;
        // Other spellings of the same registry would hold stale secrets.
        let mut entry = match auths.remove(&key) {
            Some(Value::Object(entry)) => entry,
            Some(mut other) => {
                scrub(&mut other);
                Map::new()
            }
            None => Map::new(),
        };
        for other in registry.matching_keys(auths) {
            if let Some(mut old) = auths.remove(&other) {
                scrub(&mut old);
            }
        }
        for field in SECRET_FIELDS {
            if let Some(mut old) = entry.remove(field) {
                scrub(&mut old);
            }
        }
        if cred.is_identity_token() {
            entry.insert(
                "identitytoken".into(),
                Value::String(cred.secret.expose_secret().to_owned()),
            );
        } else {
            entry.insert("auth".into(), Value::String(encode_auth(cred)));
        }
        auths.insert(key, Value::Object(entry));
        self.save(&doc)?;
        Ok(Where::File(self.path.clone()))
    }

    /// Removes credentials (`kiln logout`) from the registry's helper and
    /// from the file (every spelling of the registry's key); `Ok(false)`
    /// when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialError> {
        let registry = Registry::parse(registry)?;
        let Some(mut doc) = self.load()? else {
            return Ok(false);
        };
        let mut erased = false;
        if let Some(helper) = self.helper(&doc, &registry)? {
            erased = helper.erase(&registry.server_key())?;
        }
        let mut removed = false;
        if doc.auths(&self.path)?.is_some() {
            let auths = doc.auths_mut(&self.path)?;
            for key in registry.matching_keys(auths) {
                if let Some(mut old) = auths.remove(&key) {
                    scrub(&mut old);
                    removed = true;
                }
            }
        }
        if removed {
            self.save(&doc)?;
        }
        Ok(erased || removed)
    }

    /// The helper configured for `registry`: its `credHelpers` entry, else
    /// `credsStore`.
    fn helper(&self, doc: &Doc, registry: &Registry) -> Result<Option<Helper>, CredentialError> {
        let file = self.path.display();
        let mut configured = None;
        if let Some(helpers) = doc.value.get("credHelpers") {
            let Value::Object(helpers) = helpers else {
                return Err(self.malformed("\"credHelpers\" is not an object"));
            };
            if let Some(key) = registry.matching_keys(helpers).into_iter().next() {
                let Value::String(name) = &helpers[&key] else {
                    return Err(self.malformed(format!("credHelpers[{key:?}] is not a string")));
                };
                if !name.is_empty() {
                    configured = Some((name.clone(), format!("credHelpers[{key:?}] in {file}")));
                }
            }
        }
        if configured.is_none() {
            match doc.value.get("credsStore") {
                None | Some(Value::Null) => {}
                Some(Value::String(name)) if name.is_empty() => {}
                Some(Value::String(name)) => {
                    configured = Some((name.clone(), format!("credsStore in {file}")));
                }
                Some(_) => return Err(self.malformed("\"credsStore\" is not a string")),
            }
        }
        let Some((name, origin)) = configured else {
            return Ok(None);
        };
        let search = match &self.helper_path {
            Some(dirs) => dirs.clone(),
            None => cred_helper::split_path(std::env::var_os("PATH")),
        };
        Helper::find(&name, &search, &origin).map(Some)
    }

    fn malformed(&self, what: impl Into<String>) -> CredentialError {
        CredentialError::Malformed {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// The parsed file, or `None` when there is no file.
    fn load(&self) -> Result<Option<Doc>, CredentialError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        // Docker reads an empty file as an empty configuration.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Doc::empty()));
        }
        // A syntax error's message is its kind and position: no content.
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| CredentialError::Invalid {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let doc = Doc { value };
        if !doc.value.is_object() {
            return Err(CredentialError::Invalid {
                path: self.path.clone(),
                reason: "the top level is not a JSON object".into(),
            });
        }
        Ok(Some(doc))
    }

    /// Replaces the file with `doc`: a temporary file in the same
    /// directory, mode 0600, then a rename. A symlink is followed, so the
    /// file it points to is replaced and the link kept.
    fn save(&self, doc: &Doc) -> Result<(), CredentialError> {
        let target = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone())
            }
            _ => self.path.clone(),
        };
        let write_err = |source| CredentialError::Write {
            path: target.clone(),
            source,
        };
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir).map_err(write_err)?;

        // Sized first, so the buffer holding the secrets never grows and
        // leaves a copy behind.
        let mut counter = Counter(0);
        write_pretty(&mut counter, &doc.value).map_err(write_err)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(counter.0 + 1));
        write_pretty(&mut *bytes, &doc.value).map_err(write_err)?;
        bytes.push(b'\n');

        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(write_err)?;
        }
        tmp.write_all(&bytes).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
