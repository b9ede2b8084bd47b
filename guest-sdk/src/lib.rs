//! `kiln-guest`: the SDK for writing kiln build steps in Rust.
//!
//! A kiln build step is an ordinary WASI program (`wasm32-wasip1` or
//! `wasm32-wasip2`) that a Kilnfile runs with `RUN`. It sees the image being
//! built as its filesystem, its arguments and environment from the Kilnfile,
//! and the secrets the step mounts. This crate will grow the helpers such a
//! program needs (reading secrets without leaking them, argument parsing,
//! atomic writes); today it holds the conventions every step shares, so that
//! steps and the runner agree on them from the start.
//!
//! ```
//! use kiln_guest::secret_path;
//!
//! // `RUN --mount=type=secret,id=npm_token my-step` serves the secret here:
//! assert_eq!(secret_path("npm_token").unwrap(), "/run/secrets/npm_token");
//! ```

/// Where secret mounts appear by default, as in Docker BuildKit.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Why a secret id cannot name a file under [`SECRETS_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSecretId(pub String);

impl std::fmt::Display for InvalidSecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid secret id {:?}: an id is a file name (no '/', not '.' or '..', not empty)",
            self.0
        )
    }
}

impl std::error::Error for InvalidSecretId {}

/// The default path of the secret `id` inside a step:
/// `/run/secrets/<id>`, what `RUN --mount=type=secret,id=<id>` mounts when
/// no `target` is given.
pub fn secret_path(id: &str) -> Result<String, InvalidSecretId> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(InvalidSecretId(id.to_string()));
    }
    Ok(format!("{SECRETS_DIR}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_secret_paths_match_buildkit() {
        assert_eq!(secret_path("npm_token").unwrap(), "/run/secrets/npm_token");
        assert_eq!(secret_path("a.b-c").unwrap(), "/run/secrets/a.b-c");
    }

    #[test]
    fn ids_that_are_not_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            let err = secret_path(bad).unwrap_err();
            assert!(err.to_string().contains("invalid secret id"), "{bad:?}");
        }
    }
}
