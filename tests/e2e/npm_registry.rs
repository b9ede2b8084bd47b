//! The seed scenario for real, through kiln: `npm-install-http` (a
//! wasip2 step, `examples/npm-token`) installs the fixture app's locked
//! packages from a private Verdaccio over `wasi:http`, with the registry
//! token passed both ways a Kilnfile can: bound to the registry's origin
//! (kiln sends it; the step never sees it) and mounted (the buildx form:
//! the step reads `/run/secrets/npm_token` and sends it). The token is in
//! no file and no output; a wrong token, a step without network and a
//! registry off the allowlist fail with messages that say what to do.

use std::fs;
use std::path::Path;

use crate::secrets::{files_containing, forms};
use crate::util::{Run, Sandbox};
use crate::verdaccio::{Verdaccio, integrity};

const STEP: &str = env!("KILN_NPM_INSTALL_HTTP");

/// The installed fixtures: (path under node_modules, name).
const INSTALLED: [(&str, &str); 2] = [
    ("@kiln-test/left-pad", "left-pad"),
    ("@kiln-test/util", "util"),
];

/// A sandbox with the fixture app locked against `registry` (package.json,
/// package-lock.json) and the step at bin/npm-install-http in `ctx/`, the
/// token in `npm_token.txt` outside the context.
fn setup(registry: &Verdaccio, token: &str) -> Sandbox {
    let sb = Sandbox::new();
    let app = registry.fixture_app();
    for file in ["package.json", "package-lock.json"] {
        sb.write(
            &format!("ctx/{file}"),
            fs::read(app.path().join(file)).unwrap(),
        );
    }
    sb.write("ctx/bin/npm-install-http", fs::read(STEP).unwrap());
    sb.write("npm_token.txt", format!("{token}\n"));
    fs::create_dir_all(sb.path("tmp")).unwrap();
    sb
}

/// The example's Kilnfile.registry, on scratch: `RUN {run}` after the app
/// and the step are copied in.
fn kilnfile(sb: &Sandbox, run: &str) {
    sb.write(
        "ctx/Kilnfile",
        format!(
            "# syntax=kiln/v1\nFROM scratch\nWORKDIR /app\n\
             COPY package.json package-lock.json ./\nCOPY bin/ /bin/\nRUN {run}\n"
        ),
    );
}

/// The bound form: kiln sends the token to the registry's origin.
fn bound(registry: &Verdaccio) -> String {
    format!(
        "--network=default --mount=type=secret,id=npm_token,origin=http://{} npm-install-http",
        registry.host()
    )
}

/// The mounted form: the step reads the secret and sends it.
const MOUNTED: &str =
    "--network=default --mount=type=secret,id=npm_token npm-install-http --token-secret npm_token";

/// `kiln build --progress plain ARGS ctx` with the sandbox's TMPDIR.
fn build(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push("ctx");
    let tmp = sb.path("tmp");
    sb.kiln_env(&all, &[("TMPDIR", tmp.to_str().unwrap())])
}

/// Checks the exported filesystem under `out`: the fixtures' files, as
/// published, and the install record naming each package's integrity.
fn check_installed(out: &Path, lock: &serde_json::Value) {
    let modules = out.join("app/node_modules");
    for (path, fixture) in INSTALLED {
        let source = crate::verdaccio::fixtures().join("packages").join(fixture);
        for file in ["package.json", "index.js"] {
            let got = fs::read(modules.join(path).join(file))
                .unwrap_or_else(|e| panic!("node_modules/{path}/{file}: {e}"));
            assert_eq!(got, fs::read(source.join(file)).unwrap(), "{path}/{file}");
        }
    }
    let record = fs::read_to_string(modules.join(".kiln-installed")).unwrap();
    for (path, _) in INSTALLED {
        let entry = &lock["packages"][format!("node_modules/{path}")];
        let want = format!("{path}@1.0.0 {}", entry["integrity"].as_str().unwrap());
        assert!(record.lines().any(|l| l == want), "{want}: {record}");
    }
}

#[test]
fn installs_from_verdaccio_with_the_token_bound_or_mounted_and_it_is_nowhere() {
    let registry = Verdaccio::with_fixtures();
    let token = registry.token().to_string();
    let sb = setup(&registry, &token);
    let lock: serde_json::Value =
        serde_json::from_slice(&fs::read(sb.path("ctx/package-lock.json")).unwrap()).unwrap();
    let allow = registry.host();
    let mut outputs = String::new();
    for (form, run) in [("bound", bound(&registry)), ("mounted", MOUNTED.into())] {
        kilnfile(&sb, &run);
        let dest = format!("type=local,dest=out-{form}");
        let out = build(
            &sb,
            &[
                "--allow-net",
                &allow,
                "--secret",
                "id=npm_token,src=npm_token.txt",
                "-t",
                &format!("npm-app:{form}"),
                "--output",
                &dest,
            ],
        )
        .ok();
        let log = format!("{}{}", out.stdout, out.stderr);
        assert!(log.contains("added 2 packages"), "{form}:\n{log}");
        outputs.push_str(&log);
        check_installed(&sb.path(&format!("out-{form}")), &lock);
        // No secret file in the image, whichever form.
        assert!(
            !sb.path(&format!("out-{form}/run/secrets")).exists(),
            "{form}"
        );
        let history = sb
            .kiln(&["history", "--no-trunc", &format!("npm-app:{form}")])
            .ok()
            .stdout;
        assert!(
            history.contains("--mount=type=secret,id=npm_token"),
            "{history}"
        );
        outputs.push_str(&history);
    }
    // Verdaccio served the tarballs to the token only.
    for (path, _) in INSTALLED {
        let entry = &lock["packages"][format!("node_modules/{path}")];
        let resolved = entry["resolved"].as_str().unwrap();
        assert!(resolved.starts_with(&registry.url()), "{resolved}");
        let url_path = resolved
            .strip_prefix(&format!("http://{}", registry.host()))
            .unwrap();
        let anonymous = crate::verdaccio::get(registry.port(), url_path, None);
        assert_eq!(anonymous.status, 401, "{url_path}");
        let tarball = crate::verdaccio::get(registry.port(), url_path, Some(&token));
        assert_eq!(
            integrity(&tarball.body),
            entry["integrity"].as_str().unwrap()
        );
    }

    // The token is in no file kiln wrote (store, temp files, outputs) and
    // in none of its output, raw, hex or base64.
    let hits: Vec<String> = files_containing(sb.dir.path(), &forms(token.as_bytes()))
        .into_iter()
        .filter(|p| !p.ends_with("npm_token.txt"))
        .collect();
    assert!(hits.is_empty(), "the token leaked into {hits:?}");
    for form in forms(token.as_bytes()) {
        let form = String::from_utf8(form).unwrap();
        assert!(!outputs.contains(&form), "the token was printed");
    }
}

