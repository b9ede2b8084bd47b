//! `kiln pull`, `push`, `login` and `logout` against real registries
//! (`registry_server`): round trips, what skopeo makes of kiln's pushes
//! and kiln of skopeo's, TLS with basic auth and credential helpers, the
//! password never written or printed, a push killed halfway, tampered
//! content, retries over a connection that drops, and progress output.
//!
//! Images are `FROM scratch` + `COPY` of context files: no wasm needed.

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::linux_image::make_linux_image;
use crate::registry_server::RegistryServer;
use crate::secrets::{files_containing, forms};
use crate::util::{Run, Sandbox, kiln_bin};

/// A sandbox with an isolated environment for kiln: its own HOME,
/// DOCKER_CONFIG and TMPDIR, so no credential of the machine's is read and
/// every file kiln writes lands under the sandbox; every run's output is
/// kept for the secret search.
struct Env {
    sb: Sandbox,
    /// Extra variables for every run (`PATH` with a credential helper...).
    vars: Vec<(String, String)>,
    /// Every run's stdout and stderr.
    outputs: RefCell<Vec<String>>,
}

impl Env {
    fn new() -> Env {
        let sb = Sandbox::new();
        for d in ["home", "docker", "tmp"] {
            fs::create_dir_all(sb.path(d)).unwrap();
        }
        Env {
            sb,
            vars: Vec::new(),
            outputs: RefCell::new(Vec::new()),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.sb.path(rel)
    }

    /// The docker config kiln reads and writes credentials in.
    fn docker_config(&self) -> PathBuf {
        self.path("docker/config.json")
    }

    /// Runs kiln on the store `store` (a sandbox-relative directory) with
    /// `stdin` as its standard input.
    fn kiln_in(&self, store: &str, args: &[&str], stdin: &str) -> Run {
        let mut cmd = Command::new(kiln_bin());
        cmd.args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("REGISTRY_AUTH_FILE")
            .env("KILN_STORE", self.path(store))
            .env("HOME", self.path("home"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("TMPDIR", self.path("tmp"))
            .current_dir(self.sb.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("running kiln");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.outputs
            .borrow_mut()
            .push(format!("kiln {args:?}\n{}\n{}", run.stdout, run.stderr));
        run
    }

    /// Runs kiln on the sandbox's main store.
    fn kiln(&self, args: &[&str]) -> Run {
        self.kiln_in("store", args, "")
    }

    /// Builds `FROM scratch` + one `COPY` per file (name, contents) as
    /// `tag` in the main store, uncompressed layers.
    fn build_copies(&self, tag: &str, files: &[(&str, &[u8])]) {
        let ctx = format!("ctx-{tag}");
        let mut kilnfile = String::from("FROM scratch\n");
        for (name, contents) in files {
            self.sb.write(&format!("{ctx}/{name}"), contents);
            kilnfile.push_str(&format!("COPY {name} /{name}\n"));
        }
        self.sb.write(&format!("{ctx}/Kilnfile"), kilnfile);
        self.kiln(&[
            "build",
            "-q",
            "-t",
            tag,
            "--output",
            "type=image,compression=uncompressed",
            &ctx,
        ])
        .ok();
    }

    /// Asserts the password is in no file under the sandbox but those
    /// `allowed` (the docker config, a helper's own store) and in no
    /// output kiln gave.
    #[track_caller]
    fn assert_password_nowhere(&self, user: &str, password: &str, allowed: &[PathBuf]) {
        let needles = forms_of_login(user, password);
        let hits: Vec<String> = files_containing(self.sb.dir.path(), &needles)
            .into_iter()
            .filter(|hit| !allowed.iter().any(|a| Path::new(hit).starts_with(a)))
            .collect();
        assert!(hits.is_empty(), "the password is on disk in {hits:?}");
        for out in self.outputs.borrow().iter() {
            for n in &needles {
                let n = String::from_utf8_lossy(n);
                assert!(!out.contains(&*n), "kiln printed the password:\n{out}");
            }
        }
    }
}

/// What a search for a password looks for: it raw, in hex, in base64, and
/// `user:password` in base64 (basic auth, docker's `auth`).
fn forms_of_login(user: &str, password: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let mut needles = forms(password.as_bytes());
    needles.push(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(format!("{user}:{password}"))
            .into_bytes(),
    );
    needles
}

/// Runs skopeo (with `--insecure-policy`); panics with its output and the
/// registry's log if it fails.
#[track_caller]
fn skopeo(server: &RegistryServer, args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo is needed by this test (.ci/run installs it): {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?}:\n{}\n{}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manifest digest an OCI layout's only image has.
fn layout_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    manifests[0]["digest"].as_str().unwrap().to_string()
}

/// The digest in kiln push's `REF@DIGEST` output.
fn pushed_digest(run: &Run) -> String {
    let (_, digest) = run.stdout.trim().rsplit_once('@').expect("REF@DIGEST");
    digest.to_string()
}

/// The per-blob lines of `--progress plain`: `<12 hex>: <what happened>`.
fn blob_lines(stderr: &str) -> Vec<(&str, &str)> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(id, _)| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// How many per-blob lines say `what`.
fn count(stderr: &str, what: &str) -> usize {
    blob_lines(stderr)
        .iter()
        .filter(|(_, w)| w.starts_with(what))
        .count()
}

#[track_caller]
fn assert_check_clean(env: &Env, store: &str) {
    let check = env.kiln_in(store, &["check"], "").ok();
    assert!(check.stdout.contains("no damage"), "{}", check.stdout);
}

/// `kiln images` on `store` lists nothing.
#[track_caller]
fn assert_no_images(env: &Env, store: &str) {
    let images = env.kiln_in(store, &["images"], "").ok();
    assert_eq!(images.stdout.lines().count(), 1, "{}", images.stdout);
}

#[test]
fn push_then_pull_into_an_empty_store_round_trips_and_skips_what_is_there() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")]);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/small:1", server.host());

    let first = env
        .kiln(&["push", "--progress", "plain", "small", &dest])
        .ok();
    let digest = pushed_digest(&first);
    let id: serde_json::Value =
        serde_json::from_str(&env.kiln(&["inspect", "small"]).ok().stdout).unwrap();
    assert_eq!(
        id[0]["Id"],
        digest.as_str(),
        "kiln pushes the store's manifest as it is"
    );
    assert_eq!(count(&first.stderr, "pushed"), 3, "{}", first.stderr);

    let pulled = env
        .kiln_in("fresh", &["pull", "--progress", "plain", &dest], "")
        .ok();
    assert!(
        pulled.stderr.contains(&format!("Digest: {digest}")),
        "{}",
        pulled.stderr
    );
    assert_eq!(count(&pulled.stderr, "pulled"), 3, "{}", pulled.stderr);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.kiln_in("fresh", &["inspect", &dest], "").ok().stdout).unwrap();
    assert_eq!(inspect[0]["Id"], digest.as_str());
    let history = env.kiln_in("fresh", &["history", &dest], "").ok();
    assert!(
        history.stdout.contains("COPY a.txt /a.txt") && history.stdout.contains("COPY b.txt"),
        "{}",
        history.stdout
    );
    assert_check_clean(&env, "fresh");

    // Everything is there already.
    let again = env
        .kiln(&["push", "--progress", "plain", "small", &dest])
        .ok();
    assert_eq!(pushed_digest(&again), digest);
    assert_eq!(count(&again.stderr, "already there"), 3, "{}", again.stderr);
    assert!(again.stderr.contains("(0B uploaded)"), "{}", again.stderr);

    // A second image sharing both layers: only its own layer and config go.
    env.build_copies(
        "bigger",
        &[
            ("a.txt", b"alpha\n"),
            ("b.txt", b"beta\n"),
            ("c.txt", b"gamma\n"),
        ],
    );
    let dest2 = format!("{}/test/small:2", server.host());
    let second = env
        .kiln(&["push", "--progress", "plain", "bigger", &dest2])
        .ok();
    assert_eq!(
        count(&second.stderr, "already there"),
        2,
        "{}",
        second.stderr
    );
    assert_eq!(count(&second.stderr, "pushed"), 2, "{}", second.stderr);
    assert_ne!(pushed_digest(&second), digest);
}

#[test]
fn skopeo_reads_what_kiln_pushed_and_kiln_pulls_what_skopeo_pushed() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n")]);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/small:1", server.host());
    let digest = pushed_digest(&env.kiln(&["push", "-q", "small", &dest]).ok());

    let inspect: serde_json::Value = serde_json::from_str(&skopeo(
        &server,
        &["inspect", "--tls-verify=false", &format!("docker://{dest}")],
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Os"], "wasi");
    let layout = env.path("skopeo-layout");
    skopeo(
        &server,
        &[
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:x", layout.display()),
        ],
    );
    assert_eq!(layout_digest(&layout), digest);

    // The other way: a linux/amd64 image skopeo pushes.
    let linux = make_linux_image(&env.path("linux"));
    let from_skopeo = format!("{}/other/linux:1", server.host());
    skopeo(
        &server,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &linux,
            &format!("docker://{from_skopeo}"),
        ],
    );
    let pulled = env.kiln_in("fresh", &["pull", &from_skopeo], "").ok();
    let linux_digest = layout_digest(&env.path("linux"));
    assert!(
        pulled.stderr.contains(&format!("Digest: {linux_digest}")),
        "{}",
        pulled.stderr
    );
    let inspect: serde_json::Value = serde_json::from_str(
        &env.kiln_in("fresh", &["inspect", &from_skopeo], "")
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(inspect[0]["Os"], "linux");
    assert_eq!(inspect[0]["Architecture"], "amd64");
    assert_check_clean(&env, "fresh");
}

const USER: &str = "kiln-user";
const PASSWORD: &str = "Pa55w0rd-registry-7c1e!";

/// Every flow of a TLS registry with basic auth, credentials in the
/// docker config file: refused without login, the CA hint, a wrong
/// password refused (and not saved), login, push and pull, the CA skipped
/// with `--insecure-registry`, logout.
#[test]
fn tls_registry_with_auth_login_push_pull_logout_and_the_password_is_nowhere() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n")]);
    let server = RegistryServer::tls_with_auth(USER, PASSWORD);
    let host = server.host();
    let ca = server.ca_pem().unwrap().to_str().unwrap().to_string();
    let dest = format!("{host}/test/small:1");

    // Not logged in.
    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );
    // The server's CA is not the system's.
    let untrusted = env.kiln(&["push", "small", &dest]).fails(1);
    assert!(
        untrusted.stderr.contains("--registry-ca")
            && untrusted.stderr.contains("--insecure-registry"),
        "{}",
        untrusted.stderr
    );

    // A wrong password: refused, nothing saved, and not echoed.
    let wrong = "Wr0ng-pa55word-echo-9d2f";
    let refused = env
        .kiln_in(
            "store",
            &[
                "--registry-ca",
                &ca,
                "login",
                "--username",
                USER,
                "--password-stdin",
                &host,
            ],
            &format!("{wrong}\n"),
        )
        .fails(1);
    assert!(refused.stderr.contains("refused"), "{}", refused.stderr);
    for form in forms(wrong.as_bytes()) {
        let form = String::from_utf8(form).unwrap();
        assert!(!refused.stderr.contains(&form) && !refused.stdout.contains(&form));
    }
    let saved = fs::read_to_string(env.docker_config()).unwrap_or_default();
    assert!(!saved.contains(&host), "{saved}");

    // The right one.
    let login = env
        .kiln_in(
            "store",
            &[
                "--registry-ca",
                &ca,
                "login",
                "--username",
                USER,
                "--password-stdin",
                &host,
            ],
            &format!("{PASSWORD}\n"),
        )
        .ok();
    assert_eq!(login.stdout.trim(), "Login Succeeded");
    let saved = fs::read_to_string(env.docker_config()).unwrap();
    assert!(saved.contains(&host), "{saved}");
    // The search below looks for what is really there: the config's
    // base64 `user:password` is one of its forms.
    assert_eq!(
        files_containing(&env.path("docker"), &forms_of_login(USER, PASSWORD)),
        [env.docker_config().display().to_string()]
    );

    let digest = pushed_digest(
        &env.kiln(&["--registry-ca", &ca, "push", "small", &dest])
            .ok(),
    );
    let pulled = env
        .kiln_in("fresh", &["--registry-ca", &ca, "pull", &dest], "")
        .ok();
    assert!(
        pulled.stderr.contains(&format!("Digest: {digest}")),
        "{}",
        pulled.stderr
    );
    assert_check_clean(&env, "fresh");
    // No CA, but the host is insecure: its certificate is not checked.
    env.kiln_in("fresh2", &["--insecure-registry", &host, "pull", &dest], "")
        .ok();
    env.kiln(&[
        "--insecure-registry",
        &host,
        "push",
        "small",
        &format!("{host}/test/small:2"),
    ])
    .ok();

    let logout = env.kiln(&["logout", &host]).ok();
    assert!(logout.stdout.contains("Removed"), "{}", logout.stdout);
    let again = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        again.stderr.contains(&format!("kiln login {host}")),
        "{}",
        again.stderr
    );

    // The docker config held the base64 auth while logged in, by design;
    // nothing else did, nor any output.
    env.assert_password_nowhere(USER, PASSWORD, &[env.docker_config()]);
    let after = fs::read_to_string(env.docker_config()).unwrap();
    assert!(!after.contains(&host), "logout left {after}");
}

