//! `kiln-guest`: the SDK for writing kiln build steps in Rust.
//!
//! A kiln build step is an ordinary WASI program (`wasm32-wasip1` or
//! `wasm32-wasip2`) that a Kilnfile runs with `RUN`. It sees the image being
//! built as its filesystem, its arguments and environment from the Kilnfile,
//! and the secrets the step mounts; what it writes becomes the step's layer.
//! This crate gives such a program what it needs and nothing more:
//!
//! | need | here |
//! |---|---|
//! | start in `WORKDIR`, report errors, exit codes | [`run`], [`Step`], [`Error`], [`Context`] |
//! | flags, options, positional arguments | [`Args`] |
//! | build secrets, without leaking them | [`secret`], [`Secret`] |
//! | outputs written whole or not at all, stable listings | [`fs::write_atomic`], [`fs::walk`] |
//! | HTTP(S) requests, from `wasm32-wasip2` steps with `--network=default` | [`http`] |
//!
//! Its one dependency is `zeroize` (and, on `wasm32-wasip2` only, the
//! `wasip2` bindings [`http`] is built on). It builds for the host too, so a step's
//! logic can be unit-tested with `cargo test`.
//!
//! # From a new crate to a step in a Kilnfile
//!
//! ```sh
//! cargo new --bin my-step && cd my-step
//! rustup target add wasm32-wasip1
//! ```
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! kiln-guest = { git = "https://github.com/kiln-build/kiln" }   # or { path = ".../guest-sdk" }
//! ```
//!
//! `src/main.rs`: read the arguments, use the secret, write the output.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use kiln_guest::{secret, Context};
//!
//! fn main() -> ExitCode {
//!     kiln_guest::run(|mut step| {
//!         let registry = step.args.required("--registry")?;
//!         let out = step.args.option("--out")?.unwrap_or_else(|| ".npmrc-check".into());
//!         step.args.done()?;
//!
//!         // Missing: an error that says which --mount and --secret to add.
//!         let token = secret("npm_token").env("NPM_TOKEN").require()?;
//!         // Derive from the secret; never write or print it.
//!         let summary = format!("{registry}: token of {} bytes\n", token.len());
//!         kiln_guest::fs::write_atomic(&out, summary.as_bytes())
//!             .with_context(|| format!("writing the summary to {out}"))
//!     })
//! }
//! ```
//!
//! Build it:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip1
//! cp target/wasm32-wasip1/release/my-step.wasm context/
//! ```
//!
//! Copy it into the image and run it (a program is found on `PATH`, with or
//! without `.wasm`):
//!
//! ```dockerfile
//! FROM scratch
//! COPY my-step.wasm /usr/local/bin/my-step.wasm
//! WORKDIR /app
//! RUN --mount=type=secret,id=npm_token my-step --registry https://registry.npmjs.org
//! ```
//!
//! ```sh
//! kiln build --secret id=npm_token,src=$HOME/.npm_token -t app context
//! ```
//!
//! The step starts in `/app` (see [`run`]), finds the token at
//! `/run/secrets/npm_token`, and writes `/app/.npmrc-check`, which becomes
//! the step's layer. If it failed, the build would stop and show the step's
//! `error: ...` lines. The user guide, `docs/writing-steps.md`, has the
//! whole story: secrets done right, limits, testing.

#![forbid(unsafe_code)]

mod args;
mod error;
pub mod fs;
pub mod http;
mod secret;
mod step;

pub use args::Args;
pub use error::{Context, DEFAULT_EXIT_CODE, Error, Result, USAGE_EXIT_CODE};
pub use secret::{
    InvalidSecretId, MAX_SECRET_BYTES, SECRETS_DIR, Secret, SecretLookup, secret, secret_path,
};
pub use step::{Step, run};
