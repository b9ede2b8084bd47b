//! Image references (`alpine`, `ghcr.io/o/r:1`, `localhost:5000/x@sha256:…`),
//! parsed and normalised by docker's rules so that a name means here what it
//! means to `docker pull`.
//!
//! The rules, from docker's reference grammar (`distribution/reference`):
//!
//! - The first `/`-separated component names a registry only when there is
//!   more than one component and it contains `.` or `:`, is exactly
//!   `localhost`, or has an uppercase letter; otherwise the registry is
//!   `docker.io`. `index.docker.io` is another spelling of `docker.io`.
//! - On `docker.io` a one-component repository is an official image:
//!   `alpine` is `library/alpine`.
//! - A repository is `/`-separated components of lowercase letters and
//!   digits joined by `.`, `_`, `__` or runs of `-`; registry and repository
//!   together are at most 255 characters.
//! - A tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; with neither tag nor
//!   digest the tag is `latest`, with only a digest there is no tag.
//! - A digest is `sha256:<64 lowercase hex digits>` (the only algorithm kiln
//!   stores).
//!
//! One deliberate difference: [`Reference::familiar`] keeps `docker.io/`
//! when dropping it would make the short form name another registry
//! (`docker.io/localhost/x`), so that the familiar form always parses back to
//! the same reference. Docker would print `localhost/x`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// Docker Hub's canonical registry name: what a reference without a
/// registry means.
pub const DOCKER_HUB: &str = "docker.io";

/// The legacy name of Docker Hub, normalised to [`DOCKER_HUB`] when parsed.
const LEGACY_DOCKER_HUB: &str = "index.docker.io";

/// The host Docker Hub's registry API is served from.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// The key docker's `config.json` files Docker Hub's credentials under.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// The longest registry-plus-repository name docker accepts.
pub const NAME_MAX_LEN: usize = 255;

/// The longest tag docker accepts.
pub const TAG_MAX_LEN: usize = 128;

/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// What a repository looks like, for error messages.
const REPOSITORY_HINT: &str = "a repository is lowercase letters, digits and separators (. _ - /), \
     like alpine or localhost:5000/team/app";

/// What a tag looks like, for error messages.
const TAG_HINT: &str = "a tag is 1 to 128 letters, digits, _, . and -, not starting with . or -, \
     like latest or 3.20";