/// The same registry with a `credHelpers` entry: the helper stores and
/// supplies the password, and the docker config never holds it.
#[test]
fn a_credential_helper_supplies_the_password_and_the_config_never_holds_it() {
    let mut env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n")]);
    let server = RegistryServer::tls_with_auth(USER, PASSWORD);
    let host = server.host();
    let ca = server.ca_pem().unwrap().to_str().unwrap().to_string();
    let dest = format!("{host}/test/small:1");

    // A helper that keeps one credential in a file of its own.
    let helper_dir = env.path("helper");
    let keychain = helper_dir.join("keychain.json");
    let script = format!(
        r#"#!/bin/sh
set -e
keychain='{keychain}'
case "$1" in
  store) cat > "$keychain" ;;
  get)
    url=$(cat)
    if [ -s "$keychain" ]; then cat "$keychain"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) url=$(cat); rm -f "$keychain" ;;
  *) echo "unknown action $1" >&2; exit 1 ;;
esac
"#,
        keychain = keychain.display()
    );
    let program = env
        .sb
        .write("helper/bin/docker-credential-kilntest", script);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.vars.push((
        "PATH".into(),
        format!(
            "{}:{}",
            helper_dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    ));
    fs::write(
        env.docker_config(),
        serde_json::json!({ "credHelpers": { &host: "kilntest" } }).to_string(),
    )
    .unwrap();

    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );
    let login = env
        .kiln_in(
            "store",
            &[
                "--registry-ca",
                &ca,
                "login",
                "-u",
                USER,
                "--password-stdin",
                &host,
            ],
            PASSWORD,
        )
        .ok();
    assert_eq!(login.stdout.trim(), "Login Succeeded");
    assert!(
        login.stderr.contains("docker-credential-kilntest") || login.stderr.contains("kilntest"),
        "{}",
        login.stderr
    );
    assert!(
        fs::read_to_string(&keychain).unwrap().contains(PASSWORD),
        "the helper was not given the password"
    );
    let digest = pushed_digest(
        &env.kiln(&["--registry-ca", &ca, "push", "small", &dest])
            .ok(),
    );
    let pulled = env
        .kiln_in("fresh", &["--registry-ca", &ca, "pull", &dest], "")
        .ok();
    assert!(pulled.stderr.contains(&digest), "{}", pulled.stderr);
    env.kiln(&["logout", &host]).ok();
    assert!(
        !keychain.exists(),
        "logout did not erase the helper's entry"
    );
    let denied = env
        .kiln(&["--registry-ca", &ca, "push", "small", &dest])
        .fails(1);
    assert!(
        denied.stderr.contains(&format!("kiln login {host}")),
        "{}",
        denied.stderr
    );

    // Only the helper's keychain ever held it: not even the docker config.
    env.assert_password_nowhere(USER, PASSWORD, &[keychain]);
}

