//! The step cache through a registry (`--cache-to type=registry,ref=REF`,
//! `--cache-from type=registry,ref=REF`) against a real registry: a fresh
//! store gets every step `CACHED`, what skopeo sees, mode=min and max,
//! merging, a missing or unreachable cache, secrets, and a tampered layer.

use std::fs;

use crate::cache::{build, image_id, outcome, ran, three_stage_context};
use crate::registry_server::RegistryServer;
use crate::run::GUESTS;
use crate::secrets::{files_containing, forms};
use crate::util::{Run, Sandbox, tool};

fn cache_to(reference: &str, extra: &str) -> String {
    format!("type=registry,ref={reference}{extra}")
}

fn cache_from(reference: &str) -> String {
    format!("type=registry,ref={reference}")
}

/// The cache manifest at `reference`, as skopeo reads it.
fn raw_manifest(reference: &str) -> serde_json::Value {
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    );
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"))
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn all_cached(run: &Run) -> bool {
    let steps = outcome(run);
    !steps.is_empty() && steps.values().all(|ran| !ran)
}

#[test]
fn the_cache_travels_through_a_registry() {
    let reg = RegistryServer::plain();
    let max = format!("{}/cache/app:buildcache", reg.host());
    let a = Sandbox::new();
    three_stage_context(&a);
    let first = build(&a, &["--cache-to", &cache_to(&max, ",mode=max"), "ctx"]);
    assert!(
        first.stderr.contains(&format!("exporting cache to {max}")),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("in the cache"), "{}", first.stderr);
    let manifest = raw_manifest(&max);
    assert_eq!(manifest["artifactType"], "application/vnd.kiln.cache.v1");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );

    // Another store, another copy of the context: all from the registry.
    let b = Sandbox::new();
    three_stage_context(&b);
    let second = build(&b, &["--cache-from", &cache_from(&max), "ctx"]);
    assert!(all_cached(&second), "{}", second.stderr);
    assert!(second.stderr.contains("imported from --cache-from"));
    assert!(
        second
            .stderr
            .contains(&format!("importing cache manifest from {max}"))
    );
    assert_eq!(image_id(&second), image_id(&first));
    // The imported layers are whole: the image runs.
    let out = b
        .kiln(&[
            "run",
            "--rm",
            &image_id(&second),
            "probe",
            "cat",
            "/out.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "alpha\n");

    // mode=min (the default): the target stage's steps only, fewer layers.
    let min = format!("{}/cache/app:min", reg.host());
    build(&a, &["--cache-to", &cache_to(&min, ""), "ctx"]);
    let min_layers = layer_digests(&raw_manifest(&min));
    let max_layers = layer_digests(&raw_manifest(&max));
    assert!(
        !min_layers.is_empty() && min_layers.len() < max_layers.len(),
        "min {min_layers:?}, max {max_layers:?}"
    );
    assert!(min_layers.iter().all(|l| max_layers.contains(l)));
    let c = Sandbox::new();
    three_stage_context(&c);
    let third = build(&c, &["--cache-from", &cache_from(&min), "ctx"]);
    let ran_steps: Vec<bool> = outcome(&third).into_values().collect();
    assert!(
        ran_steps.contains(&true) && ran_steps.contains(&false),
        "{}",
        third.stderr
    );
    assert_eq!(image_id(&third), image_id(&first));

    // Local and registry caches mix; the same content either way.
    let d = Sandbox::new();
    three_stage_context(&d);
    let dir = d.path("local-cache");
    let both = build(
        &d,
        &[
            "--cache-from",
            &cache_from(&max),
            "--cache-to",
            &format!("type=local,dest={},mode=max", dir.display()),
            "ctx",
        ],
    );
    assert!(all_cached(&both), "{}", both.stderr);
    let local = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:kiln-cache:latest", dir.display()),
        ],
    );
    let local: serde_json::Value = serde_json::from_str(&local).unwrap();
    assert_eq!(local, raw_manifest(&max));
}

