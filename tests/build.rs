//! Builds the guest programs in `guests/` once, for wasm32-wasip1 (a core
//! module) and wasm32-wasip2 (a component), into this crate's OUT_DIR, and
//! tells the tests where they are (`KILN_GUEST_P1`, `KILN_GUEST_P2`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest.join("guests");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests");
    println!("cargo:rerun-if-changed={}", guests.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        guests.join("Cargo.toml").display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (target, var, file) in [
        ("wasm32-wasip1", "KILN_GUEST_P1", "probe.wasm"),
        ("wasm32-wasip2", "KILN_GUEST_P2", "probe.wasm"),
    ] {
        let status = Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                target,
                "--manifest-path",
            ])
            .arg(guests.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&out)
            // The outer build's flags and wrappers (clippy, coverage) are
            // for the host crates, not for these guests.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTC_WRAPPER")
            .status()
            .expect("running cargo for the guest programs");
        assert!(
            status.success(),
            "building the guest programs for {target} failed; is the target installed? \
             (rustup target add wasm32-wasip1 wasm32-wasip2)"
        );
        let path = out.join(target).join("release").join(file);
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