/// A fully normalised image reference: registry, repository, and a tag, a
/// digest or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference. Every message quotes the input
/// and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string is empty.
    #[error(
        "invalid reference \"\": it is empty; expected an image name like alpine, \
         alpine:3.20 or localhost:5000/team/app:1"
    )]
    Empty,
    /// The string contains whitespace or a control character.
    #[error(
        "invalid reference {reference:?}: it contains whitespace or a control character; \
         a reference is one word like alpine:3.20 or ghcr.io/team/app:1"
    )]
    Whitespace {
        /// The input.
        reference: String,
    },
    /// More than one `@`.
    #[error(
        "invalid reference {reference:?}: it has more than one @; a reference has at most \
         one digest, like alpine@sha256:<64 hex digits>"
    )]
    MultipleDigests {
        /// The input.
        reference: String,
    },
    /// The part after `@` is not a well-formed sha256 digest.
    #[error(
        "invalid reference {reference:?}: digest {digest:?} is not sha256:<64 lowercase \
         hex digits>"
    )]
    InvalidDigest {
        /// The input.
        reference: String,
        /// The part after `@`.
        digest: String,
    },
    /// The digest names an algorithm other than sha256.
    #[error(
        "invalid reference {reference:?}: digest algorithm {algorithm:?} is not supported; \
         only sha256:<64 lowercase hex digits> is accepted"
    )]
    UnsupportedDigest {
        /// The input.
        reference: String,
        /// The algorithm named before the digest's `:`.
        algorithm: String,
    },
    /// The registry part is not a host with an optional port.
    #[error(
        "invalid reference {reference:?}: registry {registry:?} is not a host name or \
         address with an optional port, like ghcr.io, localhost:5000, 127.0.0.1:5000 or \
         [::1]:5000"
    )]
    InvalidRegistry {
        /// The input.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// The repository has an uppercase letter.
    #[error(
        "invalid reference {reference:?}: repository name {repository:?} must be lowercase; \
         {REPOSITORY_HINT}"
    )]
    Uppercase {
        /// The input.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// The repository has an empty component: a leading, trailing or
    /// doubled `/`.
    #[error(
        "invalid reference {reference:?}: the repository has an empty component (a leading, \
         trailing or doubled /); {REPOSITORY_HINT}"
    )]
    EmptyComponent {
        /// The input.
        reference: String,
    },
    /// The repository is empty or has characters or separators docker
    /// does not allow.
    #[error("invalid reference {reference:?}: {REPOSITORY_HINT}")]
    InvalidRepository {
        /// The input.
        reference: String,
    },
    /// The name is 64 hex digits: docker takes that for an image id.
    #[error(
        "invalid reference {reference:?}: 64 hex digits are an image id, not a repository \
         name; {REPOSITORY_HINT}"
    )]
    HexName {
        /// The input.
        reference: String,
    },
    /// Registry and repository together are longer than 255 characters.
    #[error(
        "invalid reference {reference:?}: the name {name:?} is {len} characters; registry \
         and repository together are at most 255"
    )]
    NameTooLong {
        /// The input.
        reference: String,
        /// The normalised `registry/repository`.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The tag is empty or has characters docker does not allow.
    #[error("invalid reference {reference:?}: tag {tag:?} is not valid; {TAG_HINT}")]
    InvalidTag {
        /// The input.
        reference: String,
        /// The part after the name's `:`.
        tag: String,
    },
    /// The tag is longer than 128 characters.
    #[error("invalid reference {reference:?}: the tag is {len} characters; a tag is at most 128")]
    TagTooLong {
        /// The input.
        reference: String,
        /// The tag's length.
        len: usize,
    },
}

impl Reference {
    /// Parses and normalises `s` as docker does: `alpine` is
    /// `docker.io/library/alpine:latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let reference = || s.to_string();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::Whitespace {
                reference: reference(),
            });
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexName {
                reference: reference(),
            });
        }

        let (named, digest) = match s.split_once('@') {
            None => (s, None),
            Some((_, rest)) if rest.contains('@') => {
                return Err(ReferenceError::MultipleDigests {
                    reference: reference(),
                });
            }
            Some((named, digest)) => (named, Some(parse_digest(s, digest)?)),
        };

        let (registry, remainder) = match named.split_once('/') {
            Some((first, rest)) if names_registry(first) => (Some(first), rest),
            _ => (None, named),
        };
        // A repository has no `:`, so the first one after the registry
        // starts the tag.
        let (path, tag) = match remainder.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (remainder, None),
        };

        if let Some(registry) = registry
            && !valid_registry(registry)
        {
            return Err(ReferenceError::InvalidRegistry {
                reference: reference(),
                registry: registry.to_string(),
            });
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                reference: reference(),
                repository: path.to_string(),
            });
        }
        if path.is_empty() {
            return Err(ReferenceError::InvalidRepository {
                reference: reference(),
            });
        }
        if path.split('/').any(str::is_empty) {
            return Err(ReferenceError::EmptyComponent {
                reference: reference(),
            });
        }
        if !path.split('/').all(valid_path_component) {
            return Err(ReferenceError::InvalidRepository {
                reference: reference(),
            });
        }
        if let Some(tag) = tag {
            check_tag(s, tag)?;
        }

        let registry = match registry {
            None | Some(LEGACY_DOCKER_HUB) => DOCKER_HUB,
            Some(registry) => registry,
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let len = registry.len() + 1 + repository.len();
        if len > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                reference: reference(),
                name: format!("{registry}/{repository}"),
                len,
            });
        }
        let tag = match (tag, digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry: `docker.io`, `ghcr.io`, `localhost:5000`,
    /// `127.0.0.1:5000`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository within the registry: `library/alpine`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The full name without tag or digest: `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag; `None` when only a digest was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Whether the registry is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// The `host[:port]` to connect to: Docker Hub's API is served from
    /// `registry-1.docker.io`; any other registry is its own host.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The same repository with tag `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(&format!("{}:{tag}", self.name()), tag)?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository and tag pinned to `digest` (docker prints
    /// `name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Docker's short form: `alpine:latest`, `team/app:1`,
    /// `localhost:5000/x:latest`, `x@sha256:…`, `x:1@sha256:…`.
    ///
    /// Drops `docker.io/` and an official image's `library/`, except that
    /// `docker.io/` stays when the short form would otherwise name a
    /// registry (`docker.io/localhost/x`), so the result always parses back
    /// to this reference.
    pub fn familiar(&self) -> String {
        let mut out = if self.is_docker_hub() {
            match self.repository.strip_prefix("library/") {
                Some(official) if !official.contains('/') => official.to_string(),
                _ => match self.repository.split_once('/') {
                    Some((first, _)) if names_registry(first) => self.name(),
                    _ => self.repository.clone(),
                },
            }
        } else {
            self.name()
        };
        self.push_suffix(&mut out);
        out
    }

    /// This reference as oci-client's type, for pulls and pushes: the digest
    /// when there is one (it is what is fetched), else the tag.
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.to_string(),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()),
            ),
        }
    }

    /// Appends `:tag` and `@digest` as present.
    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/alpine:latest`,
    /// `localhost:5000/x@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// The key docker's `config.json` uses for `host`'s credentials:
