//! Real registries for the registry tests: CNCF distribution (Debian's
//! `docker-registry`), one process per test with its own port, config,
//! storage, and for TLS its own CA, certificate and htpasswd users.
//!
//! The tools are required, not optional: `.ci/run` installs
//! `docker-registry`, `openssl` and `htpasswd` (apache2-utils).

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::token_server::{Grant, TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};
use crate::util::tool;

/// How long a registry may take to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports to try when another process takes the one picked.
const PORT_ATTEMPTS: usize = 10;

/// A running registry; killed, and its directory removed, on drop.
pub struct RegistryServer {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    ca_dir: Option<PathBuf>,
    ca_pem: Option<PathBuf>,
    /// Last: removed after the process is gone.
    dir: TempDir,
}

/// How the registry checks who is asking.
enum Auth {
    /// Nobody is asked.
    None,
    /// HTTPS, and htpasswd basic auth.
    Htpasswd(Tls),
    /// Plain HTTP, and bearer tokens from a [`TokenServer`].
    Token(TokenAuth),
}

/// What the registry needs for token auth: where clients get tokens, and
/// how it checks them.
struct TokenAuth {
    realm: String,
    rootcertbundle: PathBuf,
}

/// What the registry needs for TLS and basic auth.
struct Tls {
    certificate: PathBuf,
    key: PathBuf,
    htpasswd: PathBuf,
}

impl RegistryServer {
    /// Plain HTTP on 127.0.0.1, a free port, no auth.
    pub fn plain() -> RegistryServer {
        RegistryServer::start(tempfile::tempdir().unwrap(), Auth::None)
    }

    /// HTTPS with a certificate for 127.0.0.1 and localhost signed by a CA
    /// made for this server, and htpasswd basic auth for `user`/`password`.
    pub fn tls_with_auth(user: &str, password: &str) -> RegistryServer {
        let dir = tempfile::tempdir().unwrap();
        let tls = make_tls(dir.path(), user, password);
        RegistryServer::start(dir, Auth::Htpasswd(tls))
    }

    /// Plain HTTP on 127.0.0.1, with the token auth of the distribution
    /// spec: the registry sends clients to a [`TokenServer`] that knows
    /// `user`/`password` and grants what `policy` says, and takes only the
    /// tokens that server signs.
    pub fn with_token_auth(
        user: &str,
        password: &str,
        policy: &[Grant],
    ) -> (RegistryServer, TokenServer) {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenServer::start(user, password, policy);
        let rootcertbundle = dir.path().join("token-signer.crt");
        fs::copy(tokens.certificate(), &rootcertbundle).unwrap();
        let auth = TokenAuth {
            realm: tokens.realm(),
            rootcertbundle,
        };
        (RegistryServer::start(dir, Auth::Token(auth)), tokens)
    }

