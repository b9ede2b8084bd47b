//! End-to-end tests of the kiln binary: builds, images, errors, determinism,
//! and what outside tools (skopeo, umoci, oci-image-tool) make of kiln's output,
//! against real registries (`registry_server`) where images travel; and the
//! Windows build, kiln.exe, under Wine (`wine`), which must build the same
//! images.
//!
//! Each test gets its own temp directory and store. Outside tools are
//! required, not optional: `.ci/run` installs them.

#![allow(missing_docs, unreachable_pub)]

mod build;
mod cache;
mod cli_contract;
mod compile;
mod conformance;
mod determinism;
mod docs;
mod errors;
mod examples;
mod getting_started;
mod heal;
mod host_neutral;
mod hostile_input;
#[cfg(target_os = "linux")]
mod interrupt;
mod limits;
mod linux_image;
mod load_save;
mod network;
mod network_sockets;
mod network_tls;
mod npm_registry;
mod numeric_flags;
mod outside_tools;
mod registry;
mod registry_auth;
mod registry_build;
mod registry_cache;
mod registry_faults;
mod registry_server;
mod registry_token;
mod registry_wasm;
mod run;
mod secrets;
mod shell;
mod store;
mod token_server;
mod unchanged;
mod util;
mod verdaccio;
#[cfg(unix)]
mod wine;
#[cfg(unix)]
mod wine_host;
mod workdir;