/// `https://index.docker.io/v1/` for Docker Hub under any of its names
/// (`docker.io`, `index.docker.io`, `registry-1.docker.io`), else the host
/// as given.
pub fn registry_key(host: &str) -> String {
    match host {
        DOCKER_HUB | LEGACY_DOCKER_HUB | DOCKER_HUB_API_HOST | DOCKER_HUB_CONFIG_KEY => {
            DOCKER_HUB_CONFIG_KEY.to_string()
        }
        _ => host.to_string(),
    }
}

/// Whether the first of several `/`-separated components names a registry
/// (docker's rule): it has a `.` or `:`, is `localhost`, or has an uppercase
/// letter (which a repository never has).
fn names_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Parses the part after `@`; `reference` is the whole input, for errors.
fn parse_digest(reference: &str, digest: &str) -> Result<Digest, ReferenceError> {
    let invalid = || ReferenceError::InvalidDigest {
        reference: reference.to_string(),
        digest: digest.to_string(),
    };
    let (algorithm, _) = digest.split_once(':').ok_or_else(invalid)?;
    if algorithm != "sha256" {
        if algorithm.is_empty() {
            return Err(invalid());
        }
        return Err(ReferenceError::UnsupportedDigest {
            reference: reference.to_string(),
            algorithm: algorithm.to_string(),
        });
    }
    digest.parse().map_err(|_| invalid())
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(reference: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = match tag.as_bytes() {
        [first, rest @ ..] => {
            word(*first) && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    };
    if !valid {
        return Err(ReferenceError::InvalidTag {
            reference: reference.to_string(),
            tag: tag.to_string(),
        });
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong {
            reference: reference.to_string(),
            len: tag.len(),
        });
    }
    Ok(())
}

/// Whether `c` is a repository path component: runs of lowercase letters and
/// digits joined by `.`, `_`, `__` or one or more `-`.
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of letters and digits.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator.
        let sep_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let valid_sep = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if i == sep_start || !valid_sep {
            return false;
        }
    }
}

/// Whether `r` is `host[:port]`: a host name or IPv4 address (dot-separated
/// components of letters, digits and inner `-`) or a bracketed IPv6 address,
/// and an optional port of digits.
fn valid_registry(r: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, after)) => {
                let ok =
                    !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
                let port = match after {
                    "" => None,
                    _ => match after.strip_prefix(':') {
                        Some(port) => Some(port),
                        None => return false,
                    },
                };
                (ok, port)
            }
            None => return false,
        }
    } else {
        let (host, port) = match r.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (r, None),
        };
        (host.split('.').all(valid_domain_component), port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `c` is a domain name component: letters and digits, with `-`
/// inside but not at either end.
fn valid_domain_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