    fn start(dir: TempDir, auth: Auth) -> RegistryServer {
        let tls = match &auth {
            Auth::Htpasswd(tls) => Some(tls),
            Auth::None | Auth::Token(_) => None,
        };
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).unwrap();
        let config = dir.path().join("config.yml");
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::util::free_port();
            fs::write(&config, config_yml(&data_dir, port, &auth)).unwrap();
            let log = fs::File::create(log_path(dir.path())).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "docker-registry (Debian package docker-registry) is needed by \
                         the registry tests; .ci/run installs it: {e}"
                    )
                });
            match wait_ready(&mut child, port, dir.path(), tls.is_some()) {
                Ok(()) => {
                    let ca_dir = tls.is_some().then(|| dir.path().join("ca"));
                    return RegistryServer {
                        child,
                        port,
                        ca_pem: ca_dir.as_ref().map(|d| d.join("ca.crt")),
                        ca_dir,
                        data_dir,
                        dir,
                    };
                }
                Err(NotReady::PortTaken) => continue,
                Err(NotReady::Failed(why)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{why}:\n{}", read_log(dir.path()));
                }
            }
        }
        panic!("no free port for the registry after {PORT_ATTEMPTS} attempts");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) for TLS servers.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.ca_pem.as_deref()
    }

    /// A directory holding only the CA certificate, as `ca.crt`: what
    /// skopeo's `--cert-dir` and containers' `certs.d` take.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.ca_dir.as_deref()
    }

    /// The registry's storage root (filesystem driver), so tests can
    /// tamper with what it stores.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where distribution stores the blob `digest_hex` (a sha256 hex,
    /// with or without `sha256:`).
    pub fn blob_path(&self, digest_hex: &str) -> PathBuf {
        let hex = digest_hex.trim_start_matches("sha256:");
        self.data_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far, for failure messages.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a registry is not serving.
enum NotReady {
    /// It could not bind its port (and has exited).
    PortTaken,
    /// Anything else.
    Failed(String),
}

/// Waits until the registry at `port` answers.
fn wait_ready(child: &mut Child, port: u16, dir: &Path, tls: bool) -> Result<(), NotReady> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if read_log(dir).contains("address already in use") {
                return Err(NotReady::PortTaken);
            }
            return Err(NotReady::Failed(format!(
                "the registry exited ({status}) while starting"
            )));
        }
        // The log line tells this registry from another process that may
        // have taken the port since it was picked.
        if read_log(dir).contains("listening on") && answers(port, tls) {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(NotReady::Failed(format!(
                "the registry did not start within {READY_TIMEOUT:?}"
            )));
        }
        sleep(Duration::from_millis(20));
    }
}

/// Plain: `GET /v2/` answers 200 (or 401, asking for a token). TLS: the
/// port accepts connections.
fn answers(port: u16, tls: bool) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if tls {
        return true;
    }
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut response = Vec::new();
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
        || stream.write_all(request.as_bytes()).is_err()
        || stream.read_to_end(&mut response).is_err()
    {
        return false;
    }
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    status.starts_with("HTTP/1.") && (status.contains(" 200") || status.contains(" 401"))
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("registry.log")
}

fn read_log(dir: &Path) -> String {
    crate::util::read_server_log(&log_path(dir))
}

/// A YAML string: JSON's double-quoted strings are YAML's.
fn yaml_str(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("a UTF-8 path")).unwrap()
}

fn config_yml(data_dir: &Path, port: u16, auth: &Auth) -> String {
    let mut config = format!(
        "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: kiln-e2e-registry
",
        data = yaml_str(data_dir),
    );
    match auth {
        Auth::None => {}
        Auth::Htpasswd(tls) => {
            config += &format!(
                "  tls:
    certificate: {certificate}
    key: {key}
auth:
  htpasswd:
    realm: kiln-e2e
    path: {htpasswd}
",
                certificate = yaml_str(&tls.certificate),
                key = yaml_str(&tls.key),
                htpasswd = yaml_str(&tls.htpasswd),
            )
        }
        Auth::Token(token) => {
            config += &format!(
                "auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
",
                realm = serde_json::to_string(&token.realm).unwrap(),
                service = TOKEN_SERVICE,
                issuer = TOKEN_ISSUER,
                bundle = yaml_str(&token.rootcertbundle),
            )
        }
    }
    config
}