#[test]
fn exports_of_two_builds_merge_into_one_ref() {
    let reg = RegistryServer::plain();
    let shared = format!("{}/cache/app:shared", reg.host());
    let a = Sandbox::new();
    three_stage_context(&a);
    for target in ["tools", "build"] {
        let run = build(
            &a,
            &[
                "--target",
                target,
                "--cache-to",
                &cache_to(&shared, ""),
                "ctx",
            ],
        );
        assert!(run.stderr.contains("in the cache"), "{}", run.stderr);
    }
    let b = Sandbox::new();
    three_stage_context(&b);
    for target in ["tools", "build"] {
        let run = build(
            &b,
            &[
                "--target",
                target,
                "--cache-from",
                &cache_from(&shared),
                "ctx",
            ],
        );
        assert!(all_cached(&run), "--target {target}:\n{}", run.stderr);
    }
}

#[test]
fn a_missing_or_unreachable_cache_is_a_warning_and_a_failed_export_an_error() {
    let reg = RegistryServer::plain();
    let sb = Sandbox::new();
    three_stage_context(&sb);
    let missing = format!("{}/cache/none:nothing", reg.host());
    let run = build(&sb, &["--cache-from", &cache_from(&missing), "ctx"]);
    assert!(
        run.stderr.contains(&format!(
            "--cache-from {missing}: not found on the registry; building without it"
        )),
        "{}",
        run.stderr
    );
    assert!(outcome(&run).values().all(|ran| *ran), "{}", run.stderr);

    // Nothing listens on the port of a registry that was stopped.
    let gone = {
        let r = RegistryServer::plain();
        format!("{}/cache/app:x", r.host())
    };
    let other = Sandbox::new();
    three_stage_context(&other);
    let run = build(&other, &["--cache-from", &cache_from(&gone), "ctx"]);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert!(run.stderr.contains("building without it"), "{}", run.stderr);

    let e = sb
        .kiln(&["build", "--cache-to", &cache_to(&gone, ""), "ctx"])
        .fails(1);
    assert!(e.stderr.contains("exporting cache to"), "{}", e.stderr);
    assert!(e.stderr.contains("cannot reach"), "{}", e.stderr);
    // ignore-error=true (buildx's): a warning, and the build succeeds.
    let run = build(
        &sb,
        &["--cache-to", &cache_to(&gone, ",ignore-error=true"), "ctx"],
    );
    assert!(run.stderr.contains("ignore-error=true"), "{}", run.stderr);

    // A registry that wants credentials kiln lacks names the fix.
    let auth = RegistryServer::tls_with_auth("ci", "s3cret-password");
    let ca = auth.ca_pem().unwrap().to_str().unwrap().to_string();
    let locked = format!("{}/cache/app:x", auth.host());
    let no_creds = [
        (
            "DOCKER_CONFIG",
            sb.path("docker").to_str().unwrap().to_string(),
        ),
        (
            "REGISTRY_AUTH_FILE",
            sb.path("auth.json").to_str().unwrap().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = no_creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let e = sb
        .kiln_env(
            &[
                "build",
                "--registry-ca",
                &ca,
                "--cache-to",
                &cache_to(&locked, ""),
                "ctx",
            ],
            &env,
        )
        .fails(1);
    assert!(
        e.stderr.contains(&format!("kiln login {}", auth.host())),
        "{}",
        e.stderr
    );
    let run = sb
        .kiln_env(
            &[
                "build",
                "--progress",
                "plain",
                "--registry-ca",
                &ca,
                "--cache-from",
                &cache_from(&locked),
                "ctx",
            ],
            &env,
        )
        .ok();
    assert!(
        run.stderr.contains(&format!("kiln login {}", auth.host()))
            && run.stderr.contains("building without it"),
        "{}",
        run.stderr
    );
}

const TOKEN: &str = "tok_r3g1stry_cache_s3cr3t_0123456789";

#[test]
fn secret_steps_never_match_across_stores_and_the_secret_never_travels() {
    let reg = RegistryServer::plain();
    let reference = format!("{}/cache/secret:c", reg.host());
    let kilnfile = r#"FROM scratch
COPY bin/ /bin/
RUN --mount=type=secret,id=tok ["probe", "write", "/secret-step.txt", "done"]
RUN ["probe", "write", "/after.txt", "x"]
"#;
    let setup = || {
        let sb = Sandbox::new();
        fs::create_dir_all(sb.path("ctx/bin")).unwrap();
        fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
        sb.write("ctx/Kilnfile", kilnfile);
        sb.write("tok.txt", TOKEN);
        sb
    };
    let labels = ["COPY bin/", "secret-step", "after"];
    let (a, b) = (setup(), setup());
    let secret = ["--secret", "id=tok,src=tok.txt"];
    let first = build(
        &a,
        &[
            &secret[..],
            &["--cache-to", &cache_to(&reference, ",mode=max"), "ctx"],
        ]
        .concat(),
    );
    assert_eq!(ran(&first, &labels), labels);
    // In its own store, the secret step is cached as always.
    let again = build(
        &a,
        &[
            &secret[..],
            &["--cache-from", &cache_from(&reference), "ctx"],
        ]
        .concat(),
    );
    assert!(ran(&again, &labels).is_empty(), "{}", again.stderr);
    // In another store, with the same secret: its key is an HMAC under
    // the first store's key, so it never matches; the rest is imported.
    let second = build(
        &b,
        &[
            &secret[..],
            &["--cache-from", &cache_from(&reference), "ctx"],
        ]
        .concat(),
    );
    assert_eq!(ran(&second, &labels), ["secret-step"], "{}", second.stderr);
    assert_eq!(image_id(&second), image_id(&first));

    let needles = forms(TOKEN.as_bytes());
    for dir in [reg.data_dir(), &a.store(), &b.store()] {
        let hits = files_containing(dir, &needles);
        assert!(hits.is_empty(), "the secret is in {hits:?}");
    }
    assert!(!reg.log().contains(TOKEN));
}

#[test]
fn a_tampered_cache_layer_is_refused_and_the_step_runs() {
    let reg = RegistryServer::plain();
    let reference = format!("{}/cache/app:t", reg.host());
    let a = Sandbox::new();
    three_stage_context(&a);
    let first = build(
        &a,
        &["--cache-to", &cache_to(&reference, ",mode=max"), "ctx"],
    );
    let layers = layer_digests(&raw_manifest(&reference));
    // Same length, other bytes: only the digest can tell.
    let path = reg.blob_path(&layers[0]);
    let mut bytes = fs::read(&path).unwrap();
    for b in bytes.iter_mut() {
        *b ^= 0x5a;
    }
    fs::write(&path, &bytes).unwrap();

    let b = Sandbox::new();
    three_stage_context(&b);
    let second = build(&b, &["--cache-from", &cache_from(&reference), "ctx"]);
    assert!(
        second.stderr.contains("ignoring a cache entry")
            && second.stderr.contains(&format!("blob {}", layers[0]))
            && second.stderr.contains("does not match its digest or size"),
        "{}",
        second.stderr
    );
    let steps = outcome(&second);
    assert!(steps.values().any(|ran| *ran), "{}", second.stderr);
    assert!(steps.values().any(|ran| !ran), "{}", second.stderr);
    // The step ran again and made the same layer: the same image.
    assert_eq!(image_id(&second), image_id(&first));
    let digest = layers[0].trim_start_matches("sha256:");
    let stored = b.store().join("blobs/sha256").join(digest);
    assert!(!stored.exists() || tool("sha256sum", &[stored.to_str().unwrap()]).starts_with(digest));
}
