//! Registries: the OCI distribution protocol, spoken the way docker, buildx,
//! skopeo and crane speak it.
//!
//! - [`reference`]: image references, parsed and normalised as docker does
//!   (`alpine` is `docker.io/library/alpine:latest`).
//! - [`credentials`]: docker's `config.json` (`auths`, `credsStore`,
//!   `credHelpers`) and the `docker-credential-*` helper protocol.

mod cred_helper;
pub mod credentials;