/// A CA, a server certificate it signs for 127.0.0.1 and localhost, and an
/// htpasswd file (bcrypt, the only hash distribution takes) with one user.
/// The CA certificate is copied alone to `dir/ca/ca.crt`.
fn make_tls(dir: &Path, user: &str, password: &str) -> Tls {
    let tls = dir.join("tls");
    fs::create_dir_all(&tls).unwrap();
    fs::write(
        tls.join("ca.cnf"),
        "[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = kiln e2e registry CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
",
    )
    .unwrap();
    fs::write(
        tls.join("server.cnf"),
        "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
",
    )
    .unwrap();
    let p = |name: &str| tls.join(name).to_str().unwrap().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-sha256", "-days", "2"];
    ca.extend_from_slice(&ec);
    let (ca_key, ca_crt, ca_cnf) = (p("ca.key"), p("ca.crt"), p("ca.cnf"));
    ca.extend_from_slice(&["-keyout", &ca_key, "-out", &ca_crt, "-config", &ca_cnf]);
    openssl(&ca);
    let (key, csr) = (p("server.key"), p("server.csr"));
    let mut req = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
    req.extend_from_slice(&ec);
    req.extend_from_slice(&["-keyout", &key, "-out", &csr]);
    openssl(&req);
    let (crt, ext, serial) = (p("server.crt"), p("server.cnf"), p("ca.srl"));
    openssl(&[
        "x509",
        "-req",
        "-sha256",
        "-days",
        "2",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAserial",
        &serial,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
    let ca_dir = dir.join("ca");
    fs::create_dir_all(&ca_dir).unwrap();
    fs::copy(&ca_crt, ca_dir.join("ca.crt")).unwrap();

    let htpasswd = dir.join("htpasswd");
    tool(
        "htpasswd",
        &["-Bbc", htpasswd.to_str().unwrap(), user, password],
    );
    Tls {
        certificate: crt.into(),
        key: key.into(),
        htpasswd,
    }
}

fn openssl(args: &[&str]) {
    tool("openssl", args);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux_image::{LINUX_IMAGE_CMD, LINUX_IMAGE_FILES, make_linux_image};

    /// Runs skopeo (with `--insecure-policy`); `Err` with its output if it fails.
    fn skopeo(args: &[&str]) -> Result<String, String> {
        let out = Command::new("skopeo")
            .arg("--insecure-policy")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("skopeo is needed by this test (.ci/run installs it): {e}"));
        let text = format!(
            "skopeo {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(text)
        }
    }

    #[track_caller]
    fn ok(result: Result<String, String>, server: &RegistryServer) -> String {
        result.unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", server.log()))
    }

    #[track_caller]
    fn fails(result: Result<String, String>, server: &RegistryServer) -> String {
        match result {
            Ok(out) => panic!(
                "expected a failure, got:\n{out}\nregistry log:\n{}",
                server.log()
            ),
            Err(e) => e,
        }
    }

    #[test]
    fn the_linux_image_is_linux_amd64_with_its_files_and_the_same_every_time() {
        let tmp = tempfile::tempdir().unwrap();
        let reference = make_linux_image(&tmp.path().join("a"));
        assert_eq!(
            reference,
            format!("oci:{}:latest", tmp.path().join("a").display())
        );
        make_linux_image(&tmp.path().join("b"));
        let index = |d: &str| fs::read_to_string(tmp.path().join(d).join("index.json")).unwrap();
        assert_eq!(index("a"), index("b"), "the fixture is not deterministic");

        let config: serde_json::Value =
            serde_json::from_str(&tool("skopeo", &["inspect", "--config", &reference])).unwrap();
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["config"]["Cmd"], serde_json::json!(LINUX_IMAGE_CMD));

        let bundle = tmp.path().join("bundle");
        tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:latest", tmp.path().join("a").display()),
                bundle.to_str().unwrap(),
            ],
        );
        for (path, contents) in LINUX_IMAGE_FILES {
            assert_eq!(
                fs::read_to_string(bundle.join("rootfs").join(path)).unwrap(),
                *contents
            );
        }
    }

    #[test]
    fn skopeo_pushes_to_and_inspects_a_plain_registry() {
        let tmp = tempfile::tempdir().unwrap();
        let image = make_linux_image(&tmp.path().join("layout"));
        let server = RegistryServer::plain();
        let dest = format!("docker://{}/test/img:1", server.host());
        ok(
            skopeo(&["copy", "-q", "--dest-tls-verify=false", &image, &dest]),
            &server,
        );
        let inspect: serde_json::Value = serde_json::from_str(&ok(
            skopeo(&["inspect", "--tls-verify=false", &dest]),
            &server,
        ))
        .unwrap();
        assert_eq!(inspect["Os"], "linux");
        assert_eq!(inspect["Architecture"], "amd64");
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
        // The registry is HTTP only: a TLS client gets nowhere.
        fails(skopeo(&["inspect", &dest]), &server);
    }

    #[test]
    fn skopeo_pushes_to_a_tls_registry_with_basic_auth_only_with_the_right_password() {
        let tmp = tempfile::tempdir().unwrap();
        let image = make_linux_image(&tmp.path().join("layout"));
        let server = RegistryServer::tls_with_auth("user", "password");
        let cert_dir = server.cert_dir().unwrap().to_str().unwrap();
        assert_eq!(
            server.ca_pem().unwrap(),
            server.cert_dir().unwrap().join("ca.crt")
        );
        assert!(
            fs::read_to_string(server.ca_pem().unwrap())
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        // No credentials from the machine's auth files.
        let authfile = tmp.path().join("auth.json");
        fs::write(&authfile, "{}").unwrap();
        let authfile = authfile.to_str().unwrap();
        let dest = format!("docker://{}/test/img:1", server.host());
        let copy = |creds: Option<&str>| {
            let mut args = vec![
                "copy",
                "-q",
                "--dest-cert-dir",
                cert_dir,
                "--dest-authfile",
                authfile,
            ];
            if let Some(creds) = creds {
                args.extend_from_slice(&["--dest-creds", creds]);
            }
            args.extend_from_slice(&[&image, &dest]);
            skopeo(&args)
        };

        let unauthorized = |e: &str| {
            let e = e.to_lowercase();
            e.contains("unauthorized") || e.contains("401") || e.contains("authentication required")
        };
        let e = fails(copy(None), &server);
        assert!(unauthorized(&e), "{e}");
        let e = fails(copy(Some("user:wrong")), &server);
        assert!(unauthorized(&e), "{e}");
        ok(copy(Some("user:password")), &server);

        let inspect: serde_json::Value = serde_json::from_str(&ok(
            skopeo(&[
                "inspect",
                "--cert-dir",
                cert_dir,
                "--authfile",
                authfile,
                "--creds",
                "user:password",
                &dest,
            ]),
            &server,
        ))
        .unwrap();
        assert_eq!(inspect["Os"], "linux");
        // The server's certificate is signed by this server's CA only.
        let e = fails(
            skopeo(&[
                "inspect",
                "--authfile",
                authfile,
                "--creds",
                "user:password",
                &dest,
            ]),
            &server,
        );
        assert!(e.contains("certificate"), "{e}");
    }

    #[test]
    fn a_tampered_blob_fails_the_pull_by_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let image = make_linux_image(&tmp.path().join("layout"));
        let server = RegistryServer::plain();
        let src = format!("docker://{}/test/img:1", server.host());
        ok(
            skopeo(&["copy", "-q", "--dest-tls-verify=false", &image, &src]),
            &server,
        );
        let manifest: serde_json::Value = serde_json::from_str(&ok(
            skopeo(&["inspect", "--raw", "--tls-verify=false", &src]),
            &server,
        ))
        .unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();

        // Same length, other bytes: only the digest can tell.
        let blob = server.blob_path(layer);
        let mut bytes = fs::read(&blob)
            .unwrap_or_else(|e| panic!("{}: {e}\nregistry log:\n{}", blob.display(), server.log()));
        for b in &mut bytes {
            *b ^= 0xff;
        }
        fs::write(&blob, bytes).unwrap();

        let out = tmp.path().join("pulled");
        let e = fails(
            skopeo(&[
                "copy",
                "-q",
                "--src-tls-verify=false",
                &src,
                &format!("oci:{}:x", out.display()),
            ]),
            &server,
        );
        assert!(e.to_lowercase().contains("digest"), "{e}");
        assert!(server.data_dir().join("docker/registry/v2").is_dir());
    }

    #[test]
    fn servers_run_side_by_side_and_clean_up() {
        let a = RegistryServer::plain();
        let b = RegistryServer::plain();
        assert_ne!(a.host(), b.host());
        assert!(a.ca_pem().is_none() && a.cert_dir().is_none());
        assert!(a.log().contains("listening on"), "{}", a.log());
        let dir = a.dir.path().to_path_buf();
        drop(a);
        assert!(!dir.exists());
        assert!(answers(b.port, false), "{}", b.log());
    }
}
