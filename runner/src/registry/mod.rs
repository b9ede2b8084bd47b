//! Registries: the OCI distribution protocol, spoken the way docker, buildx,
//! skopeo and crane speak it.
//!
//! - [`reference`]: image references, parsed and normalised as docker does
//!   (`alpine` is `docker.io/library/alpine:latest`).
//! - [`credentials`]: docker's `config.json` (`auths`, `credsStore`,
//!   `credHelpers`) and the `docker-credential-*` helper protocol.
//! - [`session`]: one runtime, a client per host (scheme, TLS roots,
//!   credentials), retries with backoff.
//! - [`pull`] and [`push`]: images between a registry and the store, every
//!   byte checked against its digest and size, pulled layers validated like
//!   any imported layer.
//! - [`wasm_artifact`]: wasm step programs as OCI artifacts (`kiln
//!   publish`), and pulled ones as images a bind mount can use.
//!
//! The protocol itself is oci-client's (ORAS). What kiln adds around it:
//! the scheme probe for loopback and `--insecure-registry` hosts, retries,
//! streaming blobs straight into the store, cross-repository mounts from
//! where the store's images came from, and messages that name the fix.

mod cred_helper;
pub mod credentials;
pub mod login;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod session;
pub mod wasm_artifact;

pub use progress::{Outcome, TransferProgress};
pub use reference::Reference;
pub use session::{RegistryOptions, Session};

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// The annotation on a store image naming the reference it was pulled from,
/// so a later push to the same registry can mount its blobs.
pub const SOURCE_ANNOTATION: &str = "io.kiln.image.source";

/// Why a registry operation failed. Messages never hold a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants credentials kiln does not have, or refused them.
    #[error("{what}: {}", denied_text(.registry, *.had_credentials))]
    Denied {
        /// What kiln was doing.
        what: String,
        /// The registry host.
        registry: String,
        /// Whether credentials were sent.
        had_credentials: bool,
    },
    /// `kiln login`: the registry (or its token realm) refused the user
    /// name or password.
    #[error("logging in to {registry} as {username}: {registry} refused the user name or password")]
    LoginRefused {
        /// The registry host.
        registry: String,
        /// The user name given.
        username: String,
    },
    /// No such image or blob.
    #[error("{what}: not found on {registry}")]
    NotFound {
        /// What kiln was looking for.
        what: String,
        /// The registry host.
        registry: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach {registry}: {cause}{}", .hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Unreachable {
        /// The registry host.
        registry: String,
        /// Why.
        cause: String,
        /// What may help.
        hint: Option<String>,
    },
    /// Content that does not match its digest or size.
    #[error("{what} from {registry} does not match its digest or size ({why}); refused")]
    Tampered {
        /// The blob or manifest.
        what: String,
        /// The registry host.
        registry: String,
        /// What was wrong.
        why: String,
    },
    /// Content kiln cannot use (an unknown media type, no manifest for the
    /// platform...).
    #[error("{0}")]
    Unsupported(String),
    /// The protocol failed in another way.
    #[error("{what}: {cause}")]
    Protocol {
        /// What kiln was doing.
        what: String,
        /// The registry's or the transport's words.
        cause: String,
    },
    /// A bad option (a CA file that is not one...).
    #[error("{0}")]
    Usage(String),
    /// The credentials could not be read.
    #[error("{0}")]
    Credentials(String),
    /// A local I/O failure.
    #[error("{0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A pulled image is not usable.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// A pulled layer is not valid.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// The user interrupted.
    #[error("interrupted")]
    Cancelled,
}

fn denied_text(registry: &str, had_credentials: bool) -> String {
    if had_credentials {
        format!(
            "{registry} refused the credentials kiln has for it (wrong password, or no access to this repository); run `kiln login {registry}`"
        )
    } else {
        format!("{registry} requires authentication; run `kiln login {registry}`")
    }
}

impl RegistryError {
    /// An oci-client error, while doing `what` with `registry`.
    pub(crate) fn from_oci(
        e: OciDistributionError,
        what: &str,
        registry: &str,
        had_credentials: bool,
    ) -> RegistryError {
        let denied = || RegistryError::Denied {
            what: what.to_string(),
            registry: registry.to_string(),
            had_credentials,
        };
        let not_found = || RegistryError::NotFound {
            what: what.to_string(),
            registry: registry.to_string(),
        };
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => denied(),
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => denied(),
            // oci-client hands some answers back as reqwest's status
            // errors (`blob_exists`' HEAD, the upload requests): a 401 there
            // is the same "log in" as anywhere else.
            OciDistributionError::RequestError(r)
                if r.status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                denied()
            }
            OciDistributionError::RequestError(r)
                if r.status().is_some_and(|s| s.as_u16() == 404) =>
            {
                not_found()
            }
            OciDistributionError::ServerError { code: 404, .. }
            | OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    denied()
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    not_found()
                } else {
                    RegistryError::Protocol {
                        what: what.to_string(),
                        cause: session::describe(&e),
                    }
                }
            }
            OciDistributionError::DigestError(d) => RegistryError::Tampered {
                what: what.to_string(),
                registry: registry.to_string(),
                why: d.to_string(),
            },
            _ => RegistryError::Protocol {
                what: what.to_string(),
                cause: session::describe(&e),
            },
        }
    }
}

/// The name a reference has in the store: docker's short form
/// (`alpine:latest`, `localhost:5000/app:1`); none for a digest alone.
pub fn store_name(reference: &Reference) -> Option<String> {
    reference.tag().map(|_| match reference.digest() {
        Some(_) => {
            let plain = Reference::parse(&reference.familiar())
                .ok()
                .and_then(|r| r.with_tag(reference.tag().unwrap_or("latest")).ok());
            plain.map_or_else(|| reference.familiar(), |r| r.familiar())
        }
        None => reference.familiar(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_docker_short_forms() {
        let name = |s: &str| store_name(&Reference::parse(s).unwrap());
        assert_eq!(name("alpine").as_deref(), Some("alpine:latest"));
        assert_eq!(
            name("docker.io/library/alpine:3").as_deref(),
            Some("alpine:3")
        );
        assert_eq!(
            name("localhost:5000/app:1").as_deref(),
            Some("localhost:5000/app:1")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(name(&format!("alpine@{digest}")), None);
        assert_eq!(
            name(&format!("alpine:3@{digest}")).as_deref(),
            Some("alpine:3")
        );
    }
}
