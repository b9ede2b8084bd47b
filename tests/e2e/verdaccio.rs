//! A real private npm registry for the tests: Verdaccio 6.8.0, one process
//! per test on 127.0.0.1 and a free port, with htpasswd auth, every package
//! readable and publishable only when authenticated, registration closed
//! and no uplinks (it never goes to the internet). Packages reach it with
//! the real `npm publish`; lockfiles come from the real `npm install
//! --package-lock-only`.
//!
//! Verdaccio is required, not optional: `.ci/run` installs it into
//! `tests/verdaccio/node_modules` (see `tests/verdaccio/README.md`), and
//! node, npm and `htpasswd` (apache2-utils) with it.
//!
//! The sanity tests at the end check the registry itself with plain
//! `TcpStream` HTTP: a packument needs the token, and a tarball's sha512 is
//! the `integrity` npm wrote into the lockfile.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha512};
use tempfile::TempDir;

use crate::util::workspace;

/// The one user of every registry; registration is closed, so nobody else.
pub const USER: &str = "kiln";
/// `USER`'s password (only the htpasswd file and the login see it).
const PASSWORD: &str = "kiln-e2e-npm-password";
/// How long Verdaccio may take to start answering (node is slow to load it
/// on a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many ports to try when another process takes the one picked.
const PORT_ATTEMPTS: usize = 10;
/// The fixture packages under `tests/verdaccio/packages`, dependencies first.
pub const FIXTURE_PACKAGES: [&str; 2] = ["util", "left-pad"];

/// A running Verdaccio; killed on drop, its storage removed with it.
pub struct Verdaccio {
    child: Child,
    port: u16,
    token: String,
    /// Last: removed after the process is gone.
    dir: TempDir,
}

