//! Builds, once per change, the wasm programs the tests run, into this
//! crate's OUT_DIR, and tells the tests where they are:
//!
//! - the probe in `guests/`, for wasm32-wasip1 (a core module) and
//!   wasm32-wasip2 (a component): `KILN_GUEST_P1`, `KILN_GUEST_P2`; and the
//!   network guest beside it, a component: `KILN_GUEST_NET`;
//! - the examples' programs, which also builds the guest SDK for both wasm
//!   targets: the toolbox (`KILN_TOOLBOX`) and the npm-install step
//!   (`KILN_NPM_INSTALL`) for wasip1, the asset-manifest step
//!   (`KILN_ASSET_MANIFEST`) and the npm-install step over HTTP
//!   (`KILN_NPM_INSTALL_HTTP`) for wasip2.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for watched in [
        "tests/guests/src",
        "tests/guests/Cargo.toml",
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "examples/toolbox/src",
        "examples/toolbox/Cargo.toml",
        "examples/npm-token/npm-install/src",
        "examples/npm-token/npm-install/Cargo.toml",
        "examples/plugin-step/asset-manifest/src",
        "examples/plugin-step/asset-manifest/Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let probe = manifest.join("guests/Cargo.toml");
    let probe_out = out.join("guests");
    for (target, var) in [
        ("wasm32-wasip1", "KILN_GUEST_P1"),
        ("wasm32-wasip2", "KILN_GUEST_P2"),
    ] {
        cargo_build(&probe, &probe_out, target, &[], &workspace);
        export(var, &probe_out, target, "probe.wasm");
    }
    // The network guest (wasi:http GETs), a component.
    export("KILN_GUEST_NET", &probe_out, "wasm32-wasip2", "net.wasm");

    let workspace_manifest = workspace.join("Cargo.toml");
    let examples_out = out.join("examples");
    cargo_build(
        &workspace_manifest,
        &examples_out,
        "wasm32-wasip1",
        &["-p", "kiln-toolbox", "-p", "kiln-npm-install"],
        &workspace,
    );
    export(
        "KILN_TOOLBOX",
        &examples_out,
        "wasm32-wasip1",
        "toolbox.wasm",
    );
    export(
        "KILN_NPM_INSTALL",
        &examples_out,
        "wasm32-wasip1",
        "npm-install.wasm",
    );
    cargo_build(
        &workspace_manifest,
        &examples_out,
        "wasm32-wasip2",
        &["-p", "kiln-asset-manifest", "-p", "kiln-npm-install"],
        &workspace,
    );
    export(
        "KILN_ASSET_MANIFEST",
        &examples_out,
        "wasm32-wasip2",
        "asset-manifest.wasm",
    );
    export(
        "KILN_NPM_INSTALL_HTTP",
        &examples_out,
        "wasm32-wasip2",
        "npm-install-http.wasm",
    );
}

/// `cargo build --release --target TARGET` of `manifest` into `target_dir`,
/// with the same path remapping as examples/build.sh, so the programs have
/// the same bytes whatever the checkout, cargo home or target directory.
fn cargo_build(
    manifest: &Path,
    target_dir: &Path,
    target: &str,
    packages: &[&str],
    workspace: &Path,
) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let remap = format!(
        "--remap-path-prefix={cargo_home}=/cargo --remap-path-prefix={}=/kiln --remap-path-prefix={}=/target",
        workspace.display(),
        target_dir.display()
    );
    let flags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        target.to_uppercase().replace('-', "_")
    );
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--target", target])
        .args(packages)
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        // Steps ship without debug info, as examples/build.sh builds them.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env(flags_var, remap)
        // The outer build's flags and wrappers (clippy, coverage) are
        // for the host crates, not for these guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .expect("running cargo for the wasm programs");
    assert!(
        status.success(),
        "building {} for {target} failed; is the target installed? \
         (rustup target add wasm32-wasip1 wasm32-wasip2)",
        manifest.display()
    );
}

/// Tells the tests, through `var`, where `file` was built.
fn export(var: &str, target_dir: &Path, target: &str, file: &str) {
    let path = target_dir.join(target).join("release").join(file);
    println!("cargo:rustc-env={var}={}", path.display());
}