/// Total size of the files under `dir` (0 if it does not exist).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// A file of `size` bytes nothing compresses.
fn random_file(path: &Path, size: u64) {
    let mut random = fs::File::open("/dev/urandom").unwrap().take(size);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = fs::File::create(path).unwrap();
    std::io::copy(&mut random, &mut out).unwrap();
}

/// Builds `FROM scratch` + `COPY` of a random file of `mib` MiB as `tag`.
fn build_random(env: &Env, tag: &str, mib: u64) {
    random_file(&env.path(&format!("ctx-{tag}/blob.bin")), mib << 20);
    env.sb.write(
        &format!("ctx-{tag}/Kilnfile"),
        "FROM scratch\nCOPY blob.bin /blob.bin\n",
    );
    env.kiln(&[
        "build",
        "-q",
        "-t",
        tag,
        "--output",
        "type=image,compression=uncompressed",
        &format!("ctx-{tag}"),
    ])
    .ok();
}

#[test]
fn a_push_killed_in_the_big_layer_completes_when_run_again() {
    let env = Env::new();
    build_random(&env, "big", 300);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/big:1", server.host());
    let uploads = server
        .data_dir()
        .join("docker/registry/v2/repositories/test/big/_uploads");

    let mut child = Command::new(kiln_bin())
        .args(["push", "-q", "big", &dest])
        .env_remove("SOURCE_DATE_EPOCH")
        .env("KILN_STORE", env.path("store"))
        .env("HOME", env.path("home"))
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("TMPDIR", env.path("tmp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed at a place in the upload, not a time: once the registry
    // holds 50 MiB of the layer.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tree_size(&uploads) <= 50 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before 50 MiB of its layer reached the registry"
        );
        assert!(Instant::now() < deadline, "the upload never started");
        thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Manifests go last: the tag does not exist yet.
    let missing = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(!missing.status.success(), "the killed push left a tag");

    let again = env
        .kiln(&["push", "--progress", "plain", "big", &dest])
        .ok();
    let digest = pushed_digest(&again);
    let layout = env.path("copied");
    skopeo(
        &server,
        &[
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:x", layout.display()),
        ],
    );
    assert_eq!(layout_digest(&layout), digest);
    assert_check_clean(&env, "store");
}

#[test]
fn tampered_blobs_and_manifests_are_refused_and_leave_the_store_sound() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")]);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/small:1", server.host());
    let digest = pushed_digest(&env.kiln(&["push", "-q", "small", &dest]).ok());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(server.blob_path(&digest)).unwrap()).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // Same length, other bytes: only the digest can tell.
    let blob = server.blob_path(&layer);
    let original = fs::read(&blob).unwrap();
    fs::write(&blob, original.iter().map(|b| b ^ 0xff).collect::<Vec<_>>()).unwrap();
    let refused = env.kiln_in("fresh", &["pull", &dest], "").fails(1);
    assert!(
        refused.stderr.contains(&format!("blob {layer}"))
            && refused.stderr.contains("does not match its digest"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("attempt 1 of"),
        "tampered content is not retried:\n{}",
        refused.stderr
    );
    assert_no_images(&env, "fresh");
    assert_check_clean(&env, "fresh");
    fs::write(&blob, &original).unwrap();

    // A manifest changed in place (one digit of a size, still JSON),
    // pulled by its digest.
    let path = server.blob_path(&digest);
    let text = fs::read_to_string(&path).unwrap();
    let at = text.find("\"size\":").unwrap() + 7;
    let digit = if &text[at..=at] == "1" { "2" } else { "1" };
    fs::write(&path, format!("{}{digit}{}", &text[..at], &text[at + 1..])).unwrap();
    let by_digest = format!("{}/test/small@{digest}", server.host());
    let refused = env.kiln_in("fresh", &["pull", &by_digest], "").fails(1);
    assert!(
        refused.stderr.contains("does not match its digest"),
        "{}",
        refused.stderr
    );
    assert_no_images(&env, "fresh");
    assert_check_clean(&env, "fresh");
}