#[test]
fn a_wrong_token_no_network_or_an_unlisted_registry_fail_saying_why() {
    let registry = Verdaccio::with_fixtures();
    let wrong = "npm_not-the-token-0000";
    let sb = setup(&registry, wrong);
    let allow = registry.host();
    let secret = ["--secret", "id=npm_token,src=npm_token.txt"];
    let left_pad = format!("{}@kiln-test/left-pad/-/left-pad-1.0.0.tgz", registry.url());

    // A wrong token: Verdaccio's 401, with the URL and its reason, either form.
    for run in [bound(&registry), MOUNTED.into()] {
        kilnfile(&sb, &run);
        let out = build(&sb, &[&["--allow-net", &allow][..], &secret].concat()).fails(1);
        let log = format!("{}{}", out.stdout, out.stderr);
        for want in [
            "downloading @kiln-test/left-pad@1.0.0",
            &format!("GET {left_pad}: 401 Unauthorized"),
        ] {
            assert!(log.contains(want), "{want:?} not in\n{log}");
        }
        assert!(!log.contains(wrong), "{log}");
    }

    // No network for the step: it is told which flags open it.
    kilnfile(
        &sb,
        "--mount=type=secret,id=npm_token npm-install-http --token-secret npm_token",
    );
    let out = build(&sb, &[&["--allow-net", &allow][..], &secret].concat()).fails(1);
    let log = format!("{}{}", out.stdout, out.stderr);
    assert!(log.contains("HTTP request denied"), "{log}");
    assert!(log.contains("add --network=default"), "{log}");
    // The bound form without network is refused before the build runs.
    kilnfile(
        &sb,
        &format!(
            "--mount=type=secret,id=npm_token,origin=http://{} npm-install-http",
            registry.host()
        ),
    );
    let out = build(&sb, &[&["--allow-net", &allow][..], &secret].concat()).fails(1);
    assert!(
        out.stderr
            .contains("bound to an origin, but this step has no network"),
        "{}",
        out.stderr
    );

    // The registry off the allowlist: the refusal names the flag to add.
    for run in [bound(&registry), MOUNTED.into()] {
        kilnfile(&sb, &run);
        let out = build(
            &sb,
            &[&["--allow-net", "127.0.0.1:9"][..], &secret].concat(),
        )
        .fails(1);
        let log = format!("{}{}", out.stdout, out.stderr);
        assert!(log.contains("HTTP request denied"), "{log}");
        assert!(log.contains(&format!("--allow-net {allow}")), "{log}");
    }
}

#[test]
fn the_example_kilnfile_registry_builds_against_verdaccio() {
    let registry = Verdaccio::with_fixtures();
    let sb = Sandbox::new();
    sb.examples();
    // What the README says: lock registry-app/ against the registry.
    let app = registry.fixture_app();
    for file in ["package.json", "package-lock.json"] {
        sb.write(
            &format!("examples/npm-token/registry-app/{file}"),
            fs::read(app.path().join(file)).unwrap(),
        );
    }
    sb.write("npm_token.txt", format!("{}\n", registry.token()));
    let origin = format!("NPM_REGISTRY=http://{}", registry.host());
    let out = sb
        .kiln(&[
            "build",
            "-q",
            "-f",
            "examples/npm-token/Kilnfile.registry",
            "--build-arg",
            &origin,
            "--allow-net",
            &registry.host(),
            "--secret",
            "id=npm_token,src=npm_token.txt",
            "-t",
            "npm-app",
            "examples/npm-token",
        ])
        .ok();
    assert!(!out.stdout.contains(registry.token()));
    let installed = sb.kiln(&["run", "--rm", "npm-app"]).ok().stdout;
    assert!(
        installed.starts_with("@kiln-test/left-pad@1.0.0 sha512-"),
        "{installed}"
    );
    assert!(
        installed.contains("\n@kiln-test/util@1.0.0 sha512-"),
        "{installed}"
    );
    let manifest = sb
        .kiln(&[
            "run",
            "--rm",
            "npm-app",
            "cat",
            "/app/node_modules/@kiln-test/util/package.json",
        ])
        .ok()
        .stdout;
    assert!(
        manifest.contains("\"name\": \"@kiln-test/util\""),
        "{manifest}"
    );
    let hits: Vec<String> = files_containing(&sb.store(), &forms(registry.token().as_bytes()));
    assert!(hits.is_empty(), "the token leaked into {hits:?}");
}