impl Verdaccio {
    /// Starts a private registry with the user [`USER`] and logs in as it.
    /// Panics with Verdaccio's log if it does not start, and with "run
    /// .ci/run" if Verdaccio is not installed.
    pub fn start() -> Verdaccio {
        let main = verdaccio_main();
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        // bcrypt, which Verdaccio's htpasswd plugin reads; the user exists
        // before the registry starts, so `max_users: -1` closes
        // registration from the start.
        let out = Command::new("htpasswd")
            .arg("-bBc")
            .arg(&htpasswd)
            .args([USER, PASSWORD])
            .output()
            .unwrap_or_else(|e| {
                panic!("htpasswd (apache2-utils) is needed by the npm tests; run .ci/run: {e}")
            });
        assert!(out.status.success(), "htpasswd failed: {out:?}");
        let config = dir.path().join("config.yaml");
        fs::write(&config, config_yaml(dir.path())).unwrap();
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::util::free_port();
            let log = fs::File::create(log_path(dir.path())).unwrap();
            let mut child = Command::new("node")
                .arg(&main)
                .arg("--config")
                .arg(&config)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("node is needed by the npm tests; run .ci/run: {e}"));
            match wait_ready(&mut child, port, dir.path()) {
                Ok(()) => {
                    let mut registry = Verdaccio {
                        child,
                        port,
                        token: String::new(),
                        dir,
                    };
                    registry.token = registry.login();
                    return registry;
                }
                Err(NotReady::PortTaken) => continue,
                Err(NotReady::Failed(why)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("Verdaccio: {why}:\n{}", read_log(dir.path()));
                }
            }
        }
        panic!("no free port for Verdaccio after {PORT_ATTEMPTS} attempts");
    }

    /// A registry with the fixture packages published: `@kiln-test/util`
    /// 1.0.0 and `@kiln-test/left-pad` 1.0.0, which depends on it.
    pub fn with_fixtures() -> Verdaccio {
        let registry = Verdaccio::start();
        for name in FIXTURE_PACKAGES {
            registry.publish(&fixtures().join("packages").join(name));
        }
        registry
    }

    /// `http://127.0.0.1:PORT/`, the registry URL npm takes.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:PORT`, the origin `kiln build --allow-net` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A bearer token for [`USER`], from logging in through the registry
    /// API when it started.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Verdaccio's log so far, for failure messages.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// An `.npmrc` holding the token for this registry only, in a directory
    /// of this registry's; npm reads it with `--userconfig`.
    pub fn npmrc(&self) -> PathBuf {
        let path = self.dir.path().join("npmrc");
        fs::write(
            &path,
            format!(
                "//127.0.0.1:{}/:_authToken={}\nregistry={}\n",
                self.port,
                self.token,
                self.url()
            ),
        )
        .unwrap();
        path
    }

    /// Publishes the package in `dir` with the real `npm publish`.
    #[track_caller]
    pub fn publish(&self, dir: &Path) {
        self.npm(dir, &["publish"]);
    }

    /// A temp directory with the fixture app (`tests/verdaccio/app`): its
    /// `package.json`, and the `package-lock.json` (lockfile version 3,
    /// `resolved` URLs on this registry, sha512 `integrity`) the real
    /// `npm install --package-lock-only` makes against this registry.
    /// Publish the fixtures first ([`Verdaccio::with_fixtures`]).
    pub fn fixture_app(&self) -> TempDir {
        let app = tempfile::tempdir().unwrap();
        fs::copy(
            fixtures().join("app/package.json"),
            app.path().join("package.json"),
        )
        .unwrap();
        self.npm(
            app.path(),
            &[
                "install",
                "--package-lock-only",
                "--ignore-scripts",
                // Some machines' npm config leaves `resolved` out.
                "--omit-lockfile-registry-resolved=false",
            ],
        );
        app
    }

    /// Runs npm in `dir` against this registry with its token, its own
    /// cache, and nobody's config but this registry's `.npmrc`.
    #[track_caller]
    fn npm(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("npm")
            .args(args)
            .arg("--registry")
            .arg(self.url())
            .arg("--userconfig")
            .arg(self.npmrc())
            .arg("--cache")
            .arg(self.dir.path().join("npm-cache"))
            .args([
                "--loglevel=error",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("npm is needed by the npm tests; run .ci/run: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "npm {args:?} in {} failed:\n{stdout}\n{stderr}\nVerdaccio's log:\n{}",
            dir.display(),
            self.log()
        );
        stdout
    }

    /// Logs in as [`USER`]: Verdaccio answers `PUT
    /// /-/user/org.couchdb.user:NAME` from an authenticated user with a new
    /// token (registration is closed, so only basic auth gets one).
    fn login(&self) -> String {
        let basic = BASE64.encode(format!("{USER}:{PASSWORD}"));
        let body = serde_json::json!({ "name": USER, "password": PASSWORD }).to_string();
        let response = http(
            self.port,
            "PUT",
            &format!("/-/user/org.couchdb.user:{USER}"),
            &[
                ("Authorization", &format!("Basic {basic}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert!(
            response.status == 200 || response.status == 201,
            "logging in to Verdaccio: {}\n{}",
            response.text(),
            self.log()
        );
        let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        json["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {json}"))
            .to_string()
    }
}

impl Drop for Verdaccio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/verdaccio`: Verdaccio's install and the fixtures.
pub fn fixtures() -> PathBuf {
    workspace().join("tests/verdaccio")
}

/// Verdaccio's entry point, run with `node` (no shell shims, so it runs the
/// same on every OS).
fn verdaccio_main() -> PathBuf {
    let main = fixtures().join("node_modules/verdaccio/bin/verdaccio");
    assert!(
        main.is_file(),
        "Verdaccio is not installed in tests/verdaccio/node_modules: run .ci/run \
         (or `npm ci --prefix tests/verdaccio`)"
    );
    main
}

fn config_yaml(dir: &Path) -> String {
    let quoted = |name: &str| serde_json::to_string(dir.join(name).to_str().unwrap()).unwrap();
    format!(
        "storage: {storage}
auth:
  htpasswd:
    file: {htpasswd}
    max_users: -1
uplinks: {{}}
packages:
  '**':
    access: $authenticated
    publish: $authenticated
    unpublish: $authenticated
web:
  enable: false
log:
  type: stdout
  format: pretty
  level: http
",
        storage = quoted("storage"),
        htpasswd = quoted("htpasswd"),
    )
}

/// Why Verdaccio is not serving.
enum NotReady {
    /// It could not bind its port (and has exited).
    PortTaken,
    /// Anything else.
    Failed(String),
}

/// Waits until the Verdaccio at `port` answers `GET /-/ping`.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Result<(), NotReady> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if read_log(dir).contains("EADDRINUSE") {
                return Err(NotReady::PortTaken);
            }
            return Err(NotReady::Failed(format!(
                "it exited ({status}) while starting"
            )));
        }
        // The log line tells this Verdaccio from another process that may
        // have taken the port since it was picked.
        if read_log(dir).contains(&format!("http://127.0.0.1:{port}/"))
            && try_http(port, "GET", "/-/ping", &[], b"").is_ok_and(|r| r.status == 200)
        {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(NotReady::Failed(format!(
                "it did not start within {READY_TIMEOUT:?}"
            )));
        }
        sleep(Duration::from_millis(50));
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("verdaccio.log")
}

fn read_log(dir: &Path) -> String {
    crate::util::read_server_log(&log_path(dir))
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; panics if it cannot be made.
#[track_caller]
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://127.0.0.1:{port}{path}: {e}"))
}

/// `GET path`, with the bearer `token` if given.
#[track_caller]
pub fn get(port: u16, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    http(port, "GET", path, &headers, b"")
}

/// One HTTP/1.1 request with `Connection: close`; the response read to the
/// end, a chunked body decoded.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// `sha512-<base64>`, npm's `integrity` of `bytes`.
pub fn integrity(bytes: &[u8]) -> String {
    format!("sha512-{}", BASE64.encode(Sha512::digest(bytes)))
}

/// The lockfile's entry for `node_modules/<name>`.
fn lock_entry<'a>(lock: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let entry = &lock["packages"][format!("node_modules/{name}")];
    assert!(entry.is_object(), "no {name} in the lockfile: {lock:#}");
    entry
}

#[test]
fn the_registry_is_private_and_the_token_opens_it() {
    let registry = Verdaccio::with_fixtures();
    let path = "/@kiln-test%2fleft-pad";

    let anonymous = get(registry.port(), path, None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let wrong = get(registry.port(), path, Some("not-the-token"));
    assert_eq!(wrong.status, 401, "{}", wrong.text());

    let packument = get(registry.port(), path, Some(registry.token()));
    assert_eq!(packument.status, 200, "{}", packument.text());
    let content_type = packument.header("content-type").unwrap_or_default();
    assert!(content_type.contains("json"), "{content_type}");
    let json: serde_json::Value = serde_json::from_slice(&packument.body).unwrap();
    assert_eq!(json["name"], "@kiln-test/left-pad");
    let version = &json["versions"]["1.0.0"];
    assert_eq!(version["dependencies"]["@kiln-test/util"], "^1.0.0");
    let tarball = version["dist"]["tarball"].as_str().unwrap();
    assert!(
        tarball.starts_with(&registry.url()),
        "the tarball is on this registry: {tarball}"
    );

    // Nobody can sign up: the one user is the only way in.
    let signup = http(
        registry.port(),
        "PUT",
        "/-/user/org.couchdb.user:mallory",
        &[("Content-Type", "application/json")],
        br#"{"name":"mallory","password":"mallory-password"}"#,
    );
    assert!(signup.status >= 400, "{}: {}", signup.status, signup.text());
}

#[test]
fn the_lockfile_points_at_the_registry_and_its_integrity_holds() {
    let registry = Verdaccio::with_fixtures();
    let app = registry.fixture_app();
    let lock: serde_json::Value =
        serde_json::from_slice(&fs::read(app.path().join("package-lock.json")).unwrap()).unwrap();
    assert_eq!(lock["lockfileVersion"], 3, "{lock:#}");

    for (name, file) in [
        ("@kiln-test/left-pad", "left-pad-1.0.0.tgz"),
        ("@kiln-test/util", "util-1.0.0.tgz"),
    ] {
        let entry = lock_entry(&lock, name);
        assert_eq!(entry["version"], "1.0.0");
        let resolved = entry["resolved"].as_str().unwrap();
        assert_eq!(resolved, format!("{}{name}/-/{file}", registry.url()));
        let path = resolved
            .strip_prefix(&format!("http://{}", registry.host()))
            .unwrap();

        assert_eq!(get(registry.port(), path, None).status, 401, "{path}");
        let tarball = get(registry.port(), path, Some(registry.token()));
        assert_eq!(tarball.status, 200, "{path}: {}", tarball.text());
        assert_eq!(
            entry["integrity"].as_str().unwrap(),
            integrity(&tarball.body),
            "{path}"
        );
        // A gzip'd tar, as npm packs them.
        assert_eq!(&tarball.body[..2], [0x1f, 0x8b], "{path}");
    }
}