/// A TCP proxy in front of a registry that cuts the first connection to
/// carry more than `cut_after` bytes towards the client, once: a network
/// that drops in the middle of a blob, at a byte position.
struct CuttingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn new(upstream: String, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (stop2, cut2) = (Arc::clone(&stop), Arc::clone(&cut));
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut &c2, &mut &s2);
                    let _ = s2.shutdown(Shutdown::Write);
                });
                let cut = Arc::clone(&cut2);
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut sent = 0u64;
                    loop {
                        let n = match (&server).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if (&client).write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n as u64;
                        if sent > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { port, stop, cut }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

#[test]
fn a_connection_dropped_mid_blob_is_retried_with_a_warning() {
    let env = Env::new();
    build_random(&env, "mid", 24);
    let server = RegistryServer::plain();
    env.kiln(&[
        "push",
        "-q",
        "mid",
        &format!("{}/test/mid:1", server.host()),
    ])
    .ok();
    let proxy = CuttingProxy::new(server.host(), 4 << 20);
    let through = format!("{}/test/mid:1", proxy.host());
    let pulled = env
        .kiln_in("fresh", &["pull", "--progress", "plain", &through], "")
        .ok();
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy never cut");
    assert!(
        pulled.stderr.contains("warning:") && pulled.stderr.contains("attempt 1 of 5 failed"),
        "{}",
        pulled.stderr
    );
    assert_eq!(count(&pulled.stderr, "pulled"), 2, "{}", pulled.stderr);
    assert_check_clean(&env, "fresh");
    let left: Vec<_> = fs::read_dir(env.path("fresh/kiln/tmp")).unwrap().collect();
    assert!(left.is_empty(), "the cut download left {left:?}");
}

#[test]
fn plain_progress_is_a_line_per_blob_and_quiet_prints_only_the_reference() {
    let env = Env::new();
    env.build_copies("small", &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")]);
    let server = RegistryServer::plain();
    let dest = format!("{}/test/small:1", server.host());

    let push = env
        .kiln(&["push", "--progress", "plain", "small", &dest])
        .ok();
    let lines = blob_lines(&push.stderr);
    assert_eq!(lines.len(), 3, "{}", push.stderr);
    let mut ids: Vec<&str> = lines.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "a line per blob, once:\n{}", push.stderr);

    let pull = env
        .kiln_in("fresh", &["pull", "--progress", "plain", &dest], "")
        .ok();
    assert_eq!(blob_lines(&pull.stderr).len(), 3, "{}", pull.stderr);

    let quiet = env.kiln(&["push", "-q", "small", &dest]).ok();
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, format!("{dest}@{}\n", pushed_digest(&push)));
    let quiet = env.kiln_in("fresh2", &["pull", "-q", &dest], "").ok();
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, format!("{dest}\n"));
}
