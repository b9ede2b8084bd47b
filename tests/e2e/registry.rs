//! `kiln pull`, `push`, `login` and `logout` against real registries
//! (`registry_server`): round trips, what skopeo makes of kiln's pushes
//! and kiln of skopeo's, TLS with basic auth and credential helpers, the
//! password never written or printed, a push killed halfway, tampered
//! content, retries over a connection that drops, and progress output.
//!
//! Images are `FROM scratch` + `COPY` of context files: no wasm needed.

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::linux_image::make_linux_image;
use crate::registry_server::RegistryServer;
use crate::secrets::{files_containing, forms};
use crate::util::{Run, Sandbox, kiln_bin};

/// A sandbox with an isolated environment for kiln: its own HOME,
/// DOCKER_CONFIG and TMPDIR, so no credential of the machine's is read and
/// every file kiln writes lands under the sandbox; every run's output is
/// kept for the secret search.
pub(crate) struct Env {
    pub(crate) sb: Sandbox,
    /// Extra variables for every run (`PATH` with a credential helper...).
    pub(crate) vars: Vec<(String, String)>,
    /// Every run's stdout and stderr.
    pub(crate) outputs: RefCell<Vec<String>>,
}

impl Env {
    pub(crate) fn new() -> Env {
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

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.sb.path(rel)
    }

    /// The docker config kiln reads and writes credentials in.
    pub(crate) fn docker_config(&self) -> PathBuf {
        self.path("docker/config.json")
    }

    /// Runs kiln on the store `store` (a sandbox-relative directory) with
    /// `stdin` as its standard input.
    pub(crate) fn kiln_in(&self, store: &str, args: &[&str], stdin: &str) -> Run {
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
    pub(crate) fn kiln(&self, args: &[&str]) -> Run {
        self.kiln_in("store", args, "")
    }

    /// Builds `FROM scratch` + one `COPY` per file (name, contents) as
    /// `tag` in the main store, uncompressed layers.
    pub(crate) fn build_copies(&self, tag: &str, files: &[(&str, &[u8])]) {
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
    pub(crate) fn assert_password_nowhere(&self, user: &str, password: &str, allowed: &[PathBuf]) {
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
pub(crate) fn forms_of_login(user: &str, password: &str) -> Vec<Vec<u8>> {
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
pub(crate) fn skopeo(server: &RegistryServer, args: &[&str]) -> String {
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
/// Copies `reference` out of `server` with skopeo into an OCI layout at
/// `layout` (digests preserved); the digest of the manifest it copied.
pub(crate) fn copy_out(server: &RegistryServer, reference: &str, layout: &Path) -> String {
    skopeo(
        server,
        &[
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:x", layout.display()),
        ],
    );
    layout_digest(layout)
}

pub(crate) fn layout_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    manifests[0]["digest"].as_str().unwrap().to_string()
}

/// The digest in kiln push's `REF@DIGEST` output.
pub(crate) fn pushed_digest(run: &Run) -> String {
    let (_, digest) = run.stdout.trim().rsplit_once('@').expect("REF@DIGEST");
    digest.to_string()
}

/// The per-blob lines of `--progress plain`: `<12 hex>: <what happened>`.
pub(crate) fn blob_lines(stderr: &str) -> Vec<(&str, &str)> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(id, _)| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// How many per-blob lines say `what`.
pub(crate) fn count(stderr: &str, what: &str) -> usize {
    blob_lines(stderr)
        .iter()
        .filter(|(_, w)| w.starts_with(what))
        .count()
}

#[track_caller]
pub(crate) fn assert_check_clean(env: &Env, store: &str) {
    let check = env.kiln_in(store, &["check"], "").ok();
    assert!(check.stdout.contains("no damage"), "{}", check.stdout);
}

/// `kiln images` on `store` lists nothing.
#[track_caller]
pub(crate) fn assert_no_images(env: &Env, store: &str) {
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
    assert_eq!(copy_out(&server, &dest, &layout), digest);

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

/// `--push-chunked-above`: a layer over the threshold goes up as 4 MiB
/// `PATCH` requests (for proxies that limit request sizes) and arrives
/// whole; under it, one request.
#[test]
fn big_blobs_are_pushed_in_chunks_and_arrive_whole() {
    let env = Env::new();
    let mut bytes = vec![0u8; 10 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    env.build_copies("ten", &[("ten.bin", &bytes)]);
    let server = RegistryServer::plain();
    let patches = |log: &str| {
        log.lines()
            .filter(|l| l.contains("http.request.method=PATCH") && l.contains("response completed"))
            .count()
    };

    let chunked = format!("{}/test/chunked:1", server.host());
    let pushed = env
        .kiln(&["push", "--push-chunked-above", "1m", "ten", &chunked])
        .ok();
    let digest = pushed_digest(&pushed);
    let after_chunked = patches(&server.log());
    assert!(
        after_chunked >= 3,
        "a 10 MiB layer in 4 MiB chunks is at least 3 PATCH requests, saw {after_chunked}:\n{}",
        server.log()
    );
    let layout = env.path("copied");
    assert_eq!(copy_out(&server, &chunked, &layout), digest);
    env.kiln_in("fresh", &["pull", &chunked], "").ok();
    assert_check_clean(&env, "fresh");

    let whole = format!("{}/test/whole:1", server.host());
    env.kiln(&["push", "ten", &whole]).ok();
    assert_eq!(
        patches(&server.log()),
        after_chunked,
        "under the threshold a blob is one request"
    );
}
