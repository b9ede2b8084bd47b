//! What the benches share: the workspace root and the probe guest.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds tests/guests (`probe`) for wasm32-wasip1 into target/bench-guests
/// and returns the module's path.
pub(crate) fn build_probe() -> PathBuf {
    let target = workspace().join("target/bench-guests");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(workspace().join("tests/guests/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo");
    assert!(
        status.success(),
        "building the probe guest (rustup target add wasm32-wasip1)"
    );
    target.join("wasm32-wasip1/release/probe.wasm")
}
