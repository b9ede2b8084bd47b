//! Wasm step programs through a registry: `kiln publish` writes the CNCF
//! wasm OCI artifact layout, and a pulled artifact is bind-mounted by a
//! build like a local one (examples/plugin-step's `Kilnfile.registry`).

use crate::registry_server::RegistryServer;
use crate::util::{Sandbox, tool};

const PROGRAM: &str = "examples/plugin-step/bin/asset-manifest.wasm";

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Publishes the example's step to `host`; returns `REF@sha256:…`.
fn publish(sb: &Sandbox, host: &str) -> String {
    let target = format!("{host}/steps/asset-manifest:1");
    let out = sb.kiln(&["publish", PROGRAM, &target]).ok();
    let pinned = out.stdout.trim().to_string();
    assert!(
        pinned.starts_with(&format!("{target}@sha256:")),
        "{pinned}\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("wasip2"), "{}", out.stderr);
    pinned
}

/// The site's asset manifest, built by `kilnfile` with `args`.
fn site_manifest(sb: &Sandbox, kilnfile: &str, args: &[&str], tag: &str) -> String {
    let file = format!("examples/plugin-step/{kilnfile}");
    let mut all = vec!["-f", file.as_str(), "-t", tag];
    all.extend_from_slice(args);
    sb.build("examples/plugin-step", &all);
    sb.kiln(&["run", "--rm", tag]).ok().stdout
}

#[test]
fn a_published_step_is_a_wasm_artifact_that_builds_use_from_the_registry() {
    let registry = RegistryServer::plain();
    let host = registry.host();
    let publisher = Sandbox::new();
    publisher.examples();
    let pinned = publish(&publisher, &host);
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();
    // Deterministic: the same file is the same artifact.
    assert_eq!(publish(&publisher, &host), pinned);

    // What other tools see: the layout's media types, one layer, titled.
    let tag = format!("docker://{host}/steps/asset-manifest:1");
    let raw = tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &tag]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{raw}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "asset-manifest.wasm"
    );
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.trim_end().as_bytes())),
        digest
    );
    let program = std::fs::read(publisher.path(PROGRAM)).unwrap();
    assert_eq!(layers[0]["size"], program.len());
    assert_eq!(
        layers[0]["digest"],
        format!("sha256:{}", sha256_hex(&program))
    );
    let config = tool(
        "skopeo",
        &["inspect", "--config", "--raw", "--tls-verify=false", &tag],
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], layers[0]["digest"]);
    assert!(config["component"]["exports"].is_array(), "{config}");

    // Another machine: pulled pinned by digest into a fresh store, used by
    // its store name, it does what the local copy does.
    let user = Sandbox::new();
    user.examples();
    let out = user.kiln(&["pull", &pinned]).ok();
    assert!(out.stderr.contains("wasm step"), "{}", out.stderr);
    let local = site_manifest(&user, "Kilnfile", &[], "site-local");
    let name = format!("{host}/steps/asset-manifest:1");
    let step = format!("STEP={name}");
    let remote = site_manifest(
        &user,
        "Kilnfile.registry",
        &["--build-arg", &step],
        "site-registry",
    );
    assert_eq!(remote, local);
    assert!(remote.contains("css/site.css"), "{remote}");
    // The image holds the program, as its entrypoint.
    let listing = user.kiln(&["inspect", &name]).ok().stdout;
    assert!(listing.contains("/asset-manifest.wasm"), "{listing}");

    // A digest the registry does not have is refused.
    let wrong = format!("{host}/steps/asset-manifest@sha256:{}", "0".repeat(64));
    Sandbox::new().kiln(&["pull", &wrong]).fails(1);
}

#[test]
fn a_build_pulls_a_step_pinned_by_digest() {
    let registry = RegistryServer::plain();
    let host = registry.host();
    let publisher = Sandbox::new();
    publisher.examples();
    let pinned = publish(&publisher, &host);
    let digest = pinned.rsplit_once('@').unwrap().1;
    let by_digest = format!("STEP={host}/steps/asset-manifest@{digest}");
    // The publisher's store has it already; a fresh one pulls it.
    let local = site_manifest(&publisher, "Kilnfile", &[], "site-local");
    let published = site_manifest(
        &publisher,
        "Kilnfile.registry",
        &["--build-arg", &by_digest],
        "site-published",
    );
    assert_eq!(published, local);
    let user = Sandbox::new();
    user.examples();
    let pulled = site_manifest(
        &user,
        "Kilnfile.registry",
        &["--build-arg", &by_digest],
        "site-pulled",
    );
    assert_eq!(pulled, local);
}

#[test]
fn publishing_a_file_that_is_not_wasm_fails_clearly() {
    let sb = Sandbox::new();
    sb.write("step.wasm", "#!/bin/sh\necho not wasm\n");
    // Refused before any registry is asked (nothing listens on port 9).
    let err = sb
        .kiln(&["publish", "step.wasm", "127.0.0.1:9/steps/bad:1"])
        .fails(1)
        .stderr;
    assert!(
        err.contains("step.wasm: not a WebAssembly module or component"),
        "{err}"
    );
    let err = sb
        .kiln(&["publish", "missing.wasm", "127.0.0.1:9/steps/bad:1"])
        .fails(1)
        .stderr;
    assert!(err.contains("reading missing.wasm"), "{err}");
}
