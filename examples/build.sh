#!/usr/bin/env bash
# Builds what the examples use: the wasm targets, the example build steps
# (into examples/*/bin/) and the `toolbox` base image (into the store, the
# default one or $KILN_STORE).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup --quiet target add wasm32-wasip1 wasm32-wasip2
# Steps ship without debug info: smaller modules, faster to load.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
# Without the paths of this checkout and cargo home in them (panic
# locations), the programs have the same bytes on every machine with the
# same toolchain, and so do the images built from them. Host builds keep
# their flags: these apply to the wasm targets only.
remap="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$PWD=/kiln --remap-path-prefix=$PWD/target=/target"
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$remap" CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="$remap"
# cargo shows its progress: the first run compiles kiln and its
# dependencies (wasmtime among them), about 10 minutes on 2 cores; later
# runs take seconds.
echo "compiling the example steps (wasm)..." >&2
cargo build --release --target wasm32-wasip1 -p kiln-toolbox -p kiln-npm-install
cargo build --release --target wasm32-wasip2 -p kiln-asset-manifest -p kiln-npm-install
mkdir -p examples/toolbox/bin examples/npm-token/bin examples/plugin-step/bin
cp target/wasm32-wasip1/release/toolbox.wasm examples/toolbox/bin/
cp target/wasm32-wasip1/release/npm-install.wasm examples/npm-token/bin/
cp target/wasm32-wasip2/release/npm-install-http.wasm examples/npm-token/bin/
cp target/wasm32-wasip2/release/asset-manifest.wasm examples/plugin-step/bin/
echo "compiling kiln (the first time: about 10 minutes on 2 cores) and building the toolbox image..." >&2
cargo build -p kiln
cargo run --quiet -p kiln -- build --quiet -t toolbox examples/toolbox >/dev/null
echo "built the example steps and the toolbox image"
